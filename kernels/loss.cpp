// Loss kernels: per-row loss and gradient in one pass over fixed row chunks. Per-row math is
// done in double (rows are short; it keeps float logits' log-sum-exp accurate), and the two
// sums are reduced chunk by chunk in chunk order, so totals do not depend on the thread count.
#include "kernels/loss.h"

#include <cmath>
#include <stdexcept>
#include <string>

#include "kernels/parallel.h"

namespace tessera::kernels {
namespace {

// Rows per chunk: a task should carry a few thousand values of work.
constexpr int64_t kRowChunk = 256;

// Runs body(begin, end, correct&) -> loss over fixed row chunks and sums both outputs in chunk
// order. The chunk is settled here (chunk_size is idempotent, so sum_chunks keeps it) so that
// the second sum can sit in a stack array indexed like sum_chunks' own partials.
template <class Body>
LossResult sum_rows(int64_t n, int64_t min_chunk, const Body& body) {
  const int64_t chunk = chunk_size(n, min_chunk);
  double correct[kMaxChunks];
  LossResult r;
  r.loss_sum = sum_chunks(n, chunk, [&](int64_t begin, int64_t end) {
    double c = 0.0;
    const double loss = body(begin, end, c);
    correct[begin / chunk] = c;
    return loss;
  });
  const int64_t count = n > 0 ? (n + chunk - 1) / chunk : 0;
  for (int64_t c = 0; c < count; ++c) r.correct += correct[c];
  return r;
}

// Labels index memory, so a bad one is an error, not a wrong number. Thrown inside a oneTBB
// task, it is rethrown on the calling thread.
[[noreturn]] void bad_label(const char* loss, int64_t row, int32_t label, int64_t classes) {
  throw std::out_of_range(std::string(loss) + ": label " + std::to_string(label) + " at row " +
                          std::to_string(row) + " is outside [0, " + std::to_string(classes) +
                          "); check the dataset's label range against the model's outputs");
}

// log(1 + e^z) without overflow: max(z, 0) + log1p(e^-|z|).
double softplus(double z) { return std::fmax(z, 0.0) + std::log1p(std::exp(-std::fabs(z))); }

// 1 / (1 + e^-z), exp only of non-positive arguments.
double sigmoid(double z) {
  if (z >= 0.0) return 1.0 / (1.0 + std::exp(-z));
  const double e = std::exp(z);
  return e / (1.0 + e);
}

}  // namespace

// logits (n, k), labels (n) -> dlogits (n, k) = (softmax - onehot) * scale; may alias logits.
template <class T>
LossResult softmax_xent(const T* logits, const int32_t* labels, T* dlogits, int64_t n, int64_t k,
                        double scale) {
  return sum_rows(n, kRowChunk, [&](int64_t begin, int64_t end, double& correct) {
    double loss = 0.0;
    for (int64_t r = begin; r < end; ++r) {
      const T* z = logits + r * k;
      const int32_t y = labels[r];
      if (y < 0 || y >= k) bad_label("softmax_xent", r, y, k);
      // Subtracting the max keeps every exp in (0, 1]; the first max wins ties (argmax).
      int64_t arg = 0;
      for (int64_t j = 1; j < k; ++j) {
        if (z[j] > z[arg]) arg = j;
      }
      const double zmax = z[arg];
      double sum = 0.0;
      for (int64_t j = 0; j < k; ++j) sum += std::exp(double(z[j]) - zmax);
      loss += zmax + std::log(sum) - double(z[y]);
      correct += arg == y ? 1.0 : 0.0;
      if (dlogits == nullptr) continue;
      // z[j] is read before dz[j] is written, which is what makes aliasing safe.
      T* dz = dlogits + r * k;
      const double inv = scale / sum;
      for (int64_t j = 0; j < k; ++j) {
        const double p = std::exp(double(z[j]) - zmax) * inv;
        dz[j] = static_cast<T>(j == y ? p - scale : p);
      }
    }
    return loss;
  });
}

// logits (n), labels (n) in {0,1} -> dlogits (n) = (sigmoid(z) - y) * scale; may alias logits.
template <class T>
LossResult logistic(const T* logits, const int32_t* labels, T* dlogits, int64_t n, double scale) {
  return sum_rows(n, kRowChunk * 16, [&](int64_t begin, int64_t end, double& correct) {
    double loss = 0.0;
    for (int64_t r = begin; r < end; ++r) {
      const int32_t y = labels[r];
      if (y != 0 && y != 1) bad_label("logistic", r, y, 2);
      const double z = logits[r];
      loss += softplus(z) - y * z;
      // Predict 1 when sigmoid(z) > 0.5, i.e. z > 0.
      correct += (z > 0.0) == (y == 1) ? 1.0 : 0.0;
      if (dlogits != nullptr) dlogits[r] = static_cast<T>((sigmoid(z) - y) * scale);
    }
    return loss;
  });
}

// pred (n, t), target (n, t) -> dpred (n, t) = 2 (pred - target) / t * scale; may alias pred.
template <class T>
LossResult mse(const T* pred, const T* target, T* dpred, int64_t n, int64_t t, double scale) {
  const double grad_scale = t > 0 ? 2.0 * scale / double(t) : 0.0;
  return sum_rows(n, kRowChunk, [&](int64_t begin, int64_t end, double& sq_err) {
    double loss = 0.0;
    for (int64_t r = begin; r < end; ++r) {
      double row = 0.0;
      for (int64_t j = r * t; j < (r + 1) * t; ++j) {
        const double d = double(pred[j]) - double(target[j]);
        row += d * d;
        if (dpred != nullptr) dpred[j] = static_cast<T>(d * grad_scale);
      }
      sq_err += row;
      if (t > 0) loss += row / double(t);
    }
    return loss;
  });
}

template LossResult softmax_xent<float>(const float*, const int32_t*, float*, int64_t, int64_t,
                                        double);
template LossResult softmax_xent<double>(const double*, const int32_t*, double*, int64_t, int64_t,
                                         double);
template LossResult logistic<float>(const float*, const int32_t*, float*, int64_t, double);
template LossResult logistic<double>(const double*, const int32_t*, double*, int64_t, double);
template LossResult mse<float>(const float*, const float*, float*, int64_t, int64_t, double);
template LossResult mse<double>(const double*, const double*, double*, int64_t, int64_t, double);

}  // namespace tessera::kernels
