// tessera's own bf16 GEMM engine: an AVX512_BF16 microkernel (VDPBF16PS: float32 accumulators +=
// pairs of bf16 products along the depth) over a right operand packed per 64-column panel on the
// stack, BLIS-style, in the fixed output tiles of kernels/gemm_engines.h, one tile per oneTBB task.
// Accumulation is float32 over the whole depth; nothing here touches the heap.
#include "kernels/gemm_engines.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <utility>

#include "kernels/dense.h"
#include "kernels/transpose.h"

#if defined(__x86_64__) && defined(__GNUC__)
#define TESSERA_AVX512_BF16 1
#include <immintrin.h>  // GCC 12 false -Wmaybe-uninitialized in its AVX-512 headers: silenced in CMakeLists.txt
// Only these functions use AVX-512, so a build for an older baseline (-DTESSERA_PORTABLE=ON)
// still compiles the engine; avx512_bf16_unsupported_reason() keeps them from running there.
#define TESSERA_BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))
#else
#define TESSERA_AVX512_BF16 0
#endif

namespace tessera::kernels {

#if TESSERA_AVX512_BF16

namespace {

// Register block: kMr rows x kNv vectors of 16 columns = 6 x 64 floats in 24 of the 32 zmm
// registers, the 4 right-operand vectors and the broadcast left pair beside them.
constexpr int kMr = 6;
constexpr int kNv = 4;
constexpr int64_t kNr = 16 * kNv;
// Depth block: at most 256 bf16 (128 pairs), so a packed panel (128 pairs x 64 columns of 32-bit
// pairs = 32 KiB) stays in the 48 KiB L1 while every row block of the tile runs over it.
constexpr int64_t kKc = 256;

// What a microkernel does with its block of C (rows x up to kNr columns, leading dim ld) before
// and after its depth block.
struct Block {
  float* c;
  int64_t ld;
  const float* bias;    // first depth block: added to its sums, per column
  const float* relu_x;  // last: c = 0 where relu_x (same layout as c) <= 0
  bf16* c16;            // last: bf16(c) (same layout)
  bool first, last, relu;
  __mmask16 tail;  // columns of the last vector
};

// Sixteen bf16 = to_bf16 of each float (kernels/bf16.h, bit for bit): round to nearest even, NaN
// kept quiet. VCVTNEPS2BF16 would flush denormals to zero, so the rounding is spelt out.
TESSERA_BF16_TARGET inline __m256i to_bf16_vec(__m512 f) {
  const __m512i u = _mm512_castps_si512(f);
  const __m512i hi = _mm512_srli_epi32(u, 16);
  const __m512i lsb = _mm512_and_si512(hi, _mm512_set1_epi32(1));
  const __m512i bias = _mm512_add_epi32(_mm512_set1_epi32(0x7fff), lsb);
  const __m512i rounded = _mm512_srli_epi32(_mm512_add_epi32(u, bias), 16);
  const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)),
                                                _mm512_set1_epi32(0x7f800000));
  const __m512i quiet = _mm512_or_si512(hi, _mm512_set1_epi32(0x40));
  return _mm512_cvtepi32_epi16(_mm512_mask_mov_epi32(rounded, nan, quiet));
}

// 16 floats at p, the lanes of m (zero elsewhere); plain forms when m is full, as in the
// packing below, where masked loads that missed the cache measured slower.
TESSERA_BF16_TARGET inline __m512 load16(const float* p, __mmask16 m) {
  return m == 0xffff ? _mm512_loadu_ps(p) : _mm512_maskz_loadu_ps(m, p);
}
TESSERA_BF16_TARGET inline void store16(float* p, __mmask16 m, __m512 v) {
  if (m == 0xffff) {
    _mm512_storeu_ps(p, v);
  } else {
    _mm512_mask_storeu_ps(p, m, v);
  }
}
TESSERA_BF16_TARGET inline void store16(bf16* p, __mmask16 m, __m256i v) {
  if (m == 0xffff) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), v);
  } else {
    _mm256_mask_storeu_epi16(p, m, v);
  }
}

