// Optimizer (core/optimizer.h): learning-rate schedules and global-norm gradient clipping with
// torch.nn.utils.clip_grad_norm_ semantics.
#include "core/optimizer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

namespace tessera {
namespace {

OptimizerConfig cfg_with(Schedule s, double lr, int64_t warmup = 0) {
  OptimizerConfig c;
  c.schedule = s;
  c.lr = lr;
  c.warmup_steps = warmup;
  return c;
}

TEST(Schedule, Constant) {
  const OptimizerConfig c = cfg_with(Schedule::kConstant, 0.3);
  for (int64_t s : {0, 1, 50, 999, 5000}) EXPECT_DOUBLE_EQ(scheduled_lr(c, s, 1000), 0.3);
}

TEST(Schedule, CosineStartsAtLrAndDecaysToZero) {
  const OptimizerConfig c = cfg_with(Schedule::kCosine, 0.2);
  const int64_t total = 1000;
  EXPECT_DOUBLE_EQ(scheduled_lr(c, 0, total), 0.2);
  EXPECT_NEAR(scheduled_lr(c, total / 2, total), 0.1, 1e-12);
  EXPECT_NEAR(scheduled_lr(c, total / 4, total), 0.1 * (1 + std::cos(M_PI / 4)), 1e-12);
  EXPECT_LT(scheduled_lr(c, total - 1, total), 1e-5 * 0.2) << "~0 at the last step";
  EXPECT_NEAR(scheduled_lr(c, total, total), 0.0, 1e-15);
  double prev = 1e9;
  for (int64_t s = 0; s < total; ++s) {
    const double lr = scheduled_lr(c, s, total);
    ASSERT_LE(lr, prev) << "cosine must not increase (step " << s << ")";
    ASSERT_GE(lr, 0.0);
    prev = lr;
  }
}

TEST(Schedule, StepMultipliesByGammaEveryStepEvery) {
  OptimizerConfig c = cfg_with(Schedule::kStep, 1.0);
  c.step_every = 10;
  c.gamma = 0.5;
  EXPECT_DOUBLE_EQ(scheduled_lr(c, 0, 100), 1.0);
  EXPECT_DOUBLE_EQ(scheduled_lr(c, 9, 100), 1.0);
  EXPECT_DOUBLE_EQ(scheduled_lr(c, 10, 100), 0.5);
  EXPECT_DOUBLE_EQ(scheduled_lr(c, 19, 100), 0.5);
  EXPECT_DOUBLE_EQ(scheduled_lr(c, 20, 100), 0.25);
  EXPECT_DOUBLE_EQ(scheduled_lr(c, 35, 100), 0.125);
}

TEST(Schedule, LinearWarmupFromLrOverWarmup) {
  const OptimizerConfig c = cfg_with(Schedule::kConstant, 0.4, 4);
  EXPECT_DOUBLE_EQ(scheduled_lr(c, 0, 100), 0.1) << "first step: lr / warmup";
  EXPECT_DOUBLE_EQ(scheduled_lr(c, 1, 100), 0.2);
  EXPECT_DOUBLE_EQ(scheduled_lr(c, 2, 100), 0.30000000000000004);
  EXPECT_DOUBLE_EQ(scheduled_lr(c, 3, 100), 0.4);
  EXPECT_DOUBLE_EQ(scheduled_lr(c, 4, 100), 0.4);
  EXPECT_DOUBLE_EQ(scheduled_lr(c, 50, 100), 0.4);

  // Warmup then cosine: the cosine starts at lr right after warmup and ends at ~0.
  const OptimizerConfig cc = cfg_with(Schedule::kCosine, 0.4, 10);
  EXPECT_DOUBLE_EQ(scheduled_lr(cc, 9, 110), 0.4);
  EXPECT_DOUBLE_EQ(scheduled_lr(cc, 10, 110), 0.4);
  EXPECT_NEAR(scheduled_lr(cc, 60, 110), 0.2, 1e-12);
  EXPECT_LT(scheduled_lr(cc, 109, 110), 1e-3 * 0.4);

  // Warmup then step: steps count from the end of warmup.
  OptimizerConfig cs = cfg_with(Schedule::kStep, 1.0, 5);
  cs.step_every = 10;
  cs.gamma = 0.1;
  EXPECT_DOUBLE_EQ(scheduled_lr(cs, 14, 100), 1.0);
  EXPECT_DOUBLE_EQ(scheduled_lr(cs, 15, 100), 0.1);
}

std::vector<float> make_grads(int64_t n, float scale) {
  std::vector<float> g(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) g[i] = scale * static_cast<float>(((i * 37) % 11) - 5) / 5.f;
  return g;
}

double l2(const std::vector<float>& v) {
  double s = 0;
  for (float x : v) s += static_cast<double>(x) * x;
  return std::sqrt(s);
}

// Clipping must equal an unclipped step on gradients scaled by max_norm / (norm + 1e-6).
void expect_clip_matches_prescaled(OptimizerKind kind, double momentum) {
  const int64_t n = 1003;
  OptimizerConfig c;
  c.kind = kind;
  c.lr = 0.05;
  c.momentum = momentum;
  c.weight_decay = 0.01;
  c.grad_clip_norm = 1.5;
  OptimizerConfig plain = c;
  plain.grad_clip_norm = 0.0;
  Optimizer clipped(c, n, 100), reference(plain, n, 100);

  std::vector<float> p1(static_cast<size_t>(n)), p2;
  for (int64_t i = 0; i < n; ++i) p1[i] = 0.01f * static_cast<float>(i % 17) - 0.08f;
  p2 = p1;
  for (int64_t step = 0; step < 3; ++step) {
    std::vector<float> g1 = make_grads(n, 3.f + static_cast<float>(step));
    const double norm = l2(g1);
    ASSERT_GT(norm, c.grad_clip_norm);
    std::vector<float> g2 = g1;
    const float coef = static_cast<float>(c.grad_clip_norm / (norm + 1e-6));
    for (float& x : g2) x *= coef;
    const double reported = clipped.step(p1.data(), g1.data(), step);
    reference.step(p2.data(), g2.data(), step);
    EXPECT_NEAR(reported, norm, 1e-9 * norm) << "step returns the norm before clipping";
    EXPECT_NEAR(l2(g1), c.grad_clip_norm, 1e-5) << "grads are clipped in place";
    for (int64_t i = 0; i < n; ++i) {
      ASSERT_NEAR(p1[i], p2[i], 1e-6f) << "param " << i << " step " << step;
    }
  }
}

TEST(OptimizerClip, SgdMatchesPrescaledGradients) { expect_clip_matches_prescaled(OptimizerKind::kSgd, 0.0); }
TEST(OptimizerClip, SgdMomentumMatchesPrescaledGradients) {
  expect_clip_matches_prescaled(OptimizerKind::kSgd, 0.9);
}
TEST(OptimizerClip, AdamWMatchesPrescaledGradients) {
  expect_clip_matches_prescaled(OptimizerKind::kAdamW, 0.0);
}

TEST(OptimizerClip, SmallGradientsAreNotScaled) {
  const int64_t n = 10;
  OptimizerConfig c;
  c.lr = 0.1;
  c.grad_clip_norm = 100.0;
  Optimizer opt(c, n, 10);
  std::vector<float> p(n, 1.f), g = make_grads(n, 1.f);
  const std::vector<float> g0 = g;
  opt.step(p.data(), g.data(), 0);
  EXPECT_EQ(g, g0);
  for (int64_t i = 0; i < n; ++i) EXPECT_FLOAT_EQ(p[i], 1.f - 0.1f * g0[i]);
}

TEST(OptimizerClip, ScaledStepSize) {
  // Plain SGD with clipping: the update has norm lr * max_norm (up to the 1e-6).
  const int64_t n = 64;
  OptimizerConfig c;
  c.lr = 0.5;
  c.grad_clip_norm = 2.0;
  Optimizer opt(c, n, 10);
  std::vector<float> p(n, 0.f), g = make_grads(n, 10.f);
  opt.step(p.data(), g.data(), 0);
  EXPECT_NEAR(l2(p), 0.5 * 2.0, 1e-5);
}

TEST(OptimizerLr, UsesTheSchedule) {
  OptimizerConfig c = cfg_with(Schedule::kCosine, 0.1, 3);
  Optimizer opt(c, 4, 50);
  for (int64_t s : {0, 2, 3, 20, 49}) EXPECT_DOUBLE_EQ(opt.lr(s), scheduled_lr(c, s, 50));
  // The step uses lr(step): plain SGD, p -= lr(step) * g.
  OptimizerConfig sc = cfg_with(Schedule::kStep, 1.0);
  sc.step_every = 2;
  sc.gamma = 0.5;
  Optimizer sgd(sc, 1, 10);
  float p = 0.f, g = 1.f;
  sgd.step(&p, &g, 4);
  EXPECT_FLOAT_EQ(p, -0.25f);
}

}  // namespace
}  // namespace tessera
