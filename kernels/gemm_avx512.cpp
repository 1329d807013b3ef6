// tessera's own AVX-512 float GEMM engine: a register-blocked microkernel (6 rows x 64 columns,
// 24 zmm accumulators) over panels packed on the stack, in the BLIS design. Why our own and not
// oneDNN: oneDNN 2.6 allocates its execution context inside every primitive call (no public API
// avoids it), and a training step must not allocate; this engine never touches the heap. Each
// fixed output tile is computed by the calling thread, so results do not depend on the thread
// count, and every output element is one float FMA chain over k in order, so they do not depend
// on the tile or panel sizes either. Bias, ReLU and dX's ReLU mask are applied to
// the accumulators before the one store (the bias added after the sum, as nn.Linear does).
#include "kernels/gemm_engines.h"

#include <algorithm>
#include <stdexcept>

#include "kernels/dense.h"

#if defined(__AVX512F__)

#include "kernels/transpose.h"

namespace tessera::kernels {
namespace {

constexpr int kNr = 64;             // columns of the widest register block and of a panel
constexpr int64_t kKc = 1024;       // depth of a packed panel: 256 KiB, stays in L2 across rows

// What happens to the accumulators around a depth block: the first starts from 0,
// the last adds the bias and applies relu or dx's mask. `bias` and `mask` point at the block's
// first column (and `mask` at its first row); `mask` has the output's layout (leading dim ldc):
// outputs where mask <= 0 become 0 (relu_backward_tile's rule; a NaN mask keeps them).
struct Epilogue {
  const float* bias = nullptr;
  bool relu = false;
  const float* mask = nullptr;
};

inline __mmask16 lane_mask(int cols, int v) {
  const int c = cols - 16 * v;
  return c >= 16 ? __mmask16(0xffff) : c <= 0 ? __mmask16(0) : __mmask16((1u << c) - 1);
}

// c (M x cols, leading dim ldc) = [c or 0] + A (M x kc) · panel (kc x 16·NV, row stride kNr),
// then the epilogue if `last`. A(i, p) is a[i * lda + p]. cols <= 16·NV.
template <int M, int NV>
void microkernel(int64_t kc, const float* a, int64_t lda, const float* panel, float* c,
                 int64_t ldc, int cols, bool first, bool last, const Epilogue& e) {
  __mmask16 mk[NV];
  for (int v = 0; v < NV; ++v) mk[v] = lane_mask(cols, v);
  __m512 acc[M][NV];
  for (int i = 0; i < M; ++i) {
    for (int v = 0; v < NV; ++v) {
      acc[i][v] = first ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(mk[v], c + i * ldc + 16 * v);
    }
  }
  for (int64_t p = 0; p < kc; ++p) {
    const float* bp = panel + p * kNr;
    __m512 bv[NV];
    for (int v = 0; v < NV; ++v) bv[v] = _mm512_load_ps(bp + 16 * v);
    for (int i = 0; i < M; ++i) {
      const __m512 ai = _mm512_set1_ps(a[i * lda + p]);
      for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_fmadd_ps(ai, bv[v], acc[i][v]);
    }
  }
  const __m512 zero = _mm512_setzero_ps();
  __m512 bias[NV];
  for (int v = 0; v < NV; ++v) {
    bias[v] = last && e.bias != nullptr ? _mm512_maskz_loadu_ps(mk[v], e.bias + 16 * v) : zero;
  }
  for (int i = 0; i < M; ++i) {
    for (int v = 0; v < NV; ++v) {
      __m512 r = acc[i][v];
      if (last && e.bias != nullptr) r = _mm512_add_ps(r, bias[v]);
      if (last && e.relu) r = _mm512_max_ps(zero, r);  // max(0, NaN) is NaN, as relu_tile
      if (last && e.mask != nullptr) {
        const __m512 x = _mm512_maskz_loadu_ps(mk[v], e.mask + i * ldc + 16 * v);
        r = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(x, zero, _CMP_NLE_UQ), r);
      }
      _mm512_mask_storeu_ps(c + i * ldc + 16 * v, mk[v], r);
    }
  }
}

// Rows of the register block for a width of NV zmm: 24 accumulators on a full-width panel,
// 12 or fewer on the narrow last panel of an output.
template <int NV>
constexpr int kRowsFor = NV == 4 ? 6 : 12;

// The m x cols block at c through the microkernel of width NV, kRowsFor<NV> rows at a time.
template <int NV>
void run_rows(int64_t m, int64_t kc, const float* a, int64_t lda, const float* panel, float* c,
              int64_t ldc, int cols, bool first, bool last, const Epilogue& e) {
  constexpr int kM = kRowsFor<NV>;
  // The epilogue of the rows from i0 on.
  const auto rows_from = [&](int64_t i0) {
    Epilogue ei = e;
    if (ei.mask != nullptr) ei.mask += i0 * ldc;
    return ei;
  };
  int64_t i0 = 0;
  for (; i0 + kM <= m; i0 += kM) {
    microkernel<kM, NV>(kc, a + i0 * lda, lda, panel, c + i0 * ldc, ldc, cols, first, last,
                        rows_from(i0));
  }
  if (i0 == m) return;
  // The last rows in one block of their own height (a 256-row tile leaves 4).
  const float* ai = a + i0 * lda;
  float* ci = c + i0 * ldc;
  const Epilogue ei = rows_from(i0);
  switch (m - i0) {
    case 1: microkernel<1, NV>(kc, ai, lda, panel, ci, ldc, cols, first, last, ei); break;
    case 2: microkernel<2, NV>(kc, ai, lda, panel, ci, ldc, cols, first, last, ei); break;
    case 3: microkernel<3, NV>(kc, ai, lda, panel, ci, ldc, cols, first, last, ei); break;
    case 4: microkernel<4, NV>(kc, ai, lda, panel, ci, ldc, cols, first, last, ei); break;
    case 5: microkernel<5, NV>(kc, ai, lda, panel, ci, ldc, cols, first, last, ei); break;
    default:
      for (; i0 < m; ++i0) {
        microkernel<1, NV>(kc, a + i0 * lda, lda, panel, c + i0 * ldc, ldc, cols, first, last,
                           rows_from(i0));
      }
  }
}

// panel (kc x kNr) = B(p, j) = b[p * ldb + j], p < kc, j < cols; columns from cols on are 0.
void pack_rows(const float* b, int64_t ldb, int64_t kc, int cols, float* panel) {
  __mmask16 mk[kNr / 16];
  for (int v = 0; v < kNr / 16; ++v) mk[v] = lane_mask(cols, v);
  for (int64_t p = 0; p < kc; ++p) {
    for (int v = 0; v < kNr / 16; ++v) {
      _mm512_store_ps(panel + p * kNr + 16 * v, _mm512_maskz_loadu_ps(mk[v], b + p * ldb + 16 * v));
    }
  }
}

// panel (kc x kNr) = B(p, j) = bt[j * ldb + p] (B stored transposed: the forward's wᵀ), in
// 16 x 16 register transposes; columns from cols on are 0.
void pack_transposed(const float* bt, int64_t ldb, int64_t kc, int cols, float* panel) {
  int j = 0;
  for (; j + 16 <= cols; j += 16) {
    int64_t p = 0;
    for (; p + 16 <= kc; p += 16) transpose16(bt + j * ldb + p, ldb, panel + p * kNr + j, kNr);
    for (; p < kc; ++p) {
      for (int jj = j; jj < j + 16; ++jj) panel[p * kNr + jj] = bt[jj * ldb + p];
    }
  }
  for (int64_t p = 0; p < kc; ++p) {
    for (int jj = j; jj < kNr; ++jj) panel[p * kNr + jj] = jj < cols ? bt[jj * ldb + p] : 0.0f;
  }
}

// c (m x n, leading dim ldc) = A (m x k) · B (k x n) with the epilogue, on the calling thread,
// added to c when `accumulate`. A(i, p) = a[i * lda + p]; B(p, j) = b[p * ldb + j], or
// b[j * ldb + p] when b_transposed. Depth blocks outermost, then 64-column panels of B, each
// packed once and run against every row of A.
void gemm_tile(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
               int64_t ldb, bool b_transposed, float* c, int64_t ldc, const Epilogue& e,
               bool accumulate = false) {
  alignas(64) float panel[kKc * kNr];
  // k == 0 still runs one empty block: the output is then the bias (or 0, or c unchanged).
  for (int64_t p0 = 0; p0 == 0 || p0 < k; p0 += kKc) {
    const int64_t kc = std::min(kKc, k - p0);
    const bool first = p0 == 0 && !accumulate, last = p0 + kKc >= k;
    const float* ap = a + p0;
    for (int64_t j0 = 0; j0 < n; j0 += kNr) {
      const int cols = static_cast<int>(std::min<int64_t>(kNr, n - j0));
      if (b_transposed) {
        pack_transposed(b + j0 * ldb + p0, ldb, kc, cols, panel);
      } else {
        pack_rows(b + p0 * ldb + j0, ldb, kc, cols, panel);
      }
      Epilogue ej = e;
      if (ej.bias != nullptr) ej.bias += j0;
      if (ej.mask != nullptr) ej.mask += j0;
      float* cp = c + j0;
      if (cols > 32) {
        run_rows<4>(m, kc, ap, lda, panel, cp, ldc, cols, first, last, ej);
      } else if (cols > 16) {
        run_rows<2>(m, kc, ap, lda, panel, cp, ldc, cols, first, last, ej);
      } else {
        run_rows<1>(m, kc, ap, lda, panel, cp, ldc, cols, first, last, ej);
      }
    }
  }
}

// Depth blocks of the weight gradient's staged dyᵀ: 256 x 512 floats, 512 KiB of stack.
constexpr int64_t kDwDepth = 512;

template <class Tile>
void for_avx512_tiles(int64_t m, int64_t n, const Tile& tile) {
  for_tiles(m, n, kAvx512TileRows, kAvx512TileCols, tile);
}

}  // namespace

