// Counter-based random numbers: a value is a pure function of (seed, stream, index), so data
// order, initial weights and synthetic data never depend on thread or rank counts.
#pragma once

#include <cstdint>

namespace tessera {

// SplitMix64 finaliser: a good 64-bit mixing function.
uint64_t mix64(uint64_t x);

// Hash of a (seed, stream, index) triple.
uint64_t hash3(uint64_t seed, uint64_t stream, uint64_t index);

// Sequential generator for a stream (Fisher–Yates shuffles, weight init).
class Rng {
 public:
  Rng(uint64_t seed, uint64_t stream) : state_(hash3(seed, stream, 0x7e55e7a)) {}
  uint64_t next_u64();
  // Uniform in [0, n) without modulo bias.
  uint64_t below(uint64_t n);
  // Uniform in [0, 1) with 53 random bits.
  double uniform();
  // Standard normal (Box–Muller).
  double normal();

 private:
  uint64_t state_;
};

// Uniform in [0,1) from a hash value.
inline double to_unit(uint64_t h) { return static_cast<double>(h >> 11) * 0x1.0p-53; }

}  // namespace tessera
