// The Eigen GEMM engine and the dense.h entry points. Every product is cut into fixed 2-D output
// tiles, and each tile is one single-threaded Eigen GEMM over the full reduction depth, run with
// fixed blocking on stack buffers. Tiles depend only on the shapes, so any thread count gives the
// same bits, and nothing touches the heap (Eigen's own product mallocs its packing panels; see
// GemmBlocking). float is dispatched to the engine chosen at build time.
#include "kernels/dense.h"

// GCC 12 reports its own AVX-512 headers' undefined pass-through operands (_mm512_undefined_ps
// in the unmasked shuffles Eigen's ptranspose calls) as uninitialized: -Wmaybe-uninitialized at
// -O3, silenced in CMakeLists.txt, and -Wuninitialized at -O2 (RelWithDebInfo), silenced here
// for Eigen's code only (GCC bug 105593).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <Eigen/Core>
#pragma GCC diagnostic pop

#include <algorithm>
#include <stdexcept>
#include <type_traits>

#include "kernels/gemm_engines.h"

// gemm_tile calls Eigen's internal GEMM entry point, whose signature is 3.4's.
static_assert(EIGEN_VERSION_AT_LEAST(3, 4, 0) && !EIGEN_VERSION_AT_LEAST(3, 4, 90),
              "kernels/dense.cpp drives Eigen 3.4's internal GEMM; re-check gemm_tile");