bool avx512_available() { return true; }

// x (n, in), w (out, in), b (out) or nullptr -> y (n, out) = x·wᵀ + b [relu]
void avx512_dense_forward(const float* x, const float* w, const float* b, float* y, int64_t n,
                          int64_t in, int64_t out, bool relu) {
  for_avx512_tiles(n, out, [&](int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
    const Epilogue e{b == nullptr ? nullptr : b + c0, relu, nullptr};
    gemm_tile(r1 - r0, c1 - c0, in, x + r0 * in, in, w + c0 * in, in, true, y + r0 * out + c0, out,
              e);
  });
}

// dy (n, out), x (n, in), w (out, in) -> dw (out, in), db (out), dx (n, in); all overwritten.
void avx512_dense_backward(const float* dy, const float* x, const float* w, float* dw, float* db,
                           float* dx, int64_t n, int64_t in, int64_t out, bool relu_dx) {
  // dw = dyᵀ·x in row tiles of dw as wide as kAvx512DwTileCols: each depth block of dyᵀ (its
  // rows are dy's columns) is first copied into a dense block on the stack, so the product reads
  // A as rows like the other two (dyᵀ read in place, strided, ran 5-10% slower), and the copy
  // serves all the tile's columns. B = x rows. The bias gradient is summed in the copy.
  const auto dw_tile = [&](int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
    alignas(64) float dyt[kAvx512TileRows * kDwDepth];
    // The tile at column 0 sums the bias gradient in the staging pass, rows in order.
    float* dbt = db != nullptr && c0 == 0 ? db + r0 : nullptr;
    if (dbt != nullptr) std::fill(dbt, dbt + (r1 - r0), 0.0f);
    // n == 0 runs one empty block, as gemm_tile does: dw is then 0.
    for (int64_t p0 = 0; p0 == 0 || p0 < n; p0 += kDwDepth) {
      const int64_t kc = std::min(kDwDepth, n - p0);
      transpose_block(dy + p0 * out + r0, out, kc, r1 - r0, dyt, kc, dbt);
      gemm_tile(r1 - r0, c1 - c0, kc, dyt, kc, x + p0 * in + c0, in, false, dw + r0 * in + c0, in,
                Epilogue{}, p0 > 0);
    }
    report_dw_tile(dw, db, in, out, r0, r1, c0, c1);
  };
  for_tiles(out, in, kAvx512TileRows, kAvx512DwTileCols, dw_tile);
  bias_backward_without_inputs(dy, db, n, in, out);
  if (dx == nullptr) return;
  // dx = dy·w [⊙ (x > 0)]: A = dy rows, B = w rows.
  for_avx512_tiles(n, in, [&](int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
    const Epilogue e{nullptr, false, relu_dx ? x + r0 * in + c0 : nullptr};
    gemm_tile(r1 - r0, c1 - c0, out, dy + r0 * out, out, w + c0, in, false, dx + r0 * in + c0, in,
              e);
  });
}

}  // namespace tessera::kernels

#else  // no AVX-512 in this build's target: the engine is not compiled in.

namespace tessera::kernels {

bool avx512_available() { return false; }

[[noreturn]] static void no_avx512() {
  throw std::logic_error(
      "this tessera build has no AVX-512 engine (it was compiled for a CPU target without "
      "AVX-512F)");
}

void avx512_dense_forward(const float*, const float*, const float*, float*, int64_t, int64_t,
                          int64_t, bool) {
  no_avx512();
}
void avx512_dense_backward(const float*, const float*, const float*, float*, float*, float*,
                           int64_t, int64_t, int64_t, bool) {
  no_avx512();
}

}  // namespace tessera::kernels

#endif
