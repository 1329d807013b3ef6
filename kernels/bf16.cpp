// float -> bf16 conversions of kernels/bf16.h.
#include "kernels/bf16.h"

#include <cstring>

#include "kernels/parallel.h"
#include "kernels/transpose.h"

namespace tessera::kernels {

void to_bf16(const float* src, bf16* dst, int64_t n) {
  for_chunks(n, chunk_size(n, 16384), [=](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) dst[i] = to_bf16(src[i]);
  });
}

namespace {

// dst_t (ld, rows) rows [c0, c1) x columns [rb, rb + 16) = dst rows [rb, rb + 16) x columns
// [c0, c1), transposed through a 16 x 16 block in registers/L1: 32-byte reads and writes
// instead of 2-byte strided ones (1.6x faster than a plain column loop at 256 x 1024).
#if defined(__AVX512BW__) && TESSERA_HAVE_TRANSPOSE16_EPI32
// Columns [c, c + 32) of the band: each pair of rows interleaved into 32-bit pairs (vpermt2w),
// the 16 x 16 pairs transposed in registers, each column's 16 rows written as one 32-byte run.
// tile_to_bf16 of a 256 x 64 strip in cache (the bf16 engine's dX epilogue) took 1.2x less
// time than with the 16 x 16 block copy below alone (which stays for the band's last columns
// and non-AVX-512 builds); a 128 x 1024 to_bf16 from memory 1.3x, 256 x 1024 the same.
void transpose_band16x32(const bf16* dst, bf16* dst_t, int64_t rows, int64_t ld, int64_t rb,
                         int64_t c) {
  alignas(64) static constexpr uint16_t kLo[32] = {0, 32, 1, 33, 2,  34, 3,  35, 4,  36, 5,
                                                   37, 6, 38, 7, 39, 8,  40, 9,  41, 10, 42,
                                                   11, 43, 12, 44, 13, 45, 14, 46, 15, 47};
  alignas(64) static constexpr uint16_t kHi[32] = {16, 48, 17, 49, 18, 50, 19, 51, 20, 52, 21,
                                                   53, 22, 54, 23, 55, 24, 56, 25, 57, 26, 58,
                                                   27, 59, 28, 60, 29, 61, 30, 62, 31, 63};
  const __m512i lo = _mm512_load_si512(kLo), hi = _mm512_load_si512(kHi);
  __m512i r[16];
  for (int64_t i = 0; i < 8; ++i) {
    const __m512i a = _mm512_loadu_si512(&dst[(rb + 2 * i) * ld + c]);
    const __m512i b = _mm512_loadu_si512(&dst[(rb + 2 * i + 1) * ld + c]);
    r[i] = _mm512_permutex2var_epi16(a, lo, b);      // columns c .. c + 15
    r[8 + i] = _mm512_permutex2var_epi16(a, hi, b);  // columns c + 16 .. c + 31
  }
  transpose16_epi32(r);
  for (int64_t t = 0; t < 16; ++t) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(&dst_t[(c + t) * rows + rb]),
                        _mm512_castsi512_si256(r[t]));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(&dst_t[(c + 16 + t) * rows + rb]),
                        _mm512_extracti64x4_epi64(r[t], 1));
  }
}
#endif

void transpose_band16(const bf16* dst, bf16* dst_t, int64_t rows, int64_t ld, int64_t rb,
                      int64_t c0, int64_t c1) {
  constexpr int64_t kB = 16;
  int64_t c = c0;
#if defined(__AVX512BW__) && TESSERA_HAVE_TRANSPOSE16_EPI32
  for (; c + 32 <= c1; c += 32) transpose_band16x32(dst, dst_t, rows, ld, rb, c);
#endif
  for (; c + kB <= c1; c += kB) {
    uint16_t block[kB][kB];
    for (int64_t i = 0; i < kB; ++i) std::memcpy(block[i], &dst[(rb + i) * ld + c], sizeof block[i]);
    for (int64_t j = 0; j < kB; ++j) {
      uint16_t col[kB];
      for (int64_t i = 0; i < kB; ++i) col[i] = block[i][j];
      std::memcpy(&dst_t[(c + j) * rows + rb], col, sizeof col);
    }
  }
  for (; c < c1; ++c) {
    for (int64_t r = rb; r < rb + kB; ++r) dst_t[c * rows + r] = dst[r * ld + c];
  }
}

}  // namespace

void tile_to_bf16(const float* src, bf16* dst, bf16* dst_t, int64_t rows, int64_t ld, int64_t r0,
                  int64_t r1, int64_t c0, int64_t c1) {
  // Bands of 16 rows: the transposed copy reads a band while it is in L1.
  constexpr int64_t kBand = 16;
  for (int64_t rb = r0; rb < r1; rb += kBand) {
    const int64_t re = rb + kBand < r1 ? rb + kBand : r1;
    for (int64_t r = rb; r < re; ++r) {
      for (int64_t c = c0; c < c1; ++c) dst[r * ld + c] = to_bf16(src[r * ld + c]);
    }
    if (dst_t == nullptr) continue;
    if (re - rb == kBand) {
      transpose_band16(dst, dst_t, rows, ld, rb, c0, c1);
      continue;
    }
    for (int64_t c = c0; c < c1; ++c) {
      for (int64_t r = rb; r < re; ++r) dst_t[c * rows + r] = dst[r * ld + c];
    }
  }
}

void to_bf16(const float* src, bf16* dst, bf16* dst_t, int64_t rows, int64_t cols) {
  // Chunks of at least 16 rows keep each transposed write run 32 bytes or longer.
  for_chunks(rows, chunk_size(rows, 16), [=](int64_t b, int64_t e) {
    tile_to_bf16(src, dst, dst_t, rows, cols, b, e, 0, cols);
  });
}

}  // namespace tessera::kernels
