// Tests for kernels/activation: every activation, forward and backward, against double
// formulas, across chunk boundaries, with 1 and 2 threads (bitwise equal), in place, by central
// differences, and at huge |z| where a naive sigmoid overflows.
#include "kernels/activation.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numbers>
#include <string>
#include <vector>

#include "tests/kernels/kernel_test_util.h"

namespace tessera::kernels {
namespace {

using test::bitwise_equal;
using test::random_vector;
using test::with_threads;

const Activation kAll[] = {Activation::kRelu, Activation::kTanh, Activation::kGelu,
                           Activation::kSigmoid};

std::string name(Activation a) {
  switch (a) {
    case Activation::kRelu:
      return "relu";
    case Activation::kTanh:
      return "tanh";
    case Activation::kGelu:
      return "gelu";
    case Activation::kSigmoid:
      return "sigmoid";
  }
  return "?";
}

// Reference act(z) and act'(z) straight from the definitions, in double.
double ref_forward(Activation a, double z) {
  switch (a) {
    case Activation::kRelu:
      return z > 0 ? z : 0;
    case Activation::kTanh:
      return std::tanh(z);
    case Activation::kGelu:
      return 0.5 * z * (1 + std::erf(z / std::sqrt(2.0)));
    case Activation::kSigmoid:
      return 1 / (1 + std::exp(-z));
  }
  return 0;
}

double ref_derivative(Activation a, double z) {
  switch (a) {
    case Activation::kRelu:
      return z > 0 ? 1 : 0;
    case Activation::kTanh:
      return 1 - std::tanh(z) * std::tanh(z);
    case Activation::kGelu:
      return 0.5 * (1 + std::erf(z / std::sqrt(2.0))) +
             z * std::exp(-0.5 * z * z) / std::sqrt(2 * std::numbers::pi);
    case Activation::kSigmoid:
      return std::exp(-z) / ((1 + std::exp(-z)) * (1 + std::exp(-z)));
  }
  return 0;
}

// Forward and backward at n values, checked against the reference; returns (a, dz).
template <class T>
std::pair<std::vector<T>, std::vector<T>> run_and_check(Activation act, int64_t n, double tol) {
  const std::vector<T> z = random_vector<T>(n, 21, -4.0, 4.0);
  const std::vector<T> da = random_vector<T>(n, 22);
  std::vector<T> a(n), dz(n);
  activation_forward(act, z.data(), a.data(), n);
  activation_backward(act, z.data(), a.data(), da.data(), dz.data(), n);
  for (int64_t i = 0; i < n; ++i) {
    const double want_a = ref_forward(act, z[i]);
    const double want_dz = double(da[i]) * ref_derivative(act, z[i]);
    EXPECT_NEAR(a[i], want_a, tol * (1 + std::fabs(want_a))) << name(act) << " z=" << z[i];
    EXPECT_NEAR(dz[i], want_dz, tol * (1 + std::fabs(want_dz))) << name(act) << " z=" << z[i];
  }
  return {a, dz};
}

// 37 is one partial chunk; 40001 spans three 16 Ki chunks.
template <class T>
void check_all(double tol) {
  for (Activation act : kAll) {
    for (int64_t n : {int64_t{37}, int64_t{40001}}) {
      SCOPED_TRACE(name(act) + " n=" + std::to_string(n));
      std::pair<std::vector<T>, std::vector<T>> one, two;
      with_threads(1, [&] { one = run_and_check<T>(act, n, tol); });
      with_threads(2, [&] { two = run_and_check<T>(act, n, tol); });
      EXPECT_TRUE(bitwise_equal(one.first, two.first));
      EXPECT_TRUE(bitwise_equal(one.second, two.second));
    }
  }
}

TEST(Activation, FloatMatchesReference) { check_all<float>(2e-6); }
TEST(Activation, DoubleMatchesReference) { check_all<double>(1e-14); }

// a may alias z and dz may alias da.
TEST(Activation, InPlaceMatchesOutOfPlace) {
  const int64_t n = 1001;
  for (Activation act : kAll) {
    const std::vector<float> z = random_vector<float>(n, 31, -3.0, 3.0);
    const std::vector<float> da = random_vector<float>(n, 32);
    std::vector<float> a(n), dz(n);
    activation_forward(act, z.data(), a.data(), n);
    activation_backward(act, z.data(), a.data(), da.data(), dz.data(), n);
    std::vector<float> a_in = z, dz_in = da;
    activation_forward(act, a_in.data(), a_in.data(), n);
    activation_backward(act, z.data(), a.data(), dz_in.data(), dz_in.data(), n);
    EXPECT_TRUE(bitwise_equal(a, a_in)) << name(act);
    EXPECT_TRUE(bitwise_equal(dz, dz_in)) << name(act);
  }
}

// Elements get the same bits at any alignment (vector body vs. peeled or scalar remainder).
TEST(Activation, ResultsDoNotDependOnAlignment) {
  const int64_t n = 1000;
  const std::vector<float> z = random_vector<float>(n, 35, -3.0, 3.0);
  const std::vector<float> da = random_vector<float>(n, 36);
  for (Activation act : kAll) {
    std::vector<float> first_a, first_dz;
    for (int64_t offset = 0; offset <= 16; ++offset) {
      std::vector<float> zs(n + offset), das(n + offset), a(n + offset), dz(n + offset);
      std::copy(z.begin(), z.end(), zs.begin() + offset);
      std::copy(da.begin(), da.end(), das.begin() + offset);
      activation_forward(act, zs.data() + offset, a.data() + offset, n);
      activation_backward(act, zs.data() + offset, a.data() + offset, das.data() + offset,
                          dz.data() + offset, n);
      const std::vector<float> got_a(a.begin() + offset, a.end());
      const std::vector<float> got_dz(dz.begin() + offset, dz.end());
      if (offset == 0) {
        first_a = got_a;
        first_dz = got_dz;
      }
      EXPECT_TRUE(bitwise_equal(got_a, first_a)) << name(act) << " offset " << offset;
      EXPECT_TRUE(bitwise_equal(got_dz, first_dz)) << name(act) << " offset " << offset;
    }
  }
}

// L = Σ r ⊙ act(z): activation_backward(da = r) against central differences of L.
TEST(Activation, GradientCheck) {
  const int64_t n = 64;
  for (Activation act : kAll) {
    std::vector<double> z = random_vector<double>(n, 41, -3.0, 3.0);
    // Keep relu's kink out of the difference stencil.
    for (double& v : z) {
      if (std::fabs(v) < 1e-2) v += 0.05;
    }
    const std::vector<double> r = random_vector<double>(n, 42);
    std::vector<double> a(n), dz(n);
    auto loss = [&] {
      activation_forward(act, z.data(), a.data(), n);
      double l = 0.0;
      for (int64_t i = 0; i < n; ++i) l += r[i] * a[i];
      return l;
    };
    loss();
    activation_backward(act, z.data(), a.data(), r.data(), dz.data(), n);
    EXPECT_LT(test::grad_check_score(name(act), dz, test::numeric_gradient(z, loss)), 1e-6);
  }
}

// Huge |z| must saturate, not overflow into inf/inf = NaN.
TEST(Activation, SaturatesAtHugeInputs) {
  const std::vector<float> z = {-1e4f, -200.0f, -89.0f, 89.0f, 200.0f, 1e4f};
  std::vector<float> a(z.size()), dz(z.size());
  const std::vector<float> da(z.size(), 1.0f);
  for (Activation act : kAll) {
    activation_forward(act, z.data(), a.data(), int64_t(z.size()));
    activation_backward(act, z.data(), a.data(), da.data(), dz.data(), int64_t(z.size()));
    for (size_t i = 0; i < z.size(); ++i) {
      EXPECT_TRUE(std::isfinite(a[i])) << name(act) << " z=" << z[i];
      EXPECT_TRUE(std::isfinite(dz[i])) << name(act) << " z=" << z[i];
    }
  }
  activation_forward(Activation::kSigmoid, z.data(), a.data(), int64_t(z.size()));
  EXPECT_EQ(a.front(), 0.0f);
  EXPECT_EQ(a.back(), 1.0f);
}

}  // namespace
}  // namespace tessera::kernels
