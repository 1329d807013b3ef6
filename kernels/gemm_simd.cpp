// tessera's own float GEMM engine: a register-blocked microkernel over panels packed on the
// stack, in the BLIS design, written once over the vector vocabulary of kernels/simd.h and
// compiled for AVX-512 (6 x 64 blocks, 24 zmm accumulators) and AVX2 + FMA (6 x 16 blocks, 12
// ymm accumulators). Why our own and not oneDNN: oneDNN 2.6 allocates its execution context
// inside every primitive call (no public API avoids it), and a training step must not allocate;
// this engine never touches the heap. Each fixed output tile is computed by the calling thread,
// so results do not depend on the thread count, and every output element is one float FMA chain
// over k in order, so they depend neither on the tile, panel or depth-block sizes nor on the
// vector width: the AVX-512 and AVX2 builds give the same bits. Bias, ReLU and dX's ReLU mask
// are applied to the accumulators before the last store (the bias added after the sum, as
// nn.Linear does).
#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>

#include "kernels/dense.h"
#include "kernels/gemm_engines.h"
#include "kernels/optim.h"
#include "kernels/simd.h"

#if defined(__AVX2__) && defined(__FMA__)

namespace tessera::kernels {
namespace {

// What happens to the accumulators around a depth block: the first starts from 0,
// the last adds the bias and applies relu or dx's mask. `bias` and `mask` point at the block's
// first column (and `mask` at its first row); `mask` has the output's layout (leading dim ldc):
// outputs where mask <= 0 become 0 (relu_backward_tile's rule; a NaN mask keeps them). With
// `non_finite`, the stored outputs are tested in registers and it is set if one is a NaN or an
// infinity (left alone otherwise): the weight gradient's check, without a pass over memory.
// With `sgd`, the stored outputs are also the gradient of the parameters at sgd->p, in the
// output's layout from `origin` on (the weight gradient's first element): their SGD update is
// written to sgd->p_next (and buf_next) from the registers, sgd_element's FMAs in its order.
struct Epilogue {
  const float* bias = nullptr;
  bool relu = false;
  const float* mask = nullptr;
  bool* non_finite = nullptr;
  const SgdUpdate* sgd = nullptr;
  const float* origin = nullptr;
};

// Columns of a packed panel: the widest register block.
template <class S>
constexpr int kNr = S::kLanes * S::kPanelVectors;

// Rows of a packed micro-panel of A (S::kPackA): A's rows i0..i0+5 interleaved, a[p * 6 + i].
constexpr int kMr = 6;
// A tile's rows rounded up to whole micro-panels: the rows of a packed block of A.
constexpr int64_t kPackedTileRows = (kSimdTileRows + kMr - 1) / kMr * kMr;

// Where A is read in place (AVX-512), the weight gradient stages dyᵀ in one block of 512 KiB
// of stack: 256 rows x 512 deep, or 512 x 256 for dw_tile_rows' taller tiles.
constexpr int64_t kDwInPlaceStage = 512 * 256;

// A tile's stack buffers, in floats (tile_stack_bytes adds them up): gemm_block's panels of B,
// gemm_tile's packed A (1 float where A is read in place), and the weight gradient's staged dyᵀ.
template <class S>
constexpr int64_t kPanelFloats = S::kPackGroup * S::kDepth * kNr<S>;
template <class S>
constexpr int64_t kPackedAFloats = S::kPackA ? kPackedTileRows * S::kDepth : 1;
template <class S>
constexpr int64_t kDwStageFloats = S::kPackA ? kPackedTileRows * S::kDepth : kDwInPlaceStage;

// The register blocks over m rows of packed A: blocks of kMr rows, except that where m leaves 1
// to 4 rows past them, the last 7 to 10 rows are two blocks of 3 to 5. A block of 4 rows or
// fewer has too few accumulators (8 or less) to hide the FMA latency: the 4-row remainder of a
// 256-row tile ran at half speed, 2.5% of a training step. Block q's micro-panel is still slot
// q of the packed A (ap + q·kMr·kc), its rows padded with 0 to kMr.
struct RowBlocks {
  int64_t m, count, whole;  // whole: blocks of kMr rows at the start
  explicit RowBlocks(int64_t rows) : m(rows) {
    const int64_t full = m / kMr, rest = m % kMr;
    const bool split = full > 0 && rest > 0 && rest < kMr - 1;
    whole = split ? full - 1 : full;
    count = full + (rest > 0 ? 1 : 0);
  }
  int64_t start(int64_t q) const {
    return q <= whole ? q * kMr : whole * kMr + (m - whole * kMr + 1) / 2;
  }
  int rows(int64_t q) const {
    return static_cast<int>((q + 1 < count ? start(q + 1) : m) - start(q));
  }
};

// Rows of B ahead that a filling microkernel fetches: its rows are a page apart in a 1024-wide
// layer, a stride the hardware prefetchers do not follow (24 and 48 measured alike, the
// 1024-wide layer's backward 1-1.5% faster).
constexpr int64_t kFillAhead = 48;
// Floats ahead that the in-place rows of A and pack_transposed's source rows are fetched, once
// per 64-byte line (kLineFloats): 64 and 128 measured alike for A.
constexpr int64_t kRowAhead = 64;
constexpr int64_t kLineFloats = 64 / sizeof(float);

// The rows of B that the next panel's fill reads in place (rows of `lines` 64-byte lines, ld
// floats apart), fetched into L2 a slice per register block of the current panel: those rows
// are a page apart in a 1024-wide layer, where the hardware prefetchers do not follow and the
// fill's own fetch kFillAhead rows on comes too late.
struct Ahead {
  const float* b = nullptr;
  int64_t ld = 0, rows = 0;
  int lines = 0;
  void fetch(int64_t r0, int64_t r1) const {
    for (int64_t r = r0; r < r1; ++r) {
      for (int l = 0; l < lines; ++l) __builtin_prefetch(b + r * ld + l * kLineFloats, 0, 2);
    }
  }
};

// c (M x cols, leading dim ldc) = [c or 0] + A (M x kc) · panel (kc x lanes·NV, row stride
// kNr), then the epilogue if `last`. A(i, p) is a[i * lda + p], or a[p * kMr + i] if kPacked.
// cols <= lanes·NV. With kFill, the panel's rows are read from B's rows instead (B(p, j) =
// b[p * ldb + j], cols == lanes·NV) and stored into `fill`, the panel to be (`panel` unused).
template <class S, int M, int NV, bool kPacked, bool kFill = false>
void microkernel(int64_t kc, const float* a, int64_t lda, const float* panel, float* c,
                 int64_t ldc, int cols, bool first, bool last, const Epilogue& e,
                 const float* b = nullptr, int64_t ldb = 0, float* fill = nullptr) {
  using V = typename S::V;
  constexpr int L = S::kLanes;
  // Whole vectors take plain loads and stores (AVX2's masked ones cost more).
  const bool whole = cols >= L * NV;
  typename S::Mask mk[NV];
  for (int v = 0; v < NV; ++v) mk[v] = S::mask(cols - L * v);
  const auto load_c = [&](const float* p, int v) {
    return whole ? S::loadu(p + L * v) : S::maskz_loadu(mk[v], p + L * v);
  };
  const auto store_c = [&](float* p, int v, V r) {
    if (whole) {
      S::storeu(p + L * v, r);
    } else {
      S::mask_storeu(p + L * v, mk[v], r);
    }
  };
  V acc[M][NV];
  for (int i = 0; i < M; ++i) {
    for (int v = 0; v < NV; ++v) acc[i][v] = first ? S::zero() : load_c(c + i * ldc, v);
  }
  // The update's operands for this block are fetched over its first k steps, a vector's line
  // of each every 8 steps: read in the epilogue straight from memory, each block of the weight
  // gradient stalled on them (the fused step ran 5% slower than the unfused one).
  const SgdUpdate* fetch = last ? e.sgd : nullptr;
  const int64_t fetch_at = fetch != nullptr ? c - e.origin : 0;
  for (int64_t p = 0; p < kc; ++p) {
    if (fetch != nullptr && p % 8 == 0 && p / 8 < M * NV) {
      const int64_t at = fetch_at + p / 8 / NV * ldc + L * (p / 8 % NV);
      __builtin_prefetch(fetch->p + at, 0, 3);
      __builtin_prefetch(fetch->p_next + at, 1, 3);
      if (fetch->buf != nullptr) {
        __builtin_prefetch(fetch->buf + at, 0, 3);
        __builtin_prefetch(fetch->buf_next + at, 1, 3);
      }
    }
    V bv[NV];
    if constexpr (kFill) {
      if (p + kFillAhead < kc) {
        for (int v = 0; v < NV; ++v) __builtin_prefetch(b + (p + kFillAhead) * ldb + L * v, 0, 3);
      }
      for (int v = 0; v < NV; ++v) {
        bv[v] = S::loadu(b + p * ldb + L * v);
        S::store(fill + p * kNr<S> + L * v, bv[v]);
      }
    } else {
      for (int v = 0; v < NV; ++v) bv[v] = S::load(panel + p * kNr<S> + L * v);
    }
    // A's rows read in place are M streams, a row apart (a page in a 1024-wide layer), read
    // from L3 once per panel, more streams than the hardware prefetchers keep ahead of: each
    // row's line kRowAhead floats on is fetched (the forwards 1.2-1.5% faster in the step,
    // the 1024-wide backward 1%).
    if constexpr (!kPacked) {
      if (p % kLineFloats == 0 && p + kRowAhead < kc) {
        for (int i = 0; i < M; ++i) __builtin_prefetch(a + i * lda + p + kRowAhead, 0, 3);
      }
    }
    for (int i = 0; i < M; ++i) {
      const V ai = S::set1(kPacked ? a[p * kMr + i] : a[i * lda + p]);
      for (int v = 0; v < NV; ++v) acc[i][v] = S::fmadd(ai, bv[v], acc[i][v]);
    }
  }
  V bias[NV];
  for (int v = 0; v < NV; ++v) {
    bias[v] = last && e.bias != nullptr ? load_c(e.bias, v) : S::zero();
  }
  const bool check = last && e.non_finite != nullptr;
  typename S::Flags bad = S::no_flags();
  for (int i = 0; i < M; ++i) {
    for (int v = 0; v < NV; ++v) {
      V r = acc[i][v];
      if (last && e.bias != nullptr) r = S::add(r, bias[v]);
      if (last && e.relu) r = S::relu(r);  // max(0, NaN) is NaN, as relu_tile
      if (last && e.mask != nullptr) r = S::keep_where_positive(load_c(e.mask + i * ldc, v), r);
      if (check) bad = S::flag_non_finite(bad, mk[v], r);
      store_c(c + i * ldc, v, r);
    }
  }
  if (check && S::any(bad)) *e.non_finite = true;
  if (last && e.sgd != nullptr) {
    const SgdUpdate& u = *e.sgd;
    const V neg_lr = S::set1(-u.lr), mom = S::set1(u.momentum), wd = S::set1(u.wd);
    for (int i = 0; i < M; ++i) {
      const int64_t at = c + i * ldc - e.origin;
      for (int v = 0; v < NV; ++v) {
        const V p = load_c(u.p + at, v);
        V d = u.wd != 0.0f ? S::fmadd(wd, p, acc[i][v]) : acc[i][v];
        if (u.buf != nullptr) {
          if (!u.first_step) d = S::fmadd(mom, load_c(u.buf + at, v), d);
          store_c(u.buf_next + at, v, d);
        }
        store_c(u.p_next + at, v, S::fmadd(neg_lr, d, p));
      }
    }
  }
}

// Rows of the register block for a width of NV vectors: 6 on a full-width panel (24 zmm or 12
// ymm accumulators), 12 on the narrow last panel of an output unless A is packed in 6-row
// micro-panels.
template <class S, int NV>
constexpr int kRowsFor = NV == S::kPanelVectors || S::kPackA ? kMr : 12;

// The m x cols block at c through the microkernel of width NV: A read in place (leading dim lda)
// kRowsFor rows at a time, or with S::kPackA packed by pack_a, in RowBlocks' blocks (lda unused).
template <class S, int NV>
void run_rows(int64_t m, int64_t kc, const float* a, int64_t lda, const float* panel, float* c,
              int64_t ldc, int cols, bool first, bool last, const Epilogue& e,
              const Ahead& ahead = {}) {
  constexpr int kM = kRowsFor<S, NV>;
  constexpr bool kP = S::kPackA;
  // The epilogue of the rows from r on.
  const auto rows_from = [&](int64_t r) {
    Epilogue er = e;
    if (er.mask != nullptr) er.mask += r * ldc;
    return er;
  };
  // One block of 1 to kMr rows, A from ai, output and mask from row r.
  const auto block = [&](int rows, const float* ai, int64_t r) {
    float* cr = c + r * ldc;
    const Epilogue er = rows_from(r);
    switch (rows) {
      case 1: microkernel<S, 1, NV, kP>(kc, ai, lda, panel, cr, ldc, cols, first, last, er); break;
      case 2: microkernel<S, 2, NV, kP>(kc, ai, lda, panel, cr, ldc, cols, first, last, er); break;
      case 3: microkernel<S, 3, NV, kP>(kc, ai, lda, panel, cr, ldc, cols, first, last, er); break;
      case 4: microkernel<S, 4, NV, kP>(kc, ai, lda, panel, cr, ldc, cols, first, last, er); break;
      case 5: microkernel<S, 5, NV, kP>(kc, ai, lda, panel, cr, ldc, cols, first, last, er); break;
      default: microkernel<S, kMr, NV, kP>(kc, ai, lda, panel, cr, ldc, cols, first, last, er);
    }
  };
  if constexpr (kP) {
    const RowBlocks blocks(m);
    for (int64_t q = 0; q < blocks.count; ++q) {
      block(blocks.rows(q), a + q * kMr * kc, blocks.start(q));
    }
  } else {
    int64_t i0 = 0;
    const int64_t blocks = m / kM;
    for (int64_t q = 0; i0 + kM <= m; i0 += kM, ++q) {
      ahead.fetch(q * ahead.rows / blocks, (q + 1) * ahead.rows / blocks);
      microkernel<S, kM, NV, kP>(kc, a + i0 * lda, lda, panel, c + i0 * ldc, ldc, cols, first,
                                 last, rows_from(i0));
    }
    // The last rows in one block of their own height (a 256-row tile leaves 4), or after blocks
    // of 12, 6 to 11 rows one at a time.
    if (m - i0 < kMr) {
      if (i0 < m) block(static_cast<int>(m - i0), a + i0 * lda, i0);
    } else {
      for (; i0 < m; ++i0) block(1, a + i0 * lda, i0);
    }
  }
}

// A (m x kc, A(i, p) = a[i * lda + p]) in micro-panels of kMr rows, one per RowBlocks block q:
// A(start(q) + i, p) at ap[q * kMr * kc + p * kMr + i]; rows past the block's are 0. The
// broadcasts of a micro-panel then walk one stream, where rows of A read in place are kMr
// streams, 4 KiB apart in a 1024-wide layer (one L1 set on an 8-way 32 KiB L1). In 6 x 8
// register transposes: 22-26 GB/s, where the scalar loop ran at 2.8-6.4 (Zen 3).
void pack_a(const float* a, int64_t lda, int64_t m, int64_t kc, float* ap) {
  static_assert(kMr == 6);  // transpose6x8's micro-panel height
  const RowBlocks blocks(m);
  for (int64_t q = 0; q < blocks.count; ++q) {
    const int rows = blocks.rows(q);
    float* dst = ap + q * kMr * kc;
    const float* src = a + blocks.start(q) * lda;
    int64_t p = 0;
    for (; p + 8 <= kc; p += 8) transpose6x8(src + p, lda, rows, dst + p * kMr);
    for (; p < kc; ++p) {
      for (int i = 0; i < kMr; ++i) dst[p * kMr + i] = i < rows ? src[i * lda + p] : 0.0f;
    }
  }
}

// A panel of `cols` columns through the narrowest register block that covers them.
template <class S, int NV = S::kPanelVectors>
void run_panel(int64_t m, int64_t kc, const float* a, int64_t lda, const float* panel, float* c,
               int64_t ldc, int cols, bool first, bool last, const Epilogue& e,
               const Ahead& ahead = {}) {
  if constexpr (NV > 1) {
    if (cols <= S::kLanes * (NV / 2)) {
      run_panel<S, NV / 2>(m, kc, a, lda, panel, c, ldc, cols, first, last, e);
      return;
    }
  }
  run_rows<S, NV>(m, kc, a, lda, panel, c, ldc, cols, first, last, e, ahead);
}

// panels g < groups, each kc x kNr at panel + g·kc·kNr: B(p, g·kNr + j) = b[p * ldb + g·kNr + j],
// p < kc, j < kNr, g·kNr + j < cols; columns from cols on are 0. Several panels at once, so each
// row of B is read groups·kNr floats at a time: B's rows are 4 KiB apart in a 1024-wide layer, a
// page each, and one 64-byte line per row read at a time ran at 13 GB/s where 4 lines ran at 30.
template <class S>
void pack_rows(const float* b, int64_t ldb, int64_t kc, int groups, int cols, float* panel) {
  constexpr int L = S::kLanes, kN = kNr<S>, kV = S::kPanelVectors;
  typename S::Mask mk[kV];
  const int tail = cols - (groups - 1) * kN;  // the last panel's columns
  for (int v = 0; v < kV; ++v) mk[v] = S::mask(tail - L * v);
  for (int64_t p = 0; p < kc; ++p) {
    const float* src = b + p * ldb;
    float* dst = panel + p * kN;
    for (int g = 0; g + 1 < groups; ++g) {
      for (int v = 0; v < kV; ++v) S::store(dst + g * kc * kN + L * v, S::loadu(src + g * kN + L * v));
    }
    const int g = groups - 1;
    for (int v = 0; v < kV; ++v) {
      S::store(dst + g * kc * kN + L * v, S::maskz_loadu(mk[v], src + g * kN + L * v));
    }
  }
}

// panel (kc x kNr) = B(p, j) = bt[j * ldb + p] (B stored transposed: the forward's wᵀ), in
// lanes x lanes register transposes; columns from cols on are 0.
template <class S>
void pack_transposed(const float* bt, int64_t ldb, int64_t kc, int cols, float* panel) {
  constexpr int L = S::kLanes, kN = kNr<S>;
  int j = 0;
  for (; j + L <= cols; j += L) {
    int64_t p = 0;
    for (; p + L <= kc; p += L) {
      // The lanes rows read together are as many streams, a row apart, each advancing one line
      // per transpose, more than the hardware prefetchers keep ahead of: each row's line
      // kRowAhead floats on is fetched here. The first layer's forward (784-wide rows) 1.5%
      // faster in bench/step_bench; the 1024-wide one, whose rows a page apart share one L1
      // set, alike.
      if (p % kLineFloats == 0 && p + kRowAhead < kc) {
        for (int i = 0; i < L; ++i) __builtin_prefetch(bt + (j + i) * ldb + p + kRowAhead, 0, 3);
      }
      S::transpose(bt + j * ldb + p, ldb, panel + p * kN + j, kN);
    }
    for (; p < kc; ++p) {
      for (int jj = j; jj < j + L; ++jj) panel[p * kN + jj] = bt[jj * ldb + p];
    }
  }
  for (int64_t p = 0; p < kc; ++p) {
    for (int jj = j; jj < kN; ++jj) panel[p * kN + jj] = jj < cols ? bt[jj * ldb + p] : 0.0f;
  }
}

// One depth block of c (m x n, leading dim ldc) [+]= A (m x kc) · B (kc x n), kc <= S::kDepth,
// on the calling thread: A as run_rows takes it (in place, or packed where S::kPackA);
// B(p, j) = b[p * ldb + j], or b[j * ldb + p] when b_transposed. Each panel of B is packed once
// and run against every row of A.
template <class S>
void gemm_block(int64_t m, int64_t n, int64_t kc, const float* a, int64_t lda, const float* b,
                int64_t ldb, bool b_transposed, float* c, int64_t ldc, bool first, bool last,
                const Epilogue& e) {
  constexpr int kN = kNr<S>;
  constexpr int kG = S::kPackGroup;
  alignas(64) float panel[kPanelFloats<S>];
  // The epilogue of the outputs from row r, column j on.
  const auto at = [&](int64_t r, int64_t j) {
    Epilogue ej = e;
    if (ej.bias != nullptr) ej.bias += j;
    if (ej.mask != nullptr) ej.mask += r * ldc + j;
    return ej;
  };
  for (int64_t j0 = 0; j0 < n; j0 += kG * kN) {
    const int cols = static_cast<int>(std::min<int64_t>(kG * kN, n - j0));
    const int groups = (cols + kN - 1) / kN;
    if (b_transposed) {
      for (int g = 0; g < groups; ++g) {
        pack_transposed<S>(b + (j0 + g * kN) * ldb, ldb, kc, std::min(kN, cols - g * kN),
                           panel + g * kc * kN);
      }
    } else if (kG == 1 && !S::kPackA && cols == kN && m >= kMr) {
      // The first register block packs the whole panel of B's rows as it loads them, so those
      // loads (a page apart in a 1024-wide layer: latency-bound in pack_rows' own pass) overlap
      // its FMAs; the other blocks then run on the panel. Called here, not from run_rows: a
      // fill threaded through every row block cost the forward 1.3% in code layout alone.
      // AVX-512 only: AVX2 packs A and packs four panels per pass over B's rows.
      microkernel<S, kMr, S::kPanelVectors, false, true>(kc, a, lda, panel, c + j0, ldc, kN,
                                                         first, last, at(0, j0), b + j0, ldb,
                                                         panel);
      const int64_t next = std::min<int64_t>(kN, n - j0 - kN);
      const Ahead ahead{b + j0 + kN, ldb, next > 0 ? kc : 0,
                        static_cast<int>((next + kLineFloats - 1) / kLineFloats)};
      run_panel<S>(m - kMr, kc, a + kMr * lda, lda, panel, c + kMr * ldc + j0, ldc, kN, first,
                   last, at(kMr, j0), ahead);
      continue;
    } else {
      pack_rows<S>(b + j0, ldb, kc, groups, cols, panel);
    }
    for (int g = 0; g < groups; ++g) {
      const int64_t jg = j0 + g * kN;
      run_panel<S>(m, kc, a, lda, panel + g * kc * kN, c + jg, ldc, std::min(kN, cols - g * kN),
                   first, last, at(0, jg));
    }
  }
}

// c (m x n, leading dim ldc) = A (m x k) · B (k x n) with the epilogue, on the calling thread,
// added to c when `accumulate`. A(i, p) = a[i * lda + p], m <= a tile's rows; B as gemm_block
// takes it. Depth blocks of S::kDepth outermost; where S::kPackA each block of A is packed first.
template <class S>
void gemm_tile(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
               int64_t ldb, bool b_transposed, float* c, int64_t ldc, const Epilogue& e,
               bool accumulate = false) {
  constexpr int64_t kKc = S::kDepth;
  alignas(64) float apack[kPackedAFloats<S>];
  // k == 0 still runs one empty block: the output is then the bias (or 0, or c unchanged).
  for (int64_t p0 = 0; p0 == 0 || p0 < k; p0 += kKc) {
    const int64_t kc = std::min(kKc, k - p0);
    const bool first = p0 == 0 && !accumulate, last = p0 + kKc >= k;
    const float* ap = a + p0;
    if constexpr (S::kPackA) {
      pack_a(ap, lda, m, kc, apack);
      ap = apack;
    }
    gemm_block<S>(m, n, kc, ap, lda, b_transposed ? b + p0 : b + p0 * ldb, ldb, b_transposed, c,
                  ldc, first, last, e);
  }
}

// dyᵀ's rows [0, m) (dy's columns, dy + lds·p + i) over kc rows of dy, straight into pack_a's
// micro-panels (6 adjacent floats of each dy row per depth step: no transposition needed); and
// colsum[0, m) += dy's rows, added in row order, unless colsum is nullptr. Row by row, so each
// dy row is read once, contiguously, and the column sums are one vector add per row.
void pack_dyt(const float* dy, int64_t lds, int64_t kc, int64_t m, float* __restrict ap,
              float* __restrict colsum) {
  const RowBlocks blocks(m);
  const int64_t whole = blocks.whole * kMr;  // rows in whole blocks
  for (int64_t p = 0; p < kc; ++p) {
    const float* __restrict src = dy + p * lds;
    for (int64_t i0 = 0; i0 < whole; i0 += kMr) {
      std::memcpy(ap + i0 * kc + p * kMr, src + i0, kMr * sizeof(float));
    }
    for (int64_t q = blocks.whole; q < blocks.count; ++q) {
      const int64_t r = blocks.start(q);
      const int rows = blocks.rows(q);
      float* dst = ap + q * kMr * kc + p * kMr;
      for (int i = 0; i < kMr; ++i) dst[i] = i < rows ? src[r + i] : 0.0f;
    }
    if (colsum != nullptr) {
      for (int64_t i = 0; i < m; ++i) colsum[i] += src[i];
    }
  }
}

constexpr int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Columns of the tiles of an output `rows` x `cols` cut into rows of tile_rows: cols cut evenly,
// to whole vectors, into the fewest tiles at most max_cols wide, or into more (never more tiles
// than panels) where that leaves a thread without a tile. The even cut keeps two threads equally
// busy (784 columns: 400 + 384, where 512 + 272 left one thread idle for a third of a dX); the
// extra tiles give the narrow layers of small models (256 wide, one tile) their second thread.
// Each tile packs only its own columns of B, so cutting columns packs nothing twice (A is read
// in place; packed A, AVX2, is packed per tile, as for any two tiles). No bit depends on it.
template <class S>
int64_t tile_cols(int64_t rows, int64_t tile_rows, int64_t cols, int64_t max_cols) {
  if (rows <= 0 || cols <= 0) return max_cols;  // no tiles at all
  const int64_t row_tiles = ceil_div(rows, tile_rows);
  int64_t parts = ceil_div(cols, max_cols);
  const int64_t threads = max_threads();
  if (row_tiles * parts < threads) {
    parts = std::max(parts, std::min(ceil_div(threads, row_tiles), ceil_div(cols, kNr<S>)));
  }
  return ceil_div(ceil_div(cols, parts), S::kLanes) * S::kLanes;
}

// x (n, in), w (out, in), b (out) or nullptr -> y (n, out) = x·wᵀ + b [relu]
template <class S>
void simd_dense_forward(const float* x, const float* w, const float* b, float* y, int64_t n,
                        int64_t in, int64_t out, bool relu) {
  for_tiles(n, out, kSimdTileRows, tile_cols<S>(n, kSimdTileRows, out, kSimdTileCols),
            [&](int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
              const Epilogue e{b == nullptr ? nullptr : b + c0, relu, nullptr};
              gemm_tile<S>(r1 - r0, c1 - c0, in, x + r0 * in, in, w + c0 * in, in, true,
                           y + r0 * out + c0, out, e);
            });
}

// Rows of dW per weight-gradient tile. Where A is read in place, 512 if that still leaves a tile
// for every thread: each packed panel of x then serves twice the rows (x was packed once per 256
// rows of dW: dW of the 784 -> 1024 layer took 4% less time in the step, 1 thread), else
// kSimdTileRows. The bits do not depend on it (one FMA chain per output). Where A is packed
// (AVX2), a taller tile's micro-panels would not fit the stack.
template <class S>
int64_t dw_tile_rows(int64_t out, int64_t in) {
  if constexpr (S::kPackA) return kSimdTileRows;
  constexpr int64_t kTall = 2 * kSimdTileRows;
  const int64_t tiles = ceil_div(out, kTall) * ceil_div(in, kSimdDwTileCols);
  return tiles >= max_threads() ? kTall : kSimdTileRows;
}

// dy (n, out), x (n, in), w (out, in) -> dw (out, in), db (out), dx (n, in); all overwritten.
// With sgd (the layer's w then bias, as one run), each dw tile also writes its SGD update from
// its last depth block's registers, and the tile at column 0 that of its rows of the bias.
template <class S>
void simd_dense_backward(const float* dy, const float* x, const float* w, float* dw, float* db,
                         float* dx, int64_t n, int64_t in, int64_t out, bool relu_dx,
                         const SgdUpdate* sgd) {
  // dw = dyᵀ·x in row tiles of dw as wide as kSimdDwTileCols: each depth block of dyᵀ (its rows
  // are dy's columns) is first copied into a dense block on the stack, so the product reads A
  // as rows like the other two (dyᵀ read in place, strided, ran 5-10% slower), and the copy
  // serves all the tile's columns. B = x rows. The bias gradient is summed in the copy.
  // Where the engine packs A (AVX2), dyᵀ is staged straight into packed micro-panels, one depth
  // block of the product at a time.
  const int64_t dw_rows = dw_tile_rows<S>(out, in);
  const int64_t depth = S::kPackA ? S::kDepth : kDwInPlaceStage / dw_rows;
  const auto dw_tile = [&](int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
    alignas(64) float dyt[kDwStageFloats<S>];
    // dW's values as stored: a NaN or infinity in a partial sum stays one in the final sum, so
    // testing every depth block's stores (the in-place path) gives the final verdict.
    bool non_finite = false;
    const Epilogue check{nullptr, false, nullptr, &non_finite};
    const Epilogue check_and_update{nullptr, false, nullptr, &non_finite, sgd, dw};
    // The tile at column 0 sums the bias gradient in the staging pass, rows in order.
    float* dbt = db != nullptr && c0 == 0 ? db + r0 : nullptr;
    if (dbt != nullptr) std::fill(dbt, dbt + (r1 - r0), 0.0f);
    // n == 0 runs one empty block, as gemm_tile does: dw is then 0.
    for (int64_t p0 = 0; p0 == 0 || p0 < n; p0 += depth) {
      const int64_t kc = std::min(depth, n - p0);
      const bool last = p0 + depth >= n;
      const Epilogue& e = last && sgd != nullptr ? check_and_update : check;
      if constexpr (S::kPackA) {
        pack_dyt(dy + p0 * out + r0, out, kc, r1 - r0, dyt, dbt);
        gemm_block<S>(r1 - r0, c1 - c0, kc, dyt, kc, x + p0 * in + c0, in, false,
                      dw + r0 * in + c0, in, p0 == 0, last, e);
      } else {
        transpose_block(dy + p0 * out + r0, out, kc, r1 - r0, dyt, kc, dbt);
        gemm_tile<S>(r1 - r0, c1 - c0, kc, dyt, kc, x + p0 * in + c0, in, false,
                     dw + r0 * in + c0, in, e, p0 > 0);
      }
    }
    if (sgd != nullptr && dbt != nullptr) sgd_update_serial(sgd->at(out * in + r0), dbt, r1 - r0);
    // Reported kSimdTileRows rows at a time, as dense_tile_rows() promises the reducer.
    for (int64_t q = r0; q < r1; q += kSimdTileRows) {
      report_dw_tile(dw, db, in, out, q, std::min(r1, q + kSimdTileRows), c0, c1,
                     non_finite ? Finite::kNonFinite : Finite::kFinite);
    }
  };
  for_tiles(out, in, dw_rows, tile_cols<S>(out, dw_rows, in, kSimdDwTileCols), dw_tile);
  bias_backward_without_inputs(dy, db, n, in, out);
  if (sgd != nullptr && in == 0 && db != nullptr) sgd_update_serial(*sgd, db, out);
  if (dx == nullptr) return;
  // dx = dy·w [⊙ (x > 0)]: A = dy rows, B = w rows.
  for_tiles(n, in, kSimdTileRows, tile_cols<S>(n, kSimdTileRows, in, kSimdTileCols),
            [&](int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
              const Epilogue e{nullptr, false, relu_dx ? x + r0 * in + c0 : nullptr};
              gemm_tile<S>(r1 - r0, c1 - c0, out, dy + r0 * out, out, w + c0, in, false,
                           dx + r0 * in + c0, in, e);
            });
}

// The stack one tile takes: gemm_block's panels under gemm_tile's packed A (forward, dX) or under
// the weight gradient's staged dyᵀ (and, where A is read in place, gemm_tile's packed A too).
template <class S>
constexpr int64_t tile_stack_bytes() {
  const int64_t dw = kDwStageFloats<S> + (S::kPackA ? 0 : kPackedAFloats<S>);
  return static_cast<int64_t>(sizeof(float)) * (kPanelFloats<S> + std::max(kPackedAFloats<S>, dw));
}

}  // namespace
}  // namespace tessera::kernels