namespace tessera::kernels {
namespace {

// Output tiles (kTileRows x kTileCols = 128 x 256, gemm_engines.h): 128 rows halve the
// repacking of the shared operand compared with 64 (+8-12% single-thread GFLOP/s at
// 784-1024-1024 with Eigen), and the 256-column split still gives 4 tiles at n=128 so two
// threads have work.

// Fixed Eigen blocking. Eigen derives its blocking from the cache sizes it detects at run time
// (so its panels, and its summation order, vary by machine) and puts the packed panels on the
// heap when they exceed EIGEN_STACK_ALLOCATION_LIMIT (128 KiB): a 64x784x1024 float product
// mallocs twice per call. We pass a blocking with fixed panel sizes and stack buffers instead:
// the depth panel kc is 1 KiB of scalars (256 floats, 128 doubles), the A panel spans a whole
// tile's columns and the B panel a whole tile's rows, so a tile needs 384 KiB of stack at most
// (oneTBB workers get 4 MiB stacks by default).
template <class T>
struct GemmBlocking {
  static constexpr int64_t kDepth = 1024 / static_cast<int64_t>(sizeof(T));
  static constexpr int64_t kPanelA = kDepth * kTileCols;  // kc x mc, mc = tile columns
  static constexpr int64_t kPanelB = kDepth * kTileRows;  // kc x nc, nc = tile rows
};

// Eigen's blocking interface with caller-owned panels; Eigen uses them instead of allocating.
template <class T>
class FixedBlocking : public Eigen::internal::level3_blocking<T, T> {
 public:
  FixedBlocking(T* panel_a, T* panel_b) {
    this->m_blockA = panel_a;
    this->m_blockB = panel_b;
    this->m_mc = kTileCols;  // the row-major product is run transposed: its m is our columns
    this->m_nc = kTileRows;
    this->m_kc = GemmBlocking<T>::kDepth;
  }
};

// c (rows, cols) row-major, leading dim ldc, += a (rows, depth) · b (depth, cols).
// a and b are in Eigen storage orders LhsOrder/RhsOrder with leading dims lda/ldb.
// rows <= kTileRows and cols <= kTileCols. Single-threaded; no heap.
template <class T, int LhsOrder, int RhsOrder>
void gemm_tile(int64_t rows, int64_t cols, int64_t depth, const T* a, int64_t lda, const T* b,
               int64_t ldb, T* c, int64_t ldc) {
  alignas(64) T panel_a[GemmBlocking<T>::kPanelA];
  alignas(64) T panel_b[GemmBlocking<T>::kPanelB];
  FixedBlocking<T> blocking(panel_a, panel_b);
  // The engine behind `Map<RowMajor> c.noalias() += a * b` (Eigen 3.4), called directly so
  // that our blocking replaces the heap-allocated one. No GemmParallelInfo is passed, so Eigen
  // takes its sequential path even under OpenMP: oneTBB owns the cores.
  Eigen::internal::general_matrix_matrix_product<Eigen::Index, T, LhsOrder, false, T, RhsOrder,
                                                 false, Eigen::RowMajor, 1>::run(rows, cols, depth,
                                                                                 a, lda, b, ldb, c,
                                                                                 1, ldc, T(1),
                                                                                 blocking);
}

// for_tiles with this engine's tile size.
template <class Tile>
void for_eigen_tiles(int64_t m, int64_t n, const Tile& tile) {
  for_tiles(m, n, kTileRows, kTileCols, tile);
}

// Zeroes rows [r0, r1) x columns [c0, c1) of a row-major matrix with leading dim ld.
template <class T>
void zero_tile(T* c, int64_t ld, int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
  for (int64_t r = r0; r < r1; ++r) std::fill(c + r * ld + c0, c + r * ld + c1, T(0));
}

// Rows [r0, r1) x columns [c0, c1) of c (leading dim ld) = max(c, 0), as activation_forward's
// relu computes it (NaN passes through), while the tile is still in cache.
template <class T>
void relu_tile(T* c, int64_t ld, int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
  for (int64_t r = r0; r < r1; ++r) {
    T* row = c + r * ld;
    for (int64_t o = c0; o < c1; ++o) row[o] = row[o] < T(0) ? T(0) : row[o];
  }
}

}  // namespace

// x (n, in), w (out, in), b (out) or nullptr -> y (n, out) = x·wᵀ + b
template <class T>
void eigen_dense_forward(const T* x, const T* w, const T* b, T* y, int64_t n, int64_t in,
                         int64_t out, bool relu) {
  for_eigen_tiles(n, out, [&](int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
    // The tile starts as the bias and the product accumulates onto it: one pass over y instead
    // of zeroing it and adding the bias afterwards.
    if (b == nullptr) {
      zero_tile(y, out, r0, r1, c0, c1);
    } else {
      for (int64_t r = r0; r < r1; ++r) std::copy(b + c0, b + c1, y + r * out + c0);
    }
    // wᵀ (in, out) is w read column-major.
    gemm_tile<T, Eigen::RowMajor, Eigen::ColMajor>(r1 - r0, c1 - c0, in, x + r0 * in, in,
                                                   w + c0 * in, in, y + r0 * out + c0, out);
    if (relu) relu_tile(y, out, r0, r1, c0, c1);
  });
}

// dy (n, out), x (n, in), w (out, in) -> dw (out, in), db (out), dx (n, in); all overwritten.
template <class T>
void eigen_dense_backward(const T* dy, const T* x, const T* w, T* dw, T* db, T* dx, int64_t n,
                          int64_t in, int64_t out, bool relu_dx) {
  // dw (out, in) = dyᵀ·x: tiles of dw, each reducing over all n rows in one product.
  for_eigen_tiles(out, in, [&](int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
    zero_tile(dw, in, r0, r1, c0, c1);
    // dyᵀ rows [r0, r1) are dy's columns, i.e. dy read column-major from dy + r0.
    gemm_tile<T, Eigen::ColMajor, Eigen::RowMajor>(r1 - r0, c1 - c0, n, dy + r0, out, x + c0, in,
                                                   dw + r0 * in + c0, in);
    if (db != nullptr && c0 == 0) bias_backward_cols(dy, db, n, out, r0, r1);
    if constexpr (std::is_same_v<T, float>) report_dw_tile(dw, db, in, out, r0, r1, c0, c1);
  });
  bias_backward_without_inputs(dy, db, n, in, out);
  if (dx != nullptr) {
    // dx (n, in) = dy·w.
    for_eigen_tiles(n, in, [&](int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
      zero_tile(dx, in, r0, r1, c0, c1);
      gemm_tile<T, Eigen::RowMajor, Eigen::RowMajor>(r1 - r0, c1 - c0, out, dy + r0 * out, out,
                                                     w + c0, in, dx + r0 * in + c0, in);
      if (relu_dx) relu_backward_tile(x, dx, in, r0, r1, c0, c1);
    });
  }
}

// The build's engine for the float products (CMakeLists.txt defines at most one
// TESSERA_GEMM_ENGINE_*; none: Eigen).
#if defined(TESSERA_GEMM_ENGINE_AVX512)
const char* gemm_engine_name() { return "avx512"; }
int64_t dense_tile_rows() { return kSimdTileRows; }
int64_t dense_tile_stack_bytes() { return avx512_tile_stack_bytes(); }
constexpr auto* float_forward = &avx512_dense_forward;
constexpr auto* float_backward = &avx512_dense_backward;
#elif defined(TESSERA_GEMM_ENGINE_AVX2)
const char* gemm_engine_name() { return "avx2"; }
int64_t dense_tile_rows() { return kSimdTileRows; }
int64_t dense_tile_stack_bytes() { return avx2_tile_stack_bytes(); }
constexpr auto* float_forward = &avx2_dense_forward;
constexpr auto* float_backward = &avx2_dense_backward;
#elif defined(TESSERA_GEMM_ENGINE_ONEDNN)
const char* gemm_engine_name() { return "onednn"; }
int64_t dense_tile_rows() { return kOneDnnDwTileRows; }
int64_t dense_tile_stack_bytes() { return 0; }  // oneDNN packs on its heap
constexpr auto* float_forward = &onednn_dense_forward;
constexpr auto* float_backward = &onednn_dense_backward;
#else
const char* gemm_engine_name() { return "eigen"; }
int64_t dense_tile_rows() { return kTileRows; }
int64_t dense_tile_stack_bytes() {
  return static_cast<int64_t>(sizeof(float)) * (GemmBlocking<float>::kPanelA + GemmBlocking<float>::kPanelB);
}
constexpr auto* float_forward = &eigen_dense_forward<float>;
constexpr auto* float_backward = &eigen_dense_backward<float>;
#endif

// bf16 products: tessera's AVX512_BF16 engine in every build, whichever engine runs the float
// products (oneDNN's bf16 matmul allocates inside every call; kernels/gemm_avx512_bf16.cpp).
const char* bf16_engine_name() { return bf16_unsupported_reason() == nullptr ? "avx512" : "none"; }
const char* bf16_unsupported_reason() { return avx512_bf16_unsupported_reason(); }
void dense_forward_bf16(const bf16* x, const bf16* w, const float* b, float* y, bf16* y16,
                        int64_t n, int64_t in, int64_t out, bool relu) {
  avx512_dense_forward_bf16(x, w, b, y, y16, n, in, out, relu);
}
void dense_backward_bf16(const DenseBf16Backward& a, int64_t n, int64_t in, int64_t out) {
  avx512_dense_backward_bf16(a, n, in, out);
}

// float: the build's engine; double: Eigen (oneDNN has no double matmul).
template <class T>
void dense_forward(const T* x, const T* w, const T* b, T* y, int64_t n, int64_t in, int64_t out) {
  if constexpr (std::is_same_v<T, float>) {
    float_forward(x, w, b, y, n, in, out, false);
  } else {
    eigen_dense_forward(x, w, b, y, n, in, out, false);
  }
}

template <class T>
void dense_forward_relu(const T* x, const T* w, const T* b, T* y, int64_t n, int64_t in,
                        int64_t out) {
  if constexpr (std::is_same_v<T, float>) {
    float_forward(x, w, b, y, n, in, out, true);
  } else {
    eigen_dense_forward(x, w, b, y, n, in, out, true);
  }
}

#if defined(TESSERA_GEMM_ENGINE_AVX512) || defined(TESSERA_GEMM_ENGINE_AVX2)
#define TESSERA_FUSES_SGD 1
#else
#define TESSERA_FUSES_SGD 0
#endif
bool dense_backward_fuses_sgd() { return TESSERA_FUSES_SGD; }

namespace {
template <class T>
void backward(const T* dy, const T* x, const T* w, T* dw, T* db, T* dx, int64_t n, int64_t in,
              int64_t out, bool relu_dx, const SgdUpdate* sgd) {
  if constexpr (std::is_same_v<T, float>) {
#if TESSERA_FUSES_SGD
    float_backward(dy, x, w, dw, db, dx, n, in, out, relu_dx, sgd);
#else
    float_backward(dy, x, w, dw, db, dx, n, in, out, relu_dx);
    if (sgd != nullptr) {
      sgd_update_serial(*sgd, dw, out * in);
      if (db != nullptr) sgd_update_serial(sgd->at(out * in), db, out);
    }
#endif
  } else {
    if (sgd != nullptr) throw std::logic_error("dense_backward: a fused SGD update needs float");
    eigen_dense_backward(dy, x, w, dw, db, dx, n, in, out, relu_dx);
  }
}
}  // namespace

template <class T>
void dense_backward_relu(const T* dy, const T* x, const T* w, T* dw, T* db, T* dx, int64_t n,
                         int64_t in, int64_t out, const SgdUpdate* sgd) {
  backward(dy, x, w, dw, db, dx, n, in, out, true, sgd);
}

template <class T>
void dense_backward(const T* dy, const T* x, const T* w, T* dw, T* db, T* dx, int64_t n, int64_t in,
                    int64_t out, const SgdUpdate* sgd) {
  backward(dy, x, w, dw, db, dx, n, in, out, false, sgd);
}

#define TESSERA_DENSE_INSTANTIATE(T)                                                           \
  template void eigen_dense_forward<T>(const T*, const T*, const T*, T*, int64_t, int64_t,      \
                                       int64_t, bool);                                         \
  template void eigen_dense_backward<T>(const T*, const T*, const T*, T*, T*, T*, int64_t,      \
                                        int64_t, int64_t, bool);                               \
  template void dense_backward_relu<T>(const T*, const T*, const T*, T*, T*, T*, int64_t,       \
                                       int64_t, int64_t, const SgdUpdate*);                    \
  template void dense_forward_relu<T>(const T*, const T*, const T*, T*, int64_t, int64_t,       \
                                      int64_t);
TESSERA_DENSE_INSTANTIATE(float)
TESSERA_DENSE_INSTANTIATE(double)
#undef TESSERA_DENSE_INSTANTIATE
template void dense_forward<float>(const float*, const float*, const float*, float*, int64_t,
                                   int64_t, int64_t);
template void dense_forward<double>(const double*, const double*, const double*, double*, int64_t,
                                    int64_t, int64_t);
template void dense_backward<float>(const float*, const float*, const float*, float*, float*,
                                    float*, int64_t, int64_t, int64_t, const SgdUpdate*);
template void dense_backward<double>(const double*, const double*, const double*, double*, double*,
                                     double*, int64_t, int64_t, int64_t, const SgdUpdate*);

}  // namespace tessera::kernels
