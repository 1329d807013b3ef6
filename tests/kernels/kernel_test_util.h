// Shared helpers for the kernel tests: seeded random fills, running a kernel under a fixed
// oneTBB thread count, bitwise comparison, and the ‖a−b‖/‖a+b‖ gradient-check score.
#pragma once

#include <gtest/gtest.h>
#include <tbb/global_control.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace tessera::kernels::test {

// n values uniform in [lo, hi), reproducible from seed.
template <class T>
std::vector<T> random_vector(int64_t n, uint64_t seed, double lo = -1.0, double hi = 1.0) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> dist(lo, hi);
  std::vector<T> v(static_cast<size_t>(n));
  for (auto& x : v) x = static_cast<T>(dist(rng));
  return v;
}

// Runs f() with oneTBB capped at `threads` worker threads (the CLI's mechanism).
template <class F>
void with_threads(int threads, const F& f) {
  tbb::global_control limit(tbb::global_control::max_allowed_parallelism, threads);
  f();
}

// Same bytes? Used to prove results do not depend on the thread count.
template <class T>
bool bitwise_equal(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

// Gradient-check score ‖a−b‖/‖a+b‖ (0 when both are 0); prints it with the max |a−b| so a
// failing check shows how far off it was.
inline double grad_check_score(const std::string& what, const std::vector<double>& analytic,
                               const std::vector<double>& numeric) {
  double diff = 0.0, sum = 0.0, max_diff = 0.0;
  for (size_t i = 0; i < analytic.size(); ++i) {
    const double d = analytic[i] - numeric[i];
    const double s = analytic[i] + numeric[i];
    diff += d * d;
    sum += s * s;
    max_diff = std::max(max_diff, std::fabs(d));
  }
  const double score = sum == 0.0 ? std::sqrt(diff) : std::sqrt(diff / sum);
  std::printf("[ gradcheck ] %-28s score %.3e  max|diff| %.3e  (%zu values)\n", what.c_str(), score,
              max_diff, analytic.size());
  return score;
}

// Central difference of f at x[i] for every i: (f(x+h) - f(x-h)) / 2h, x restored after.
template <class F>
std::vector<double> numeric_gradient(std::vector<double>& x, const F& f, double h = 1e-6) {
  std::vector<double> g(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const double saved = x[i];
    x[i] = saved + h;
    const double up = f();
    x[i] = saved - h;
    const double down = f();
    x[i] = saved;
    g[i] = (up - down) / (2.0 * h);
  }
  return g;
}

}  // namespace tessera::kernels::test
