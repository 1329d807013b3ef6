// bfloat16 storage for bf16 training: the upper half of a float32 (same exponent range, 8-bit
// significand), rounded to nearest even. Only conversions live here; the products on bf16
// operands are in kernels/dense.h. Conversions are pure functions of the values, so they give
// the same bits for any thread count.
#pragma once

#include <cstdint>
#include <cstring>

namespace tessera::kernels {

struct bf16 {
  uint16_t bits = 0;
};
static_assert(sizeof(bf16) == 2, "bf16 arrays must be packed 16-bit values, as oneDNN reads them");

// Round to nearest even, as the AVX512_BF16 conversion does; NaN stays a (quiet) NaN instead of
// rounding into infinity. Written branch-free so loops over it vectorize.
inline bf16 to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
  const bool nan = (u & 0x7fffffffu) > 0x7f800000u;
  return bf16{static_cast<uint16_t>(nan ? (u >> 16) | 0x40u : rounded)};
}

inline float to_float(bf16 h) {
  const uint32_t u = static_cast<uint32_t>(h.bits) << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// src (n) -> dst (n) = bf16(src), in fixed parallel chunks.
void to_bf16(const float* src, bf16* dst, int64_t n);

// src (rows, cols) -> dst (rows, cols) = bf16(src) and, unless nullptr, dst_t (cols, rows) =
// bf16(src)ᵀ, in fixed parallel chunks of rows.
void to_bf16(const float* src, bf16* dst, bf16* dst_t, int64_t rows, int64_t cols);

// The same for rows [r0, r1) x columns [c0, c1) of a matrix with `rows` rows and leading dim ld:
// dst at the same positions, dst_t (ld, rows) transposed. Serial: run on an output tile right
// after its product, while it is in cache.
void tile_to_bf16(const float* src, bf16* dst, bf16* dst_t, int64_t rows, int64_t ld, int64_t r0,
                  int64_t r1, int64_t c0, int64_t c1);

}  // namespace tessera::kernels
