// Optimizer: schedule math in double, updates in float (as torch.optim does).
#include "core/optimizer.h"

#include <cmath>

#include "core/error.h"
#include "kernels/optim.h"

namespace tessera {

double scheduled_lr(const OptimizerConfig& cfg, int64_t step, int64_t total_steps) {
  if (step < cfg.warmup_steps) {
    return cfg.lr * static_cast<double>(step + 1) / static_cast<double>(cfg.warmup_steps);
  }
  const int64_t s = step - cfg.warmup_steps;
  switch (cfg.schedule) {
    case Schedule::kConstant: return cfg.lr;
    case Schedule::kCosine: {
      const int64_t span = std::max<int64_t>(1, total_steps - cfg.warmup_steps);
      const double t = std::min(1.0, static_cast<double>(s) / static_cast<double>(span));
      return cfg.lr * 0.5 * (1.0 + std::cos(M_PI * t));
    }
    case Schedule::kStep:
      return cfg.lr * std::pow(cfg.gamma, static_cast<double>(s / cfg.step_every));
  }
  return cfg.lr;
}

Optimizer::Optimizer(const OptimizerConfig& cfg, int64_t param_count, int64_t total_steps)
    : cfg_(cfg), count_(param_count), total_steps_(total_steps) {
  const bool needs_m = cfg.kind != OptimizerKind::kSgd || cfg.momentum != 0.0;
  if (needs_m) m_ = FlatBuffer(param_count);
  if (cfg.kind != OptimizerKind::kSgd) v_ = FlatBuffer(param_count);
}

double Optimizer::step(float* params, float* grads, int64_t step) {
  // The norm costs a pass over all gradients (~2% of a 1-core step): only when clipping needs it.
  const double norm = cfg_.grad_clip_norm > 0.0 ? std::sqrt(kernels::sum_squares(grads, count_)) : 0.0;
  if (cfg_.grad_clip_norm > 0.0) {
    // torch.nn.utils.clip_grad_norm_: scale by max_norm / (norm + 1e-6) when that is < 1.
    const double coef = cfg_.grad_clip_norm / (norm + 1e-6);
    if (coef < 1.0) kernels::scale(grads, count_, static_cast<float>(coef));
  }
  const float lr = static_cast<float>(this->lr(step));
  const float wd = static_cast<float>(cfg_.weight_decay);
  ++updates_;
  switch (cfg_.kind) {
    case OptimizerKind::kSgd:
      kernels::sgd_step(params, grads, cfg_.momentum != 0.0 ? m_.data() : nullptr, count_, lr,
                        static_cast<float>(cfg_.momentum), wd, updates_ == 1);
      break;
    case OptimizerKind::kAdam:
    case OptimizerKind::kAdamW:
      kernels::adam_step(params, grads, m_.data(), v_.data(), count_, lr,
                         static_cast<float>(cfg_.beta1), static_cast<float>(cfg_.beta2),
                         static_cast<float>(cfg_.eps), wd, updates_,
                         cfg_.kind == OptimizerKind::kAdamW);
      break;
  }
  return norm;
}

void Optimizer::prepare_fused() {
  TESSERA_CHECK(can_fuse(), "the fused update is SGD's without clipping");
  if (sgd_buffer() && m_next_.size() != count_) m_next_ = FlatBuffer(count_);
}

kernels::SgdUpdate Optimizer::fused_update(const float* params, float* params_next, int64_t step) {
  TESSERA_CHECK(can_fuse() && (!sgd_buffer() || m_next_.size() == count_), "prepare_fused() first");
  kernels::SgdUpdate u;
  u.p = params;
  u.p_next = params_next;
  u.lr = static_cast<float>(lr(step));
  u.momentum = static_cast<float>(cfg_.momentum);
  // As sgd_step: a momentum that is 0 as a float keeps no buffer (m_ then stays as it is).
  if (sgd_buffer()) u.buf = m_.data(), u.buf_next = m_next_.data();
  u.wd = static_cast<float>(cfg_.weight_decay);
  u.first_step = updates_ == 0;
  return u;
}

void Optimizer::commit_fused() {
  if (sgd_buffer()) std::swap(m_, m_next_);
  ++updates_;
}

}  // namespace tessera