#endif

namespace tessera::kernels {

// An engine whose instructions this build's target lacks is a stub that throws, so callers
// (the benchmark, the tests) can ask *_available() first.
[[noreturn, maybe_unused]] static void not_built(const char* isa) {
  throw std::logic_error(std::string("this tessera build has no ") + isa +
                         " GEMM engine (it was compiled for a CPU target without " + isa + ")");
}

#if defined(__AVX512F__)
bool avx512_available() { return true; }
int64_t avx512_tile_stack_bytes() { return tile_stack_bytes<simd::Avx512>(); }
void avx512_dense_forward(const float* x, const float* w, const float* b, float* y, int64_t n,
                          int64_t in, int64_t out, bool relu) {
  simd_dense_forward<simd::Avx512>(x, w, b, y, n, in, out, relu);
}
void avx512_dense_backward(const float* dy, const float* x, const float* w, float* dw, float* db,
                           float* dx, int64_t n, int64_t in, int64_t out, bool relu_dx,
                           const SgdUpdate* sgd) {
  simd_dense_backward<simd::Avx512>(dy, x, w, dw, db, dx, n, in, out, relu_dx, sgd);
}
#else
bool avx512_available() { return false; }
int64_t avx512_tile_stack_bytes() { return 0; }
void avx512_dense_forward(const float*, const float*, const float*, float*, int64_t, int64_t,
                          int64_t, bool) {
  not_built("AVX-512F");
}
void avx512_dense_backward(const float*, const float*, const float*, float*, float*, float*,
                           int64_t, int64_t, int64_t, bool, const SgdUpdate*) {
  not_built("AVX-512F");
}
#endif

#if defined(__AVX2__) && defined(__FMA__)
bool avx2_available() { return true; }
int64_t avx2_tile_stack_bytes() { return tile_stack_bytes<simd::Avx2>(); }
void avx2_dense_forward(const float* x, const float* w, const float* b, float* y, int64_t n,
                        int64_t in, int64_t out, bool relu) {
  simd_dense_forward<simd::Avx2>(x, w, b, y, n, in, out, relu);
}
void avx2_dense_backward(const float* dy, const float* x, const float* w, float* dw, float* db,
                         float* dx, int64_t n, int64_t in, int64_t out, bool relu_dx,
                         const SgdUpdate* sgd) {
  simd_dense_backward<simd::Avx2>(dy, x, w, dw, db, dx, n, in, out, relu_dx, sgd);
}
#else
bool avx2_available() { return false; }
int64_t avx2_tile_stack_bytes() { return 0; }
void avx2_dense_forward(const float*, const float*, const float*, float*, int64_t, int64_t,
                        int64_t, bool) {
  not_built("AVX2 and FMA");
}
void avx2_dense_backward(const float*, const float*, const float*, float*, float*, float*,
                         int64_t, int64_t, int64_t, bool, const SgdUpdate*) {
  not_built("AVX2 and FMA");
}
#endif

}  // namespace tessera::kernels
