// Flat float32 optimizer updates (torch.optim SGD, Adam, AdamW) and the gradient-norm helpers.
// Elementwise math is float, as PyTorch computes float parameters; per-step scalars (bias
// corrections, decay factor) are computed once in double and cast, as PyTorch's Python does.
#include "kernels/optim.h"

#include <cmath>
#include <cstdint>
#include <cstring>

#include <Eigen/Core>

#include "kernels/parallel.h"

namespace tessera::kernels {
namespace {

// 32 Ki floats (128 KiB per stream) per chunk: long enough to vectorize and amortize a task.
constexpr int64_t kChunk = 32768;

// Calls body(begin, end) over the fixed chunks of n.
template <class Body>
void for_range(int64_t n, const Body& body) {
  for_chunks(n, chunk_size(n, kChunk), body);
}

}  // namespace

// torch.optim.SGD, dampening 0, no nesterov (see optim.h for the formula).
void sgd_step(float* p, const float* g, float* buf, int64_t n, float lr, float momentum, float wd,
              bool first_step) {
  // PyTorch skips the decay term when wd == 0 (so 0·inf never injects a NaN); so do we.
  const bool decay = wd != 0.0f;
  const bool use_buf = momentum != 0.0f;
  for_range(n, [=](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      float d = decay ? g[i] + wd * p[i] : g[i];
      if (use_buf) {
        d = first_step ? d : momentum * buf[i] + d;
        buf[i] = d;
      }
      p[i] -= lr * d;
    }
  });
}

// torch.optim.Adam (decoupled false) / AdamW (decoupled true), amsgrad false; see optim.h.
void adam_step(float* p, const float* g, float* m, float* v, int64_t n, float lr, float beta1,
               float beta2, float eps, float wd, int64_t t, bool decoupled) {
  // PyTorch 1.13 _single_tensor_adam, step scalars in double:
  //   step_size = lr / (1 - β1^t);  bc2_sqrt = sqrt(1 - β2^t)
  //   denom = sqrt(v) / bc2_sqrt + eps;  p += -step_size · m / denom
  // AdamW first does p *= 1 - lr·wd (scalar in double, applied in float).
  const double t_d = static_cast<double>(t);
  const float step_size = static_cast<float>(lr / (1.0 - std::pow(double(beta1), t_d)));
  const float bc2_sqrt = static_cast<float>(std::sqrt(1.0 - std::pow(double(beta2), t_d)));
  const float keep = static_cast<float>(1.0 - double(lr) * double(wd));
  const bool coupled_decay = !decoupled && wd != 0.0f;
  const bool decoupled_decay = decoupled && wd != 0.0f;
  const float one_minus_b1 = 1.0f - beta1;
  const float one_minus_b2 = 1.0f - beta2;
  // Eigen array expressions rather than a plain loop: GCC will not vectorize std::sqrt without
  // -fno-math-errno, and a scalar loop ran at half of SGD's bandwidth. Each statement is one
  // pass over a chunk that stays in L2. Operand order follows PyTorch's CPU kernels
  // (addcmul: v + (c·g)·g; addcdiv: p + (-step_size·m) / denom) so roundings line up.
  for_range(n, [=](int64_t begin, int64_t end) {
    using Array = Eigen::Map<Eigen::ArrayXf>;
    using ConstArray = Eigen::Map<const Eigen::ArrayXf>;
    const Eigen::Index len = end - begin;
    Array pa(p + begin, len), ma(m + begin, len), va(v + begin, len);
    const ConstArray ga(g + begin, len);
    if (decoupled_decay) pa *= keep;
    if (coupled_decay) {
      ma = beta1 * ma + one_minus_b1 * (ga + wd * pa);
      va = beta2 * va + (one_minus_b2 * (ga + wd * pa)) * (ga + wd * pa);
    } else {
      ma = beta1 * ma + one_minus_b1 * ga;
      va = beta2 * va + (one_minus_b2 * ga) * ga;
    }
    pa -= (step_size * ma) / (va.sqrt() / bc2_sqrt + eps);
  });
}

// x (n) *= s
void scale(float* x, int64_t n, float s) {
  for_range(n, [=](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) x[i] *= s;
  });
}

// Σ x² in double. Inside a chunk, 8 interleaved accumulators (combined in a fixed order) let
// the loop vectorize while keeping one summation order for every run.
double sum_squares(const float* x, int64_t n) {
  return sum_chunks(n, kChunk, [=](int64_t begin, int64_t end) {
    constexpr int kLanes = 8;
    double lane[kLanes] = {};
    int64_t i = begin;
    for (; i + kLanes <= end; i += kLanes) {
      for (int j = 0; j < kLanes; ++j) lane[j] += double(x[i + j]) * double(x[i + j]);
    }
    for (; i < end; ++i) lane[0] += double(x[i]) * double(x[i]);
    double total = 0.0;
    for (int j = 0; j < kLanes; ++j) total += lane[j];
    return total;
  });
}

// Any NaN or infinity? Tested on the exponent bits (all ones) so the loop is an integer OR
// reduction that vectorizes, and fast-math flags cannot fold the test away.
bool has_non_finite(const float* x, int64_t n) {
  const double bad = sum_chunks(n, kChunk, [=](int64_t begin, int64_t end) {
    uint32_t any = 0;
    for (int64_t i = begin; i < end; ++i) {
      uint32_t bits;
      std::memcpy(&bits, x + i, sizeof bits);
      any |= static_cast<uint32_t>((bits & 0x7f800000u) == 0x7f800000u);
    }
    return static_cast<double>(any);
  });
  return bad != 0.0;
}

}  // namespace tessera::kernels