TESSERA_BF16_TARGET inline int32_t load_pair(const bf16* p) {
  int32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

template <int M, int NV>
TESSERA_BF16_TARGET inline void micro_step(__m512 (&acc)[M][NV], const uint32_t* bp,
                                           const int32_t (&av)[M]) {
  __m512bh b[NV];
  for (int v = 0; v < NV; ++v) b[v] = (__m512bh)_mm512_load_si512(bp + 16 * v);
  for (int i = 0; i < M; ++i) {
    const __m512bh ai = (__m512bh)_mm512_set1_epi32(av[i]);
    for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_dpbf16_ps(acc[i][v], b[v], ai);
  }
}

// C (M, 16·NV) [+]= A (M, 2·pairs [+1 when odd]) · B, A rows at a (leading dim lda, pairs
// adjacent), B packed: panel[q·kNr + j] = (b(2q, j), b(2q+1, j)) as two bf16 in 32 bits. An odd
// depth's last element pairs with a zero (B's high half is packed as zero too). (No lambdas in
// here: GCC does not give them the function's target.)
template <int M, int NV>
TESSERA_BF16_TARGET void micro(const bf16* a, int64_t lda, int64_t pairs, bool odd,
                               const uint32_t* panel, const Block& blk) {
  __m512 acc[M][NV];
  __mmask16 mask[NV];
  for (int v = 0; v < NV; ++v) mask[v] = v == NV - 1 ? blk.tail : __mmask16(0xffff);
  float* const c = blk.c;
  const int64_t ld = blk.ld;
  // The block's product starts from zero and is added to C (or the bias) at the end: one code
  // path keeps acc in registers (with a load per case up front, GCC kept it on the stack).
#pragma GCC unroll 8
  for (int i = 0; i < M; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_setzero_ps();
  // The epilogue's mask rows, fetched while the products run: x comes from L3 or memory, and
  // waiting on it at the end cost 6-7% of the dX product, 3-4% with the prefetch.
  if (blk.last && blk.relu_x != nullptr) {
    for (int i = 0; i < M; ++i)
      for (int v = 0; v < NV; ++v) {
        _mm_prefetch(reinterpret_cast<const char*>(blk.relu_x + i * ld + 16 * v), _MM_HINT_T0);
      }
  }
  // An odd depth's last element and a zero, copied into a pair per row: the second pass runs
  // the same loop body over them (a second copy of the body put acc on the stack).
  bf16 tail[2 * M] = {};
  if (odd) {
    for (int i = 0; i < M; ++i) tail[2 * i] = a[i * lda + 2 * pairs];
  }
  for (int pass = 0; pass < 2; ++pass) {
    const bf16* base = pass == 0 ? a : tail;
    const int64_t base_ld = pass == 0 ? lda : 2;
    const int64_t count = pass == 0 ? pairs : (odd ? 1 : 0);
    const uint32_t* bp = pass == 0 ? panel : panel + pairs * kNr;
    for (int64_t q = 0; q < count; ++q) {
      int32_t av[M];
      for (int i = 0; i < M; ++i) av[i] = load_pair(base + i * base_ld + 2 * q);
      micro_step<M, NV>(acc, bp + q * kNr, av);
    }
  }
  const __m512 zero = _mm512_setzero_ps();
  const float* add = blk.first ? blk.bias : c;  // nullptr: nothing to add
  const int64_t add_ld = blk.first ? 0 : ld;
#pragma GCC unroll 8
  for (int i = 0; i < M; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      __m512 r = acc[i][v];
      const int64_t at = i * ld + 16 * v;
      if (add != nullptr) r = _mm512_add_ps(load16(add + i * add_ld + 16 * v, mask[v]), r);
      if (blk.last) {
        // max(0, r) returns r when r is NaN or -0, as activation_forward's relu does.
        if (blk.relu) r = _mm512_max_ps(zero, r);
        if (blk.relu_x != nullptr) {
          const __m512 x = load16(blk.relu_x + at, mask[v]);
          r = _mm512_mask_mov_ps(r, _mm512_cmp_ps_mask(x, zero, _CMP_LE_OQ), zero);
        }
        if (blk.c16 != nullptr) store16(blk.c16 + at, mask[v], to_bf16_vec(r));
      }
      store16(c + at, mask[v], r);
    }
}

using MicroFn = void (*)(const bf16*, int64_t, int64_t, bool, const uint32_t*, const Block&);

// A one-vector panel (an output 16 columns wide or less, e.g. the 10 classes) runs kMr1-row
// blocks instead: 6 accumulators are too few to cover VDPBF16PS's latency (the 256 x 1024 -> 10
// forward: 125 GFLOP/s with 6 rows, 160 with 16).
constexpr int kMr1 = 16;

struct MicroTable {
  MicroFn f[kMr * kNv];
  MicroFn one[kMr1];
  // The kernel for m rows and nv vectors (m <= kMr1 when nv == 1, else m <= kMr).
  MicroFn operator()(int64_t m, int nv) const {
    return nv == 1 ? one[m - 1] : f[(m - 1) * kNv + nv - 1];
  }
};
template <int... I, int... J>
constexpr MicroTable micro_table(std::integer_sequence<int, I...>, std::integer_sequence<int, J...>) {
  return MicroTable{{micro<I / kNv + 1, I % kNv + 1>...}, {micro<J + 1, 1>...}};
}
constexpr MicroTable kMicro = micro_table(std::make_integer_sequence<int, kMr * kNv>(),
                                          std::make_integer_sequence<int, kMr1>());

// The first n of 32 bf16 lanes (n may exceed 32).
inline __mmask32 lanes16(int64_t n) {
  return n >= 32 ? __mmask32(0xffffffffu) : __mmask32((uint32_t{1} << n) - 1);
}

// B (k, n) = srcᵀ, src (n, k) rows at leading dim ld, e.g. the forward's wᵀ: the panel of depth
// [p0, p0 + kc) x columns [j0, j0 + nc) takes 32-bit pairs of src rows, transposed 16 x 16 in
// registers. Columns past nc in the last vector and the high half past kc are zero.
TESSERA_BF16_TARGET void pack_transposed(const bf16* src, int64_t ld, int64_t p0, int64_t kc,
                                         int64_t j0, int64_t nc, uint32_t* panel) {
  const int64_t pairs = (kc + 1) / 2;
  for (int64_t jb = 0; jb < nc; jb += 16) {
    for (int64_t qb = 0; qb < pairs; qb += 16) {
      __m512i r[16];
      const bf16* at = src + (j0 + jb) * ld + p0 + 2 * qb;
      if (kc - 2 * qb >= 32 && nc - jb >= 16) {
        // Plain loads where the block is whole: masked loads that miss the cache measured
        // slower here (pack_rows below: 4% of the dX product).
        for (int64_t i = 0; i < 16; ++i) r[i] = _mm512_loadu_si512(at + i * ld);
      } else {
        const __mmask32 m = lanes16(kc - 2 * qb);
        for (int64_t i = 0; i < 16; ++i) {
          r[i] = jb + i < nc ? _mm512_maskz_loadu_epi16(m, at + i * ld) : _mm512_setzero_si512();
        }
      }
      transpose16_epi32(r);
      const int64_t rows = std::min<int64_t>(16, pairs - qb);
      for (int64_t t = 0; t < rows; ++t) _mm512_store_si512(panel + (qb + t) * kNr + jb, r[t]);
    }
  }
}

// vpermt2w indices: lane 2j takes element j of the first row, lane 2j + 1 element j of the
// second (index 32 + j); the high half the same from element 16.
struct InterleaveIdx {
  alignas(64) uint16_t lo[32], hi[32];
};
constexpr InterleaveIdx interleave_idx() {
  InterleaveIdx x{};
  for (int j = 0; j < 16; ++j) {
    x.lo[2 * j] = uint16_t(j), x.lo[2 * j + 1] = uint16_t(32 + j);
    x.hi[2 * j] = uint16_t(16 + j), x.hi[2 * j + 1] = uint16_t(48 + j);
  }
  return x;
}
constexpr InterleaveIdx kInterleave = interleave_idx();

// B (k, n) = src, rows at leading dim ld (dX's w, dW's x): each pair of rows interleaved.
// Columns past nc and an odd depth's missing partner row are zero.
TESSERA_BF16_TARGET void pack_rows(const bf16* src, int64_t ld, int64_t p0, int64_t kc, int64_t j0,
                                   int64_t nc, uint32_t* panel) {
  const __m512i lo = _mm512_load_si512(kInterleave.lo), hi = _mm512_load_si512(kInterleave.hi);
  for (int64_t q = 0; q < (kc + 1) / 2; ++q) {
    const bf16* r0 = src + (p0 + 2 * q) * ld + j0;
    const bool pair = 2 * q + 1 < kc;
    for (int64_t jb = 0; jb < nc; jb += 32) {
      __m512i a, b;
      if (nc - jb >= 32 && pair) {
        a = _mm512_loadu_si512(r0 + jb);
        b = _mm512_loadu_si512(r0 + ld + jb);
      } else {
        const __mmask32 m = lanes16(nc - jb);
        a = _mm512_maskz_loadu_epi16(m, r0 + jb);
        b = pair ? _mm512_maskz_loadu_epi16(m, r0 + ld + jb) : _mm512_setzero_si512();
      }
      _mm512_store_si512(panel + q * kNr + jb, _mm512_permutex2var_epi16(a, lo, b));
      _mm512_store_si512(panel + q * kNr + jb + 16, _mm512_permutex2var_epi16(a, hi, b));
    }
  }
}

// One product C (m, n) = A (m, k) · B (k, n) [+ bias] with its epilogue, tile by tile.
struct Product {
  const bf16* a;  // (m, k) row-major, leading dim lda
  int64_t lda;
  const bf16* b;  // B = bᵀ with b (n, k) if transposed, else B = b (k, n); leading dim ldb
  int64_t ldb;
  bool transposed;
  int64_t m, k;
  float* c;  // (m, n), leading dim ldc, overwritten
  int64_t ldc;
  const float* bias = nullptr;    // (n)
  bool relu = false;              // c = max(c, 0)
  const float* relu_x = nullptr;  // (m, n) at ldc: c = 0 where relu_x <= 0
  bf16* c16 = nullptr;            // (m, n) at ldc: bf16(c)
  bf16* c16t = nullptr;           // (n, m): bf16(c)ᵀ, with c16 only
};

// The panels of one tile in the order they are packed: columns [j0, j0 + nc) in nv vectors,
// depth [p0, p0 + kc). The depth is cut into equal even blocks of at most kKc (a function of k
// alone, so of the shape alone). The tile's 16-column vectors are spread evenly over as few
// panels as hold them: 272 columns run as 4 + 4 + 3 + 3 + 3 vectors, not 4 + 4 + 4 + 4 + 1,
// whose 1-vector panel would run 6 broadcasts per pair for 6 products instead of 24.
struct PanelStep {
  int64_t j, j0, nc, p0, kc;
  int nv;
};

class TilePanels {
 public:
  TilePanels(int64_t c0, int64_t c1, int64_t k)
      : c1_(c1), k_(k), vectors_((c1 - c0 + 15) / 16), panels_((vectors_ + kNv - 1) / kNv) {
    const int64_t blocks = std::max<int64_t>(1, (k + kKc - 1) / kKc);
    kc_max_ = ((k + blocks - 1) / blocks + 1) & ~int64_t{1};
    first_ = columns(0, c0);
  }
  PanelStep first() const { return first_; }
  // The step after s; false after the last.
  bool next(PanelStep& s) const {
    if (s.p0 + s.kc < k_) {
      s.p0 += s.kc;
      s.kc = std::min(kc_max_, k_ - s.p0);
      return true;
    }
    if (s.j + 1 == panels_) return false;
    s = columns(s.j + 1, s.j0 + s.nc);
    return true;
  }

 private:
  PanelStep columns(int64_t j, int64_t j0) const {
    const int nv = int(vectors_ / panels_ + (j < vectors_ % panels_ ? 1 : 0));
    return {j, j0, std::min<int64_t>(16 * nv, c1_ - j0), 0, std::min(kc_max_, k_), nv};
  }
  int64_t c1_, k_, vectors_, panels_, kc_max_ = 0;
  PanelStep first_{};
};

// Rows [r0, r1) x columns [c0, c1) of p.c: per panel, B is packed once and every row block of
// the tile runs over it. (Packing the next panel in slices between the blocks, to overlap
// its loads with the products, measured slower: the two panels do not fit L1 together; software
// prefetches of its source, or packing four panels per pass over the source rows, no faster.)
TESSERA_BF16_TARGET void product_tile(const Product& p, int64_t r0, int64_t r1, int64_t c0,
                                      int64_t c1) {
  alignas(64) uint32_t panel[kKc / 2 * kNr];
  const TilePanels plan(c0, c1, p.k);
  PanelStep s = plan.first();
  do {
    if (p.transposed) {
      pack_transposed(p.b, p.ldb, s.p0, s.kc, s.j0, s.nc, panel);
    } else {
      pack_rows(p.b, p.ldb, s.p0, s.kc, s.j0, s.nc, panel);
    }
    Block blk{};
    blk.ld = p.ldc;
    blk.tail = __mmask16((uint32_t{1} << (s.nc - 16 * (s.nv - 1))) - 1);
    blk.relu = p.relu;
    blk.first = s.p0 == 0;
    blk.last = s.p0 + s.kc == p.k;
    const int64_t mr = s.nv == 1 ? kMr1 : kMr;
    for (int64_t i0 = r0; i0 < r1; i0 += mr) {
      const int64_t at = i0 * p.ldc + s.j0;
      blk.c = p.c + at;
      blk.bias = p.bias == nullptr ? nullptr : p.bias + s.j0;
      blk.relu_x = p.relu_x == nullptr ? nullptr : p.relu_x + at;
      blk.c16 = p.c16 == nullptr || p.c16t != nullptr ? nullptr : p.c16 + at;
      kMicro(std::min(mr, r1 - i0), s.nv)(p.a + i0 * p.lda + s.p0, p.lda, s.kc / 2,
                                          (s.kc & 1) != 0, panel, blk);
    }
    // The transposed copy reads the plain one: both from the strip while it is in cache.
    if (blk.last && p.c16 != nullptr && p.c16t != nullptr) {
      tile_to_bf16(p.c, p.c16, p.c16t, p.m, p.ldc, r0, r1, s.j0, s.j0 + s.nc);
    }
  } while (plan.next(s));
}

// The output tiles: kSimdTileRows x kSimdTileCols (the float AVX-512 engine's), dW's
// dense_tile_rows() high, the height its reports promise in every build (128 with the Eigen
// engine). No element's arithmetic depends on the tiles here (the depth blocks are a function
// of k alone), so they only set what runs in parallel and when dW rows are reported.
template <class Tile>
void for_bf16_tiles(int64_t m, int64_t n, int64_t tile_rows, const Tile& tile) {
  for_tiles(m, n, tile_rows, kSimdTileCols, tile);
}

void require_avx512_bf16() {
  if (const char* why = avx512_bf16_unsupported_reason()) throw std::logic_error(why);
}

}  // namespace

const char* avx512_bf16_unsupported_reason() {
  if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bw") ||
      !__builtin_cpu_supports("avx512vl")) {
    return "this CPU lacks AVX-512 (F, BW, VL), which tessera's bf16 kernels need";
  }
  if (!__builtin_cpu_supports("avx512bf16")) {
    return "this CPU lacks AVX512_BF16, which the bf16 products need";
  }
  return nullptr;
}

