// Optimizer: owns the optimizer state buffers, applies the LR schedule and global-norm
// clipping, then calls one flat kernel (kernels/optim.h) over all parameters, or hands SGD's
// update to the weight-gradient products to write as they go (the fused form, one rank).
#pragma once

#include <cstdint>
#include <span>

#include "core/config.h"
#include "core/flat_buffer.h"
#include "kernels/optim.h"

namespace tessera {

// Learning rate for 0-based step `step` of `total_steps` (warmup, then the schedule).
double scheduled_lr(const OptimizerConfig& cfg, int64_t step, int64_t total_steps);

class Optimizer {
 public:
  Optimizer(const OptimizerConfig& cfg, int64_t param_count, int64_t total_steps);

  // grads (param_count) must already be the global mean gradient (allreduced).
  // Clips grads in place when grad_clip_norm > 0. Returns the gradient norm before clipping
  // (0 when clipping is off: the norm is then not computed).
  double step(float* params, float* grads, int64_t step);

  // The fused form of step(), for one rank (no gradient reduction) and the SGD rule without
  // clipping (which needs every gradient before any update): fused_update() is this step's
  // update for the model's backward to write as it computes the gradients (kernels/dense.h),
  // from params into params_next and from the momentum into a second buffer; commit_fused()
  // then makes that momentum current and counts the update, and the caller swaps the
  // parameters. A step not committed changed nothing. prepare_fused() allocates the second
  // buffer (once, before the first step).
  bool can_fuse() const { return cfg_.kind == OptimizerKind::kSgd && cfg_.grad_clip_norm <= 0.0; }
  void prepare_fused();
  kernels::SgdUpdate fused_update(const float* params, float* params_next, int64_t step);
  void commit_fused();
  double lr(int64_t step) const { return scheduled_lr(cfg_, step, total_steps_); }

  // Checkpoint state: the moment buffers (empty spans when the rule keeps none) and the number
  // of updates taken (Adam's bias correction and SGD's first-step rule depend on it). Identical
  // on every rank under ddp.
  std::span<float> momentum() { return m_.span(); }
  std::span<float> second_moment() { return v_.span(); }
  int64_t updates() const { return updates_; }
  void set_updates(int64_t n) { updates_ = n; }

 private:
  OptimizerConfig cfg_;
  int64_t count_, total_steps_;
  int64_t updates_ = 0;  // optimizer steps taken (Adam's t)
  FlatBuffer m_, v_;     // sgd: momentum in m_; adam: first and second moments
  FlatBuffer m_next_;    // the fused SGD update's new momentum
  // Whether SGD keeps a momentum buffer: sgd_step's rule, on the momentum as a float.
  bool sgd_buffer() const { return static_cast<float>(cfg_.momentum) != 0.0f; }
};

}  // namespace tessera
