// The vector vocabulary of tessera's float GEMM engine (kernels/gemm_simd.cpp): one struct per
// instruction set with the same members, so the engine's microkernel, packing and epilogues
// are written once and compiled for AVX-512 and for AVX2 + FMA. A struct exists only where the
// build's target has its instructions. Both give the same bits: each lane is an IEEE float
// FMA, add, max or select, whatever the width.
#pragma once

#include <cstdint>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>  // GCC 12 false -Wmaybe-uninitialized in its AVX-512 headers: silenced in CMakeLists.txt

#include "kernels/transpose.h"

namespace tessera::kernels::simd {

#if defined(__AVX512F__)
// 16 float lanes in 32 zmm registers: a 6 x 64 register block (24 accumulators) over panels
// 64 columns wide and up to 1024 deep (256 KiB: they stay in a 1 MiB L2 across the rows).
struct Avx512 {
  static constexpr const char* kName = "avx512";
  static constexpr int kLanes = 16;
  static constexpr int kPanelVectors = 4;
  static constexpr int64_t kDepth = 1024;
  static constexpr bool kPackA = false;
  static constexpr int kPackGroup = 1;  // a 64-column panel row is already 4 lines
  using V = __m512;
  using Mask = __mmask16;

  // The lanes of a vector whose first lane is column 0 of `cols` remaining columns.
  static Mask mask(int cols) {
    return cols >= 16 ? Mask(0xffff) : cols <= 0 ? Mask(0) : Mask((1u << cols) - 1);
  }
  static V zero() { return _mm512_setzero_ps(); }
  static V set1(float a) { return _mm512_set1_ps(a); }
  static V load(const float* p) { return _mm512_load_ps(p); }  // 64-byte aligned
  static V loadu(const float* p) { return _mm512_loadu_ps(p); }
  static V maskz_loadu(Mask m, const float* p) { return _mm512_maskz_loadu_ps(m, p); }
  static void store(float* p, V v) { _mm512_store_ps(p, v); }  // 64-byte aligned
  static void storeu(float* p, V v) { _mm512_storeu_ps(p, v); }
  static void mask_storeu(float* p, Mask m, V v) { _mm512_mask_storeu_ps(p, m, v); }
  static V fmadd(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static V add(V a, V b) { return _mm512_add_ps(a, b); }
  // max(0, r): NaN passes through (the second operand is returned when either is NaN).
  static V relu(V r) { return _mm512_max_ps(_mm512_setzero_ps(), r); }
  // r where !(x <= 0) (x > 0 or NaN), else 0: relu_backward_tile's rule.
  static V keep_where_positive(V x, V r) {
    return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_NLE_UQ), r);
  }
  // d (16 x 16, leading dim ldd) = s (16 x 16, leading dim lds) transposed.
  static void transpose(const float* s, int64_t lds, float* d, int64_t ldd) {
    transpose16(s, lds, d, ldd);
  }
  // Lanes seen holding a NaN or infinity (exponent bits all ones), accumulated over stores.
  using Flags = __mmask16;
  static Flags no_flags() { return 0; }
  static Flags flag_non_finite(Flags f, Mask m, V r) {
    const __m512i exp = _mm512_set1_epi32(0x7f800000);
    return f | _mm512_mask_cmpeq_epi32_mask(m, _mm512_and_si512(_mm512_castps_si512(r), exp), exp);
  }
  static bool any(Flags f) { return f != 0; }
};
#endif

// 8 float lanes in 16 ymm registers: a 6 x 16 register block (12 accumulators, BLIS's haswell
// shape; 4 x 24, which leaves no spare register, ran 25% slower) over panels 16 columns wide and
// up to 1024 deep (64 KiB, in L2), A packed in 6-row micro-panels. 1024 deep makes every
// product of the reference MLP one depth block, so each output is loaded and stored once: +4-9%
// against 256-deep panels that stay in L1 (Zen 3, same-run A/B), and 128 deep was 8% slower.
struct Avx2 {
  static constexpr const char* kName = "avx2";
  static constexpr int kLanes = 8;
  static constexpr int kPanelVectors = 2;
  static constexpr int64_t kDepth = 1024;
  static constexpr bool kPackA = true;
  // Panels of B packed together (pack_rows reads 4 lines of each row of B at a time): 256 KiB of
  // stack. Packing x for dW and w for dX took 5-10% of those products' time, now about 3%.
  static constexpr int kPackGroup = 4;
  using V = __m256;
  using Mask = __m256i;

  static Mask mask(int cols) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(cols), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static V zero() { return _mm256_setzero_ps(); }
  static V set1(float a) { return _mm256_set1_ps(a); }
  static V load(const float* p) { return _mm256_load_ps(p); }  // 32-byte aligned
  static V loadu(const float* p) { return _mm256_loadu_ps(p); }
  static V maskz_loadu(Mask m, const float* p) { return _mm256_maskload_ps(p, m); }
  static void store(float* p, V v) { _mm256_store_ps(p, v); }  // 32-byte aligned
  static void storeu(float* p, V v) { _mm256_storeu_ps(p, v); }
  static void mask_storeu(float* p, Mask m, V v) { _mm256_maskstore_ps(p, m, v); }
  static V fmadd(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static V add(V a, V b) { return _mm256_add_ps(a, b); }
  static V relu(V r) { return _mm256_max_ps(_mm256_setzero_ps(), r); }
  static V keep_where_positive(V x, V r) {
    return _mm256_and_ps(_mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_NLE_UQ), r);
  }
  static void transpose(const float* s, int64_t lds, float* d, int64_t ldd) {
    transpose8(s, lds, d, ldd);
  }
  using Flags = __m256i;
  static Flags no_flags() { return _mm256_setzero_si256(); }
  static Flags flag_non_finite(Flags f, Mask m, V r) {
    const __m256i exp = _mm256_set1_epi32(0x7f800000);
    const __m256i bad = _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_castps_si256(r), exp), exp);
    return _mm256_or_si256(f, _mm256_and_si256(bad, m));
  }
  static bool any(Flags f) { return !_mm256_testz_si256(f, f); }
};

}  // namespace tessera::kernels::simd

#endif