// x (n, in), w (out, in) bf16 -> y (n, out) = x·wᵀ + b [relu], y16 = bf16(y).
void avx512_dense_forward_bf16(const bf16* x, const bf16* w, const float* b, float* y, bf16* y16,
                               int64_t n, int64_t in, int64_t out, bool relu) {
  require_avx512_bf16();
  Product p{x, in, w, in, true, n, in, y, out};
  p.bias = b;
  p.relu = relu;
  p.c16 = y16;
  for_bf16_tiles(n, out, kSimdTileRows, [&](int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
    product_tile(p, r0, r1, c0, c1);
  });
}

void avx512_dense_backward_bf16(const DenseBf16Backward& a, int64_t n, int64_t in, int64_t out) {
  require_avx512_bf16();
  // dw (out, in) = dyᵀ·x: A = the dense dyᵀ copy, B = x (depth n).
  const Product dw{a.dyt16, n, a.x16, in, false, out, n, a.dw, in};
  for_bf16_tiles(out, in, dense_tile_rows(), [&](int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
    product_tile(dw, r0, r1, c0, c1);
    if (a.db != nullptr && c0 == 0) bias_backward_cols(a.dy, a.db, n, out, r0, r1);
    report_dw_tile(a.dw, a.db, in, out, r0, r1, c0, c1);
  });
  if (a.dx == nullptr) return;
  // dx (n, in) = dy·w (depth out), masked and converted for the previous layer in the epilogue.
  Product dx{a.dy16, out, a.w16, in, false, n, out, a.dx, in};
  dx.relu_x = a.relu_x;
  dx.c16 = a.dx16;
  dx.c16t = a.dxt16;
  for_bf16_tiles(n, in, kSimdTileRows, [&](int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
    product_tile(dx, r0, r1, c0, c1);
  });
}

#else  // not x86-64 with GCC or Clang: no AVX-512 intrinsics.

const char* avx512_bf16_unsupported_reason() {
  return "tessera's bf16 kernels need an x86-64 build with AVX-512 intrinsics (GCC or Clang)";
}

void avx512_dense_forward_bf16(const bf16*, const bf16*, const float*, float*, bf16*, int64_t,
                               int64_t, int64_t, bool) {
  throw std::logic_error(avx512_bf16_unsupported_reason());
}

void avx512_dense_backward_bf16(const DenseBf16Backward&, int64_t, int64_t, int64_t) {
  throw std::logic_error(avx512_bf16_unsupported_reason());
}

#endif

}  // namespace tessera::kernels
