// GradReducer: buckets are fixed at construction, so every rank posts the same reductions in
// the same order, and the step loop allocates nothing.
#include "core/grad_reducer.h"

#include "core/error.h"
#include "kernels/optim.h"

namespace tessera {

GradReducer::GradReducer(const ModelSpec& spec, double bucket_mb, bool overlap, Communicator& comm)
    : comm_(comm), overlap_(overlap), closes_(static_cast<size_t>(spec.layers()), -1) {
  TESSERA_CHECK(bucket_mb > 0, "bucket_mb must be positive");
  const double limit = bucket_mb * 1024 * 1024;
  int last = spec.layers() - 1;
  for (int l = spec.layers() - 1; l >= 0; --l) {
    const int64_t begin = spec.weight_offset(l);
    const int64_t bucket_end = last + 1 < spec.layers() ? spec.weight_offset(last + 1) : spec.param_count();
    if (static_cast<double>(bucket_end - begin) * sizeof(float) >= limit || l == 0) {
      closes_[static_cast<size_t>(l)] = static_cast<int>(buckets_.size());
      buckets_.push_back({l, last, begin, bucket_end - begin});
      last = l - 1;
    }
  }
}

void GradReducer::begin(float* grads) {
  grads_ = grads;
  started_ = 0;
  non_finite_ = false;
}

void GradReducer::start(const Bucket& b) {
  // Checked here, while the bucket is still warm in cache, and folded into the step's stats
  // reduction by the trainer: no extra round trip to agree on it.
  non_finite_ = non_finite_ || kernels::has_non_finite(grads_ + b.offset, b.count);
  comm_.start_allreduce_sum(std::span<float>(grads_ + b.offset, static_cast<size_t>(b.count)));
  ++started_;
}

void GradReducer::layer_done(int layer) {
  if (!overlap_) return;
  const int b = closes_[static_cast<size_t>(layer)];
  if (b >= 0) {
    TESSERA_CHECK(b == started_, "bucket ", b, " completed out of order (", started_, " started)");
    start(buckets_[static_cast<size_t>(b)]);
  }
  comm_.progress();
}

void GradReducer::finish() {
  while (started_ < static_cast<int>(buckets_.size())) start(buckets_[static_cast<size_t>(started_)]);
  comm_.wait_all();
}

}  // namespace tessera
