// GradReducer: sums the flat gradient over ranks in buckets of whole layers, last layer first
// (STYLE §8.5, flashlight's CoalescingReducer). With overlap, a bucket's reduction starts as
// soon as backward has finished its layers and advances between later layers; without, every
// bucket starts after backward. Pieces and order are the same either way, so are the bits.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/communicator.h"
#include "core/model.h"

namespace tessera {

class GradReducer {
 public:
  struct Bucket {
    int first_layer = 0, last_layer = 0;  // layers [first, last] of the model
    int64_t offset = 0, count = 0;        // their span of the flat gradient buffer
  };

  // bucket_mb: target bucket size; a bucket closes once its layers reach it (a layer is never split).
  GradReducer(const ModelSpec& spec, double bucket_mb, bool overlap, Communicator& comm);

  // Before backward: nothing is in flight.
  void begin(float* grads);
  // Backward's layer_done hook: layer's gradients are final. Main thread.
  void layer_done(int layer);
  // After backward: starts what is left and waits (collective). Afterwards grads hold the sum.
  void finish();
  // Whether this rank's own gradients (before the sum) held a NaN or infinity.
  bool local_non_finite() const { return non_finite_; }

  const std::vector<Bucket>& buckets() const { return buckets_; }

 private:
  void start(const Bucket& b);

  Communicator& comm_;
  bool overlap_;
  std::vector<Bucket> buckets_;  // in reduction order: last layers first
  std::vector<int> closes_;      // per layer: the bucket it completes, or -1
  float* grads_ = nullptr;
  int started_ = 0;
  bool non_finite_ = false;
};

}  // namespace tessera
