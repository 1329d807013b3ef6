// A 16 x 16 transpose of 32-bit elements in AVX-512 registers, shared by the bf16 engine's
// panel packing (kernels/gemm_avx512_bf16.cpp) and the transposed bf16 copies (kernels/bf16.cpp).
// Compiled for AVX-512 by its target attribute whatever the build's baseline; callers run it
// only where the CPU has AVX-512 (a runtime check, or a build for such a CPU).
#pragma once

#if defined(__x86_64__) && defined(__GNUC__)
#define TESSERA_HAVE_SIMD_TRANSPOSE 1
#include <immintrin.h>  // GCC 12 false -Wmaybe-uninitialized in its AVX-512 headers: silenced in CMakeLists.txt

namespace tessera::kernels {

// r[j] = column j of the 16 x 16 matrix of 32-bit elements whose row i is r[i] (in place).
__attribute__((target("avx512f"))) inline void transpose16_epi32(__m512i r[16]) {
  __m512i t[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {
    for (int j = 0; j < 2; ++j) {
      r[i + 2 * j] = _mm512_unpacklo_epi64(t[i + j], t[i + j + 2]);
      r[i + 2 * j + 1] = _mm512_unpackhi_epi64(t[i + j], t[i + j + 2]);
    }
  }
  // r[4q + c] now holds, in 128-bit lane l, rows 4q..4q+3 of column 4l + c.
  for (int q = 0; q < 4; q += 2) {
    for (int c = 0; c < 4; ++c) {
      const __m512i lo = r[4 * q + c], hi = r[4 * q + 4 + c];
      t[4 * q + c] = _mm512_shuffle_i32x4(lo, hi, 0x88);
      t[4 * q + 4 + c] = _mm512_shuffle_i32x4(lo, hi, 0xdd);
    }
  }
  for (int c = 0; c < 8; ++c) {
    r[c] = _mm512_shuffle_i32x4(t[c], t[8 + c], 0x88);
    r[c + 8] = _mm512_shuffle_i32x4(t[c], t[8 + c], 0xdd);
  }
}

}  // namespace tessera::kernels

#else
#define TESSERA_HAVE_SIMD_TRANSPOSE 0
#endif
