// Losses with their gradients in one pass. Every loss returns the SUM over its rows (in double,
// reduced in fixed chunks) and writes the gradient of (sum * scale), so a rank holding part of
// a global batch of B rows passes scale = 1/B and the allreduced gradient is the global mean.
// A label outside its range throws std::out_of_range naming the row (labels index memory).
#pragma once

#include <cstdint>

namespace tessera::kernels {

struct LossResult {
  double loss_sum = 0.0;  // Σ per-row loss
  double correct = 0.0;   // classification/binary: rows predicted right; regression: Σ squared error
};

// logits (n, k), labels (n) in [0, k) -> dlogits (n, k) = (softmax - onehot) * scale.
// Numerically stable (max subtracted, log-sum-exp). dlogits may alias logits.
template <class T>
LossResult softmax_xent(const T* logits, const int32_t* labels, T* dlogits, int64_t n, int64_t k,
                        double scale);

// logits (n) raw scores, labels (n) in {0,1} -> dlogits (n) = (sigmoid(z) - y) * scale.
// Per-row loss log(1 + e^z) - y·z computed stably. dlogits may alias logits.
template <class T>
LossResult logistic(const T* logits, const int32_t* labels, T* dlogits, int64_t n, double scale);

// pred (n, t), target (n, t) -> dpred (n, t) = 2 (pred - target) / t * scale.
// Per-row loss mean over t outputs of (pred - target)²; correct = Σ squared error (for RMSE).
template <class T>
LossResult mse(const T* pred, const T* target, T* dpred, int64_t n, int64_t t, double scale);

// Forward-only variants for evaluation: same sums, no gradient (dlogits == nullptr is allowed
// in the functions above and skips the gradient write).

}  // namespace tessera::kernels
