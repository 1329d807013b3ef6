// Tests for kernels/optim: worked multi-step cases of torch.optim SGD (momentum + weight
// decay), Adam and AdamW, with expected values from independent double loops written from the
// PyTorch 1.13 formulas; thread-count invariance; scale, sum_squares and has_non_finite.
#include "kernels/optim.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "tests/kernels/kernel_test_util.h"

namespace tessera::kernels {
namespace {

using test::bitwise_equal;
using test::random_vector;
using test::with_threads;

// Float kernels vs double formulas: a few float roundings per step.
void expect_close(const std::vector<float>& got, const std::vector<double>& want, double tol) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i)
    EXPECT_NEAR(got[i], want[i], tol * std::max(1.0, std::fabs(want[i]))) << "index " << i;
}

// Gradients that change every step, so momentum and moments are really exercised.
std::vector<float> grad_at(int step, size_t n) {
  std::vector<float> g(n);
  for (size_t i = 0; i < n; ++i) g[i] = float(std::sin(0.7 * double(i) + 1.3 * step) * (1.0 + i));
  return g;
}

// torch.optim.SGD(lr, momentum, dampening=0, weight_decay, nesterov=False), PyTorch 1.13:
//   g_t = grad_t + wd·p_{t-1}
//   b_1 = g_1;  b_t = momentum·b_{t-1} + g_t          (t > 1)
//   p_t = p_{t-1} - lr·b_t
TEST(Sgd, MomentumAndWeightDecayMatchTorchRule) {
  const float lr = 0.1f, momentum = 0.9f, wd = 0.01f;
  std::vector<float> p = {1.0f, -2.0f, 0.5f, 3.0f, -0.25f}, buf(p.size());
  std::vector<double> want_p(p.begin(), p.end()), want_b(p.size());
  for (int step = 1; step <= 5; ++step) {
    const std::vector<float> g = grad_at(step, p.size());
    sgd_step(p.data(), g.data(), buf.data(), int64_t(p.size()), lr, momentum, wd, step == 1);
    for (size_t i = 0; i < p.size(); ++i) {
      const double gi = double(g[i]) + double(wd) * want_p[i];
      want_b[i] = step == 1 ? gi : double(momentum) * want_b[i] + gi;
      want_p[i] -= double(lr) * want_b[i];
    }
    expect_close(p, want_p, 1e-6);
    expect_close(buf, want_b, 1e-6);
  }
}

// By hand: p=1, constant grad 0.5, lr 0.1, momentum 0.9, no decay:
//   b = 0.5, 0.95, 1.355;  p = 0.95, 0.855, 0.7195.
TEST(Sgd, HandWorkedMomentum) {
  float p = 1.0f, buf = 0.0f;
  const float g = 0.5f;
  const float want[] = {0.95f, 0.855f, 0.7195f};
  for (int step = 1; step <= 3; ++step) {
    sgd_step(&p, &g, &buf, 1, 0.1f, 0.9f, 0.0f, step == 1);
    EXPECT_NEAR(p, want[step - 1], 1e-6);
  }
}

// Without momentum the buffer is never touched: p -= lr·(grad + wd·p).
TEST(Sgd, PlainStepLeavesBufferAlone) {
  float p = 2.0f, buf = 123.0f;
  const float g = 1.0f;
  sgd_step(&p, &g, &buf, 1, 0.5f, 0.0f, 0.1f, true);
  EXPECT_NEAR(p, 2.0 - 0.5 * (1.0 + 0.1 * 2.0), 1e-6);
  EXPECT_EQ(buf, 123.0f);
  // core passes no buffer at all when momentum is 0.
  float q = 2.0f;
  sgd_step(&q, &g, nullptr, 1, 0.5f, 0.0f, 0.1f, false);
  EXPECT_EQ(q, p);
}

// torch.optim.Adam / AdamW (amsgrad=False), PyTorch 1.13, t = 1, 2, ...:
//   Adam:  g_t = grad_t + wd·p_{t-1}            AdamW: p' = p_{t-1}·(1 - lr·wd), g_t = grad_t
//   m_t = β1·m_{t-1} + (1-β1)·g_t
//   v_t = β2·v_{t-1} + (1-β2)·g_t²
//   p_t = p' - (lr / (1-β1^t)) · m_t / (sqrt(v_t) / sqrt(1-β2^t) + eps)
// (Adam's p' is p_{t-1}.)
void check_adam(bool decoupled, float wd) {
  const float lr = 1e-2f, beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f;
  std::vector<float> p = {1.0f, -2.0f, 0.5f, 3.0f, -0.25f, 0.0f}, m(p.size()), v(p.size());
  std::vector<double> want_p(p.begin(), p.end()), want_m(p.size()), want_v(p.size());
  for (int t = 1; t <= 6; ++t) {
    const std::vector<float> g = grad_at(t, p.size());
    adam_step(p.data(), g.data(), m.data(), v.data(), int64_t(p.size()), lr, beta1, beta2, eps, wd,
              t, decoupled);
    for (size_t i = 0; i < p.size(); ++i) {
      double pi = want_p[i];
      double gi = g[i];
      if (decoupled) {
        pi *= 1.0 - double(lr) * double(wd);
      } else {
        gi += double(wd) * pi;
      }
      want_m[i] = double(beta1) * want_m[i] + (1.0 - double(beta1)) * gi;
      want_v[i] = double(beta2) * want_v[i] + (1.0 - double(beta2)) * gi * gi;
      const double bc1 = 1.0 - std::pow(double(beta1), t);
      const double bc2 = 1.0 - std::pow(double(beta2), t);
      want_p[i] = pi - (double(lr) / bc1) * want_m[i] /
                           (std::sqrt(want_v[i]) / std::sqrt(bc2) + double(eps));
    }
    expect_close(p, want_p, 1e-6);
    expect_close(m, want_m, 1e-6);
    expect_close(v, want_v, 1e-6);
  }
}

