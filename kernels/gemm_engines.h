// The GEMM engines behind kernels/dense.h, callable one by one (for the benchmark, which sets
// them side by side). Same contracts as dense.h; `relu` fuses ReLU into the forward epilogue.
// Each engine tiles its outputs with fixed tiles (sizes below).
#pragma once

#include <cstdint>

#include "kernels/dense.h"
#include "kernels/optim.h"
#include "kernels/tile_observer.h"

namespace tessera::kernels {

// Output tiles of the Eigen engine's products: 128 rows x 256 columns (see dense.cpp for why).
inline constexpr int64_t kTileRows = 128;
inline constexpr int64_t kTileCols = 256;
// Output tiles of the oneDNN engine. Block tiles, 256 x 512, for the forward and dX products and
// every bf16 product: 256 rows halve how often each tile repacks the shared operand against 128
// (+5-10% GFLOP/s on the 1024-wide layers, bench/dense_bench), 512 columns rather than 256
// measured +3% (forward, dX) to +14% (dW) float; a batch of 256 (or 128) rows is still two
// tiles of a 1024-wide output, so two threads have work. oneDNN 2.6 runs its brgemm kernel only
// on a dense destination and a column block of a wider output is not one, so a float tile
// narrower than its output is computed into a dense block its thread owns and copied out
// (with dX's relu mask) while in cache: +4-6% GFLOP/s per product measured alone; inside the
// 1-core training step the forward products took 5% less time, dX the same (gemm_onednn.cpp).
inline constexpr int64_t kOneDnnTileRows = 256;
inline constexpr int64_t kOneDnnTileCols = 512;
// dW = dYᵀ·X in row tiles: 256 rows of dW (columns of dY) spanning all its columns, up to
// kOneDnnRowTileCols. Each tile stages its block of dYᵀ densely: a strided left operand runs
// on oneDNN 2.6's slower gemm:jit kernel.
inline constexpr int64_t kOneDnnDwTileRows = 256;
inline constexpr int64_t kOneDnnRowTileCols = 1024;

// Output tiles of tessera's own engine (kernels/gemm_simd.cpp; AVX-512 and AVX2 alike), for all
// three float products: 256 rows x at most 512 columns (cut evenly, and into more tiles where a
// thread would have none), so that dW becomes final in 256-row blocks and a batch of 256 (or
// 128) rows still makes two tiles of a 1024-wide output for two threads.
inline constexpr int64_t kSimdTileRows = 256;
inline constexpr int64_t kSimdTileCols = 512;
// dW = dyᵀ·x in row tiles up to 1024 columns wide: each tile stages its block of dyᵀ once.
inline constexpr int64_t kSimdDwTileCols = 1024;

// Eigen 3.4 with fixed blocking on stack panels: never touches the heap.
template <class T>
void eigen_dense_forward(const T* x, const T* w, const T* b, T* y, int64_t n, int64_t in,
                         int64_t out, bool relu);
// relu_dx: x is a relu output and dx comes out as dense_backward_relu's (masked by x > 0).
template <class T>
void eigen_dense_backward(const T* dy, const T* x, const T* w, T* dw, T* db, T* dx, int64_t n,
                          int64_t in, int64_t out, bool relu_dx = false);

// tessera's own engine (kernels/gemm_simd.cpp) in each vector width: whether this build has it
// (compiled for a target with AVX-512F, or with AVX2 and FMA; an AVX-512 build has both), and
// its float products. Never allocate; thread-safe; the same bits in either width. Throw
// std::logic_error if the width is not available. The backward's sgd: dense_backward's.
bool avx512_available();
void avx512_dense_forward(const float* x, const float* w, const float* b, float* y, int64_t n,
                          int64_t in, int64_t out, bool relu);
void avx512_dense_backward(const float* dy, const float* x, const float* w, float* dw, float* db,
                           float* dx, int64_t n, int64_t in, int64_t out, bool relu_dx = false,
                           const SgdUpdate* sgd = nullptr);
// Bytes of stack one tile of each width's products takes on its thread (packed panels), 0
// where the width is not built.
int64_t avx512_tile_stack_bytes();
int64_t avx2_tile_stack_bytes();
bool avx2_available();
void avx2_dense_forward(const float* x, const float* w, const float* b, float* y, int64_t n,
                        int64_t in, int64_t out, bool relu);
void avx2_dense_backward(const float* dy, const float* x, const float* w, float* dw, float* db,
                         float* dx, int64_t n, int64_t in, int64_t out, bool relu_dx = false,
                         const SgdUpdate* sgd = nullptr);

// Whether this build has the oneDNN engine compiled in (libdnnl found at configure time).
bool onednn_available();

// oneDNN matmul primitives, float only. Primitives and per-thread execution state are created on
// first use of each tile shape and reused after. Thread-safe within oneTBB's default arena (and
// from threads outside any arena), not across concurrently running explicit task_arenas.
// Throws std::logic_error if !onednn_available(), std::runtime_error if oneDNN fails.
void onednn_dense_forward(const float* x, const float* w, const float* b, float* y, int64_t n,
                          int64_t in, int64_t out, bool relu);
void onednn_dense_backward(const float* dy, const float* x, const float* w, float* dw, float* db,
                           float* dx, int64_t n, int64_t in, int64_t out, bool relu_dx = false);
// oneDNN's bf16 products, same contracts as dense_forward_bf16 / dense_backward_bf16 (dense.h).
const char* onednn_bf16_unsupported_reason();
void onednn_dense_forward_bf16(const bf16* x, const bf16* w, const float* b, float* y, bf16* y16,
                               int64_t n, int64_t in, int64_t out, bool relu);
void onednn_dense_backward_bf16(const DenseBf16Backward& a, int64_t n, int64_t in, int64_t out);

// tessera's own bf16 engine (kernels/gemm_avx512_bf16.cpp): AVX512_BF16 microkernels on packed
// stack panels, the same contracts and fixed tiles as dense_forward_bf16 / dense_backward_bf16
// in kernels/dense.h (kSimdTileRows x kSimdTileCols, dW tiles reported as they finish), and
// no heap allocation. They throw std::logic_error when avx512_bf16_unsupported_reason() is not
// nullptr: this CPU or build cannot run them, said in words.
const char* avx512_bf16_unsupported_reason();
void avx512_dense_forward_bf16(const bf16* x, const bf16* w, const float* b, float* y, bf16* y16,
                               int64_t n, int64_t in, int64_t out, bool relu);
void avx512_dense_backward_bf16(const DenseBf16Backward& a, int64_t n, int64_t in, int64_t out);

// Calls tile(r0, r1, c0, c1) for each fixed tile_rows x tile_cols tile of an (m, n) output,
// possibly in parallel; after each tile run on the main thread, the installed TileObserver's
// poll (kernels/tile_observer.h).
template <class Tile>
void for_tiles(int64_t m, int64_t n, int64_t tile_rows, int64_t tile_cols, const Tile& tile);


// Rows [r0, r1) x columns [c0, c1) of d (leading dim ld): d = 0 where a <= 0, as
// activation_backward's relu computes it with z = a (a = relu(z) > 0 exactly where z > 0). Run
// on a gradient tile right after its product, while it is in cache.
template <class T>
void relu_backward_tile(const T* a, T* d, int64_t ld, int64_t r0, int64_t r1, int64_t c0,
                        int64_t c1) {
  for (int64_t r = r0; r < r1; ++r) {
    const T* ar = a + r * ld;
    T* dr = d + r * ld;
    for (int64_t c = c0; c < c1; ++c) dr[c] = ar[c] <= T(0) ? T(0) : dr[c];
  }
}

// db[c0, c1) = Σ_rows dy[:, c0, c1), rows added in order: the same bits however the columns are
// split. Run by the dw tile that starts at column 0 of dw rows [c0, c1) (dy's columns), right
// after its product has streamed those columns of dy, instead of a separate sweep over dy.
template <class T>
void bias_backward_cols(const T* dy, T* db, int64_t n, int64_t out, int64_t c0, int64_t c1) {
  for (int64_t o = c0; o < c1; ++o) db[o] = T(0);
  for (int64_t r = 0; r < n; ++r) {
    const T* row = dy + r * out;
    for (int64_t o = c0; o < c1; ++o) db[o] += row[o];
  }
}

// db = Σ_rows dy when the layer has no inputs (in == 0): dw then has no tiles, and the dw tiles
// are where every engine sums db. Called by each engine's backward after its dw tiles.
template <class T>
void bias_backward_without_inputs(const T* dy, T* db, int64_t n, int64_t in, int64_t out) {
  if (in == 0 && db != nullptr) bias_backward_cols(dy, db, n, out, 0, out);
}

// Tells the tile observer that a weight-gradient tile (rows [r0, r1) x columns [c0, c1) of
// dw (out, in)) is final, and with the tile at column 0 the bias gradient db[r0, r1). dw_finite:
// what the kernel saw of dw's values (db is left to the observer).
inline void report_dw_tile(const float* dw, const float* db, int64_t in, int64_t out, int64_t r0,
                           int64_t r1, int64_t c0, int64_t c1,
                           Finite dw_finite = Finite::kUnknown) {
  report_final(dw, in, r0, r1, c0, c1, dw_finite);
  if (db != nullptr && c0 == 0) report_final(db, out, 0, 1, r0, r1);
}

}  // namespace tessera::kernels

#include "kernels/parallel.h"

template <class Tile>
void tessera::kernels::for_tiles(int64_t m, int64_t n, int64_t tile_rows, int64_t tile_cols,
                                 const Tile& tile) {
  if (m <= 0 || n <= 0) return;
  const int64_t tiles_n = (n + tile_cols - 1) / tile_cols;
  const int64_t tiles = ((m + tile_rows - 1) / tile_rows) * tiles_n;
  for_chunks(tiles, 1, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t r0 = (t / tiles_n) * tile_rows;
      const int64_t c0 = (t % tiles_n) * tile_cols;
      tile(r0, r0 + tile_rows < m ? r0 + tile_rows : m, c0,
           c0 + tile_cols < n ? c0 + tile_cols : n);
      poll_between_tiles();
    }
  });
}
