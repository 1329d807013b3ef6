// GradReducer: buckets of whole layers, last first, covering the flat gradient exactly once;
// with overlap a bucket starts from the layer hook that completes it, without overlap every
// bucket starts in finish(); a NaN in any bucket is reported.
#include "core/grad_reducer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

namespace tessera {
namespace {

// Records the order of started sums and when they were started.
class RecordingComm final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 2; }
  int local_size() const override { return 2; }
  void allreduce_sum(std::span<float>) override {}
  void allreduce_sum(std::span<double>) override {}
  void allreduce_max(std::span<int64_t>) override {}
  void broadcast(std::span<float>, int) override {}
  void broadcast(std::span<std::byte>, int) override {}
  std::vector<uint64_t> allgather(uint64_t v) override { return {v, v}; }
  void allgather(std::span<const double>, std::span<double>) override {}
  std::vector<std::string> host_names() override { return {"a", "b"}; }
  void barrier() override {}
  void start_allreduce_sum(std::span<float> d) override { started.push_back({d.data(), d.size(), waits}); }
  void progress() override { ++progresses; }
  void wait_all() override { ++waits; }
  uint64_t sequence_hash() const override { return 0; }
  void set_timeout(double) override {}

  struct Start {
    float* data;
    size_t count;
    int waits_before;
  };
  std::vector<Start> started;
  int progresses = 0, waits = 0;
};

ModelSpec reference_mlp() {
  ModelSpec spec;
  spec.sizes = {784, 1024, 1024, 10};
  return spec;
}

TEST(GradReducer, ReferenceMlpBucketsLastLayerFirst) {
  RecordingComm comm;
  GradReducer r(reference_mlp(), 4, true, comm);
  const ModelSpec spec = reference_mlp();
  ASSERT_EQ(r.buckets().size(), 2u);  // layers 2+1 reach 4 MiB; layer 0 is the rest
  EXPECT_EQ(r.buckets()[0].first_layer, 1);
  EXPECT_EQ(r.buckets()[0].last_layer, 2);
  EXPECT_EQ(r.buckets()[0].offset, spec.weight_offset(1));
  EXPECT_EQ(r.buckets()[1].first_layer, 0);
  EXPECT_EQ(r.buckets()[1].offset, 0);
  int64_t covered = 0;
  for (const auto& b : r.buckets()) covered += b.count;
  EXPECT_EQ(covered, spec.param_count());
  // A huge bucket holds every layer; a tiny one closes after each layer.
  EXPECT_EQ(GradReducer(spec, 1000, true, comm).buckets().size(), 1u);
  EXPECT_EQ(GradReducer(spec, 1e-6, true, comm).buckets().size(), 3u);
}

TEST(GradReducer, OverlapStartsFromTheHooksAndWithoutInFinish) {
  const ModelSpec spec = reference_mlp();
  std::vector<float> grads(static_cast<size_t>(spec.param_count()), 1.0f);
  for (bool overlap : {true, false}) {
    RecordingComm comm;
    GradReducer r(spec, 4, overlap, comm);
    r.begin(grads.data());
    r.layer_done(2);
    EXPECT_EQ(comm.started.size(), 0u);  // bucket 0 still misses layer 1
    r.layer_done(1);
    EXPECT_EQ(comm.started.size(), overlap ? 1u : 0u);
    r.layer_done(0);
    EXPECT_EQ(comm.started.size(), overlap ? 2u : 0u);
    EXPECT_EQ(comm.progresses, overlap ? 3 : 0);
    r.finish();
    ASSERT_EQ(comm.started.size(), 2u);
    EXPECT_EQ(comm.waits, 1);
    // Same pieces in the same order either way.
    EXPECT_EQ(comm.started[0].data, grads.data() + spec.weight_offset(1));
    EXPECT_EQ(comm.started[1].data, grads.data());
    EXPECT_FALSE(r.local_non_finite());
  }
}

TEST(GradReducer, ReportsNonFiniteInAnyBucket) {
  const ModelSpec spec = reference_mlp();
  std::vector<float> grads(static_cast<size_t>(spec.param_count()), 0.5f);
  RecordingComm comm;
  GradReducer r(spec, 4, true, comm);
  grads[5] = INFINITY;  // layer 0: the last bucket
  r.begin(grads.data());
  r.finish();
  EXPECT_TRUE(r.local_non_finite());
  grads[5] = 0.5f;
  r.begin(grads.data());
  r.finish();
  EXPECT_FALSE(r.local_non_finite());  // begin() resets it
}

TEST(GradReducer, BackwardHookRunsLastLayerFirstAndChangesNothing) {
  for (auto act : {kernels::Activation::kRelu, kernels::Activation::kTanh}) {
    ModelSpec spec;
    spec.sizes = {5, 7, 6, 3};
    spec.activation = act;
    Model model(spec, 4);
    std::vector<float> params(static_cast<size_t>(spec.param_count()));
    init_params(spec, 3, params.data());
    std::vector<float> x(20);
    for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(static_cast<float>(i));
    std::vector<float> plain(params.size()), hooked(params.size());
    std::vector<int> order;
    for (int pass = 0; pass < 2; ++pass) {
      float* out = model.forward(params.data(), x.data(), 4);
      for (int i = 0; i < 12; ++i) out[i] = 0.1f * static_cast<float>(i % 5) - 0.2f;
      if (pass == 0) {
        model.backward(params.data(), x.data(), out, plain.data(), 4);
      } else {
        model.backward(params.data(), x.data(), out, hooked.data(), 4, [&](int l) { order.push_back(l); });
      }
    }
    EXPECT_EQ(order, (std::vector<int>{2, 1, 0}));
    EXPECT_EQ(plain, hooked);
  }
}

}  // namespace
}  // namespace tessera
