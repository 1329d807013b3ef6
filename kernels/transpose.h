// The register transposes shared by the GEMM engines' packing and staging and the transposed
// bf16 copies: one 16 x 16 network on 32-bit elements in AVX-512 registers (compiled for AVX-512
// by its target attribute whatever the build's baseline, for the bf16 engine, which checks the
// CPU at run time), float blocks through it where the build targets AVX-512F, and an 8 x 8 float
// transpose in AVX2 registers for the AVX2 engine's packing.
#pragma once

#include <cstdint>

#if defined(__x86_64__) && defined(__GNUC__)
#define TESSERA_HAVE_TRANSPOSE16_EPI32 1
#include <immintrin.h>  // GCC 12 false -Wmaybe-uninitialized in its AVX-512 headers: silenced in CMakeLists.txt

namespace tessera::kernels {

// r[j] = column j of the 16 x 16 matrix of 32-bit elements whose row i is r[i] (in place). The
// all-ones masked forms of the shuffles are used because GCC 12 reports its plain forms'
// undefined pass-through operand as uninitialized (an error at -O2 under -Werror).
__attribute__((target("avx512f"))) inline void transpose16_epi32(__m512i r[16]) {
  constexpr __mmask16 kAll = 0xffff;
  constexpr __mmask8 kAll8 = 0xff;
  __m512i t[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_mask_unpacklo_epi32(r[i], kAll, r[i], r[i + 1]);
    t[i + 1] = _mm512_mask_unpackhi_epi32(r[i], kAll, r[i], r[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {
    for (int j = 0; j < 2; ++j) {
      r[i + 2 * j] = _mm512_mask_unpacklo_epi64(t[i + j], kAll8, t[i + j], t[i + j + 2]);
      r[i + 2 * j + 1] = _mm512_mask_unpackhi_epi64(t[i + j], kAll8, t[i + j], t[i + j + 2]);
    }
  }
  // r[4q + c] now holds, in 128-bit lane l, rows 4q..4q+3 of column 4l + c.
  for (int q = 0; q < 4; q += 2) {
    for (int c = 0; c < 4; ++c) {
      const __m512i lo = r[4 * q + c], hi = r[4 * q + 4 + c];
      t[4 * q + c] = _mm512_mask_shuffle_i32x4(lo, kAll, lo, hi, 0x88);
      t[4 * q + 4 + c] = _mm512_mask_shuffle_i32x4(lo, kAll, lo, hi, 0xdd);
    }
  }
  for (int c = 0; c < 8; ++c) {
    r[c] = _mm512_mask_shuffle_i32x4(t[c], kAll, t[c], t[8 + c], 0x88);
    r[c + 8] = _mm512_mask_shuffle_i32x4(t[c], kAll, t[c], t[8 + c], 0xdd);
  }
}

}  // namespace tessera::kernels
#else
#define TESSERA_HAVE_TRANSPOSE16_EPI32 0
#endif

#if defined(__AVX512F__)
#include <immintrin.h>  // GCC 12 false -Wmaybe-uninitialized in its AVX-512 headers: silenced in CMakeLists.txt

namespace tessera::kernels {

// d (16 x 16, leading dim ldd) = s (16 x 16, leading dim lds) transposed, in registers
// (transpose16_epi32's network: a transpose moves bits, whatever the type); and colsum[0, 16)
// += s's rows, added in row order, unless colsum is nullptr.
inline void transpose16(const float* s, int64_t lds, float* d, int64_t ldd,
                        float* colsum = nullptr) {
  __m512i r[16];
  for (int i = 0; i < 16; ++i) r[i] = _mm512_castps_si512(_mm512_loadu_ps(s + i * lds));
  if (colsum != nullptr) {
    __m512 sum = _mm512_loadu_ps(colsum);
    for (int i = 0; i < 16; ++i) sum = _mm512_add_ps(sum, _mm512_castsi512_ps(r[i]));
    _mm512_storeu_ps(colsum, sum);
  }
  transpose16_epi32(r);
  for (int c = 0; c < 16; ++c) _mm512_storeu_ps(d + c * ldd, _mm512_castsi512_ps(r[c]));
}

}  // namespace tessera::kernels
#endif

#if defined(__AVX2__)
#include <immintrin.h>

namespace tessera::kernels {

// In place: r[h + c], h = 0 or 4, c < 4, then holds in its 128-bit lane l rows h..h+3 of
// column 4l + c of the 8 x 8 matrix whose row i was r[i].
inline void transpose8_lanes(__m256 r[8]) {
  __m256 t[8];
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int h = 0; h < 8; h += 4) {
    for (int q = 0; q < 2; ++q) {
      r[h + 2 * q] = _mm256_shuffle_ps(t[h + q], t[h + q + 2], _MM_SHUFFLE(1, 0, 1, 0));
      r[h + 2 * q + 1] = _mm256_shuffle_ps(t[h + q], t[h + q + 2], _MM_SHUFFLE(3, 2, 3, 2));
    }
  }
}

// d (8 x 8, leading dim ldd) = s (8 x 8, leading dim lds) transposed, in ymm registers (the AVX2
// engine's packing of the forward's wᵀ).
inline void transpose8(const float* s, int64_t lds, float* d, int64_t ldd) {
  __m256 r[8];
  for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(s + i * lds);
  transpose8_lanes(r);
  for (int c = 0; c < 4; ++c) {
    _mm256_storeu_ps(d + c * ldd, _mm256_permute2f128_ps(r[c], r[4 + c], 0x20));
    _mm256_storeu_ps(d + (c + 4) * ldd, _mm256_permute2f128_ps(r[c], r[4 + c], 0x31));
  }
}

// d[c * 6 + i] = s[i * lds + c], i < 6, c < 8: 8 columns of 6 rows of s transposed into 6-float
// groups (the AVX2 engine's packed micro-panels of A), through transpose8's network; rows from
// `rows` on are read as 0 and not touched in s.
inline void transpose6x8(const float* s, int64_t lds, int rows, float* d) {
  __m256 r[8];
  for (int i = 0; i < 8; ++i) {
    r[i] = i < 6 && i < rows ? _mm256_loadu_ps(s + i * lds) : _mm256_setzero_ps();
  }
  transpose8_lanes(r);
  // Column 4l + c: rows 0..3 in lane l of r[c], rows 4 and 5 in the low half of lane l of r[4 + c].
  for (int c = 0; c < 4; ++c) {
    float* d0 = d + c * 6;
    float* d1 = d + (c + 4) * 6;
    _mm_storeu_ps(d0, _mm256_castps256_ps128(r[c]));
    _mm_storel_pi(reinterpret_cast<__m64*>(d0 + 4), _mm256_castps256_ps128(r[4 + c]));
    _mm_storeu_ps(d1, _mm256_extractf128_ps(r[c], 1));
    _mm_storel_pi(reinterpret_cast<__m64*>(d1 + 4), _mm256_extractf128_ps(r[4 + c], 1));
  }
}

}  // namespace tessera::kernels
#endif

namespace tessera::kernels {

// dst (cols x rows, leading dim ldd) = src (rows x cols, leading dim lds) transposed, in 16 x 16
// register blocks where they fit (AVX-512 builds); and colsum[0, cols) += src's rows, added in
// row order (the order of a plain loop over rows, so the same bits), unless colsum is nullptr.
inline void transpose_block(const float* src, int64_t lds, int64_t rows, int64_t cols, float* dst,
                            int64_t ldd, float* colsum = nullptr) {
  int64_t i = 0;
#if defined(__AVX512F__)
  for (; i + 16 <= rows; i += 16) {
    int64_t j = 0;
    for (; j + 16 <= cols; j += 16) {
      transpose16(src + i * lds + j, lds, dst + j * ldd + i, ldd,
                  colsum == nullptr ? nullptr : colsum + j);
    }
    for (; j < cols; ++j) {
      for (int64_t ii = i; ii < i + 16; ++ii) {
        dst[j * ldd + ii] = src[ii * lds + j];
        if (colsum != nullptr) colsum[j] += src[ii * lds + j];
      }
    }
  }
#endif
  for (; i < rows; ++i) {
    for (int64_t j = 0; j < cols; ++j) {
      dst[j * ldd + i] = src[i * lds + j];
      if (colsum != nullptr) colsum[j] += src[i * lds + j];
    }
  }
}

}  // namespace tessera::kernels
