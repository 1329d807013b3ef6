// The GEMM engines behind kernels/dense.h, callable one by one (for the benchmark, which sets
// them side by side). Same contracts as dense.h; `relu` fuses ReLU into the forward epilogue.
// Each engine tiles its output with the same fixed 128 x 256 tiles.
#pragma once

#include <cstdint>

namespace tessera::kernels {

// Output tile of every product: 128 rows x 256 columns (see dense.cpp for why).
inline constexpr int64_t kTileRows = 128;
inline constexpr int64_t kTileCols = 256;

// Eigen 3.4 with fixed blocking on stack panels: never touches the heap.
template <class T>
void eigen_dense_forward(const T* x, const T* w, const T* b, T* y, int64_t n, int64_t in,
                         int64_t out, bool relu);
template <class T>
void eigen_dense_backward(const T* dy, const T* x, const T* w, T* dw, T* db, T* dx, int64_t n,
                          int64_t in, int64_t out);

// Whether this build has the oneDNN engine (TESSERA_GEMM=onednn).
bool onednn_available();

// oneDNN matmul primitives, float only. Primitives and per-thread execution state are created on
// first use of each tile shape and reused after. Thread-safe; throws if !onednn_available().
void onednn_dense_forward(const float* x, const float* w, const float* b, float* y, int64_t n,
                          int64_t in, int64_t out, bool relu);
void onednn_dense_backward(const float* dy, const float* x, const float* w, float* dw, float* db,
                           float* dx, int64_t n, int64_t in, int64_t out);

// Calls tile(r0, r1, c0, c1) for each fixed tile of an (m, n) output, possibly in parallel.
template <class Tile>
void for_tiles(int64_t m, int64_t n, const Tile& tile);

// db (out) = Σ_rows dy over fixed column chunks, rows added in order: the same bits for any
// thread count and engine.
template <class T>
void bias_backward(const T* dy, T* db, int64_t n, int64_t out);

}  // namespace tessera::kernels

#include "kernels/parallel.h"

template <class Tile>
void tessera::kernels::for_tiles(int64_t m, int64_t n, const Tile& tile) {
  if (m <= 0 || n <= 0) return;
  const int64_t tiles_n = (n + kTileCols - 1) / kTileCols;
  const int64_t tiles = ((m + kTileRows - 1) / kTileRows) * tiles_n;
  for_chunks(tiles, 1, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t r0 = (t / tiles_n) * kTileRows;
      const int64_t c0 = (t % tiles_n) * kTileCols;
      tile(r0, r0 + kTileRows < m ? r0 + kTileRows : m, c0, c0 + kTileCols < n ? c0 + kTileCols : n);
    }
  });
}
