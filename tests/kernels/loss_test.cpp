// Tests for kernels/loss: softmax cross-entropy, logistic and MSE against naive double loops
// (sums and gradients), 1 vs 2 threads bitwise, aliasing and forward-only calls, central
// differences of the summed loss, huge logits, and bad labels.
#include "kernels/loss.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <stdexcept>
#include <vector>

#include "tests/kernels/kernel_test_util.h"

namespace tessera::kernels {
namespace {

using test::bitwise_equal;
using test::random_vector;
using test::with_threads;

std::vector<int32_t> random_labels(int64_t n, int32_t k, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int32_t> dist(0, k - 1);
  std::vector<int32_t> y(n);
  for (auto& v : y) v = dist(rng);
  return y;
}

bool same_bits(const LossResult& a, const LossResult& b) {
  return std::memcmp(&a.loss_sum, &b.loss_sum, sizeof(double)) == 0 &&
         std::memcmp(&a.correct, &b.correct, sizeof(double)) == 0;
}

// ---- softmax cross-entropy ----

// Reference: loss = log Σ e^z - z_y by the textbook (unshifted) formula, which is fine for
// |z| <= 3; gradient (softmax - onehot) * scale; correct = argmax == y.
LossResult ref_xent(const std::vector<float>& z, const std::vector<int32_t>& y,
                    std::vector<double>& dz, int64_t n, int64_t k, double scale) {
  LossResult r;
  dz.assign(n * k, 0.0);
  for (int64_t i = 0; i < n; ++i) {
    double sum = 0.0;
    int64_t arg = 0;
    for (int64_t j = 0; j < k; ++j) {
      sum += std::exp(double(z[i * k + j]));
      if (z[i * k + j] > z[i * k + arg]) arg = j;
    }
    r.loss_sum += std::log(sum) - z[i * k + y[i]];
    r.correct += arg == y[i];
    for (int64_t j = 0; j < k; ++j)
      dz[i * k + j] = (std::exp(double(z[i * k + j])) / sum - (j == y[i])) * scale;
  }
  return r;
}

TEST(SoftmaxXent, MatchesReferenceAndThreadCountInvariant) {
  // 37x10 is one chunk; 1000x7 is four 256-row chunks.
  for (auto [n, k] : {std::pair<int64_t, int64_t>{37, 10}, {1000, 7}}) {
    const std::vector<float> z = random_vector<float>(n * k, 51, -3.0, 3.0);
    const std::vector<int32_t> y = random_labels(n, int32_t(k), 52);
    const double scale = 1.0 / double(n);
    std::vector<float> d1(n * k), d2(n * k);
    LossResult r1, r2;
    with_threads(1, [&] { r1 = softmax_xent(z.data(), y.data(), d1.data(), n, k, scale); });
    with_threads(2, [&] { r2 = softmax_xent(z.data(), y.data(), d2.data(), n, k, scale); });
    EXPECT_TRUE(same_bits(r1, r2));
    EXPECT_TRUE(bitwise_equal(d1, d2));
    std::vector<double> want_d;
    const LossResult want = ref_xent(z, y, want_d, n, k, scale);
    EXPECT_NEAR(r1.loss_sum, want.loss_sum, 1e-12 * n);
    EXPECT_EQ(r1.correct, want.correct);
    for (int64_t i = 0; i < n * k; ++i) EXPECT_NEAR(d1[i], want_d[i], 1e-7 * scale) << i;
  }
}

TEST(SoftmaxXent, AliasedAndForwardOnlyAgree) {
  const int64_t n = 300, k = 10;
  const std::vector<float> z = random_vector<float>(n * k, 53, -3.0, 3.0);
  const std::vector<int32_t> y = random_labels(n, int32_t(k), 54);
  std::vector<float> d(n * k), inplace = z;
  const LossResult r = softmax_xent(z.data(), y.data(), d.data(), n, k, 0.5);
  const LossResult r_alias = softmax_xent(inplace.data(), y.data(), inplace.data(), n, k, 0.5);
  const LossResult r_fwd =
      softmax_xent(z.data(), y.data(), static_cast<float*>(nullptr), n, k, 0.5);
  EXPECT_TRUE(same_bits(r, r_alias));
  EXPECT_TRUE(same_bits(r, r_fwd));
  EXPECT_TRUE(bitwise_equal(d, inplace));
}

// Logits of 1e4 overflow e^z in any precision; the shifted form must stay finite and exact.
TEST(SoftmaxXent, HugeLogitsStayFinite) {
  const int64_t n = 2, k = 3;
  const std::vector<float> z = {1e4f, 0.0f, -1e4f, -1e4f, 1e4f, 1e4f};
  const std::vector<int32_t> y = {0, 0};
  std::vector<float> d(n * k);
  const LossResult r = softmax_xent(z.data(), y.data(), d.data(), n, k, 1.0);
  ASSERT_TRUE(std::isfinite(r.loss_sum));
  for (float v : d) EXPECT_TRUE(std::isfinite(v));
  // Row 0 is confidently right (loss 0), row 1 is 2e4 off.
  EXPECT_NEAR(r.loss_sum, 2e4 + std::log(2.0), 1e-9);
  EXPECT_EQ(r.correct, 1.0);
  EXPECT_FLOAT_EQ(d[0], 0.0f);
  EXPECT_FLOAT_EQ(d[3], -1.0f);
  EXPECT_FLOAT_EQ(d[4], 0.5f);
}

TEST(SoftmaxXent, BadLabelThrows) {
  const std::vector<float> z(6, 0.0f);
  const std::vector<int32_t> y = {1, 3};
  EXPECT_THROW(softmax_xent(z.data(), y.data(), static_cast<float*>(nullptr), 2, 3, 1.0),
               std::out_of_range);
}

// ---- logistic ----

LossResult ref_logistic(const std::vector<float>& z, const std::vector<int32_t>& y,
                        std::vector<double>& dz, double scale) {
  LossResult r;
  dz.resize(z.size());
  for (size_t i = 0; i < z.size(); ++i) {
    const double p = 1.0 / (1.0 + std::exp(-double(z[i])));
    r.loss_sum += -(y[i] ? std::log(p) : std::log(1.0 - p));
    r.correct += (p > 0.5) == (y[i] == 1);
    dz[i] = (p - y[i]) * scale;
  }
  return r;
}

TEST(Logistic, MatchesReferenceAndThreadCountInvariant) {
  // 5000 rows are two 4096-row chunks.
  for (int64_t n : {int64_t{37}, int64_t{5000}}) {
    const std::vector<float> z = random_vector<float>(n, 61, -5.0, 5.0);
    const std::vector<int32_t> y = random_labels(n, 2, 62);
    const double scale = 1.0 / double(n);
    std::vector<float> d1(n), d2(n), inplace = z;
    LossResult r1, r2;
    with_threads(1, [&] { r1 = logistic(z.data(), y.data(), d1.data(), n, scale); });
    with_threads(2, [&] { r2 = logistic(z.data(), y.data(), d2.data(), n, scale); });
    EXPECT_TRUE(same_bits(r1, r2));
    EXPECT_TRUE(bitwise_equal(d1, d2));
    const LossResult r_alias = logistic(inplace.data(), y.data(), inplace.data(), n, scale);
    const LossResult r_fwd = logistic(z.data(), y.data(), static_cast<float*>(nullptr), n, scale);
    EXPECT_TRUE(same_bits(r1, r_alias));
    EXPECT_TRUE(same_bits(r1, r_fwd));
    EXPECT_TRUE(bitwise_equal(d1, inplace));
    std::vector<double> want_d;
    const LossResult want = ref_logistic(z, y, want_d, scale);
    EXPECT_NEAR(r1.loss_sum, want.loss_sum, 1e-10 * n);
    EXPECT_EQ(r1.correct, want.correct);
    for (int64_t i = 0; i < n; ++i) EXPECT_NEAR(d1[i], want_d[i], 1e-7 * scale) << i;
  }
}

// log(1 + e^z) overflows for z = 1e4 unless computed as max(z,0) + log1p(e^-|z|).
TEST(Logistic, HugeLogitsStayFinite) {
  const std::vector<float> z = {1e4f, -1e4f, 1e4f, -1e4f};
  const std::vector<int32_t> y = {1, 0, 0, 1};
  std::vector<float> d(4);
  const LossResult r = logistic(z.data(), y.data(), d.data(), 4, 1.0);
  EXPECT_NEAR(r.loss_sum, 2e4, 1e-9);
  EXPECT_EQ(r.correct, 2.0);
  EXPECT_EQ(d, (std::vector<float>{0.0f, 0.0f, 1.0f, -1.0f}));
}

TEST(Logistic, BadLabelThrows) {
  const std::vector<float> z(2, 0.0f);
  const std::vector<int32_t> y = {0, 2};
  EXPECT_THROW(logistic(z.data(), y.data(), static_cast<float*>(nullptr), 2, 1.0),
               std::out_of_range);
}

// ---- mse ----

TEST(Mse, MatchesReferenceAndThreadCountInvariant) {
  for (auto [n, t] : {std::pair<int64_t, int64_t>{37, 3}, {1000, 5}}) {
    const std::vector<float> p = random_vector<float>(n * t, 71),
                             y = random_vector<float>(n * t, 72);
    const double scale = 1.0 / double(n);
    std::vector<float> d1(n * t), d2(n * t), inplace = p;
    LossResult r1, r2;
    with_threads(1, [&] { r1 = mse(p.data(), y.data(), d1.data(), n, t, scale); });
    with_threads(2, [&] { r2 = mse(p.data(), y.data(), d2.data(), n, t, scale); });
    EXPECT_TRUE(same_bits(r1, r2));
    EXPECT_TRUE(bitwise_equal(d1, d2));
    const LossResult r_alias = mse(inplace.data(), y.data(), inplace.data(), n, t, scale);
    const LossResult r_fwd = mse(p.data(), y.data(), static_cast<float*>(nullptr), n, t, scale);
    EXPECT_TRUE(same_bits(r1, r_alias));
    EXPECT_TRUE(same_bits(r1, r_fwd));
    EXPECT_TRUE(bitwise_equal(d1, inplace));
    double loss = 0.0, sq = 0.0;
    for (int64_t i = 0; i < n; ++i) {
      double row = 0.0;
      for (int64_t j = 0; j < t; ++j) {
        const double e = double(p[i * t + j]) - y[i * t + j];
        row += e * e;
        EXPECT_NEAR(d1[i * t + j], 2.0 * e / double(t) * scale, 1e-7 * scale);
      }
      loss += row / double(t);
      sq += row;
    }
    EXPECT_NEAR(r1.loss_sum, loss, 1e-12 * n);
    EXPECT_NEAR(r1.correct, sq, 1e-12 * n);
  }
}

// ---- gradient checks: dlogits must be d(loss_sum · scale)/dz ----

template <class Loss>
void gradient_check(const char* what, std::vector<double>& z, double scale, const Loss& loss) {
  std::vector<double> dz(z.size());
  loss(dz.data());
  const auto numeric = test::numeric_gradient(z, [&] { return loss(nullptr) * scale; });
  EXPECT_LT(test::grad_check_score(what, dz, numeric), 1e-6);
}

TEST(Loss, GradientCheck) {
  const int64_t n = 4, k = 5;
  const double scale = 0.25;
  std::vector<double> z = random_vector<double>(n * k, 81, -2.0, 2.0);
  const std::vector<int32_t> labels = random_labels(n, int32_t(k), 82);
  gradient_check("softmax_xent", z, scale, [&](double* dz) {
    return softmax_xent(z.data(), labels.data(), dz, n, k, scale).loss_sum;
  });
  std::vector<double> zl = random_vector<double>(n * k, 83, -4.0, 4.0);
  const std::vector<int32_t> bin = random_labels(n * k, 2, 84);
  gradient_check("logistic", zl, scale, [&](double* dz) {
    return logistic(zl.data(), bin.data(), dz, n * k, scale).loss_sum;
  });
  std::vector<double> pred = random_vector<double>(n * k, 85);
  const std::vector<double> target = random_vector<double>(n * k, 86);
  gradient_check("mse", pred, scale, [&](double* dz) {
    return mse(pred.data(), target.data(), dz, n, k, scale).loss_sum;
  });
}

}  // namespace
}  // namespace tessera::kernels