TEST(Adam, MatchesTorchRule) { check_adam(false, 0.0f); }
TEST(Adam, CoupledWeightDecayMatchesTorchRule) { check_adam(false, 0.1f); }
TEST(AdamW, DecoupledWeightDecayMatchesTorchRule) { check_adam(true, 0.1f); }

// Adam's first step moves every coordinate by ≈ lr·sign(grad): m̂ = g, v̂ = g².
TEST(Adam, FirstStepIsSignTimesLr) {
  std::vector<float> p = {0.0f, 0.0f}, m(2), v(2);
  const std::vector<float> g = {3.0f, -0.01f};
  adam_step(p.data(), g.data(), m.data(), v.data(), 2, 0.01f, 0.9f, 0.999f, 1e-8f, 0.0f, 1, false);
  EXPECT_NEAR(p[0], -0.01, 1e-7);
  EXPECT_NEAR(p[1], 0.01, 1e-7);
}

// Large buffers over many chunks give the same bits with 1 and 2 threads.
TEST(Optim, ThreadCountInvariant) {
  const int64_t n = 100003;
  const std::vector<float> g = random_vector<float>(n, 91);
  const std::vector<float> p0 = random_vector<float>(n, 92);
  auto run = [&] {
    std::vector<float> p = p0, buf(n), m(n), v(n);
    for (int t = 1; t <= 2; ++t) {
      sgd_step(p.data(), g.data(), buf.data(), n, 0.1f, 0.9f, 1e-4f, t == 1);
      adam_step(p.data(), g.data(), m.data(), v.data(), n, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, t,
                true);
    }
    scale(p.data(), n, 0.5f);
    p.push_back(float(sum_squares(p.data(), n)));
    return p;
  };
  std::vector<float> one, two;
  with_threads(1, [&] { one = run(); });
  with_threads(2, [&] { two = run(); });
  EXPECT_TRUE(bitwise_equal(one, two));
}

// Each element must get the same bits wherever it sits: a ZeRO shard starts at an arbitrary
// offset of the flat buffer, so vector body, peeled head and scalar tail must agree. Runs the
// updates on the same values at float offsets 0..16 and compares bitwise.
TEST(Optim, ResultsDoNotDependOnAlignment) {
  const int64_t n = 1000;
  const std::vector<float> g = random_vector<float>(n, 95), p0 = random_vector<float>(n, 96);
  for (int kind = 0; kind < 3; ++kind) {
    std::vector<float> first;
    for (int64_t offset = 0; offset <= 16; ++offset) {
      std::vector<float> p(n + offset), gs(n + offset), m(n + offset), v(n + offset);
      std::copy(p0.begin(), p0.end(), p.begin() + offset);
      std::copy(g.begin(), g.end(), gs.begin() + offset);
      float *pp = p.data() + offset, *mp = m.data() + offset, *vp = v.data() + offset;
      for (int t = 1; t <= 3; ++t) {
        if (kind == 2) {
          sgd_step(pp, gs.data() + offset, mp, n, 0.1f, 0.9f, 0.01f, t == 1);
        } else {
          adam_step(pp, gs.data() + offset, mp, vp, n, 1e-2f, 0.9f, 0.999f, 1e-8f, 0.01f, t,
                    kind == 1);
        }
      }
      const std::vector<float> got(pp, pp + n);
      if (offset == 0) first = got;
      EXPECT_TRUE(bitwise_equal(got, first)) << "kind " << kind << " offset " << offset;
    }
  }
}

TEST(Optim, ScaleMultiplies) {
  std::vector<float> x = {1.0f, -2.0f, 0.5f};
  scale(x.data(), 3, -4.0f);
  EXPECT_EQ(x, (std::vector<float>{-4.0f, 8.0f, -2.0f}));
}

TEST(Optim, SumSquaresMatchesReference) {
  for (int64_t n : {int64_t{0}, int64_t{7}, int64_t{100003}}) {
    const std::vector<float> x = random_vector<float>(n, 93, -3.0, 3.0);
    double want = 0.0;
    for (float v : x) want += double(v) * double(v);
    double one = 0.0, two = 0.0;
    with_threads(1, [&] { one = sum_squares(x.data(), n); });
    with_threads(2, [&] { two = sum_squares(x.data(), n); });
    EXPECT_NEAR(one, want, 1e-12 * std::max(1.0, want)) << "n=" << n;
    EXPECT_EQ(std::memcmp(&one, &two, sizeof one), 0) << "n=" << n;
  }
}

TEST(Optim, HasNonFiniteFindsNanAndInfAnywhere) {
  const int64_t n = 70001;  // three chunks
  std::vector<float> x = random_vector<float>(n, 94, -1e30, 1e30);
  x[5] = std::numeric_limits<float>::max();
  x[6] = -std::numeric_limits<float>::max();
  x[7] = std::numeric_limits<float>::denorm_min();
  EXPECT_FALSE(has_non_finite(x.data(), n));
  EXPECT_FALSE(has_non_finite(x.data(), 0));
  for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                    -std::numeric_limits<float>::infinity()}) {
    for (int64_t at : {int64_t{0}, int64_t{40000}, n - 1}) {
      std::vector<float> y = x;
      y[at] = bad;
      EXPECT_TRUE(has_non_finite(y.data(), n)) << bad << " at " << at;
      with_threads(2, [&] { EXPECT_TRUE(has_non_finite(y.data(), n)); });
    }
  }
}

}  // namespace
}  // namespace tessera::kernels
