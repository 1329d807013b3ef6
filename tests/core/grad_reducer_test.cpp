// GradReducer: pieces follow the weight-gradient row tiles, last layer first, and cover the flat
// gradient exactly once; with overlap a piece starts from the poll after the tile (or the layer
// hook) that completes it and every piece before it, without overlap all start in finish(), in
// the same order; a NaN anywhere is reported. Bits across ranks: tests/distributed.
#include "core/grad_reducer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <thread>
#include <utility>
#include <vector>

#include <tbb/global_control.h>

#include "kernels/tile_observer.h"

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

// Pieces tile the flat buffer exactly once.
void expect_cover(const GradReducer& r, const ModelSpec& spec) {
  std::vector<std::pair<int64_t, int64_t>> spans;
  for (const auto& p : r.pieces()) spans.push_back({p.offset, p.count});
  std::sort(spans.begin(), spans.end());
  int64_t at = 0;
  for (const auto& [offset, count] : spans) {
    EXPECT_EQ(offset, at);
    at += count;
  }
  EXPECT_EQ(at, spec.param_count());
}

// Reports rows [r0, r1) of layer l's weight gradient as final, with the bias when they start at 0
// (as the kernels' dw tiles do).
void report_rows(const ModelSpec& spec, float* grads, int l, int64_t r0, int64_t r1) {
  const int64_t in = spec.sizes[static_cast<size_t>(l)], out = spec.sizes[static_cast<size_t>(l) + 1];
  kernels::report_final(grads + spec.weight_offset(l), in, r0, r1, 0, in);
  kernels::report_final(grads + spec.bias_offset(l), out, 0, 1, r0, r1);
}

TEST(GradReducer, ReferenceMlpPiecesFollowTheRowTiles) {
  RecordingComm comm;
  const ModelSpec spec = reference_mlp();
  GradReducer r(spec, 0.5, true, comm, 256);
  // Layer 2 (10 rows) is one unit; layers 1 and 0 have 4 blocks of 256 rows, the last with the bias.
  ASSERT_EQ(r.units().size(), 9u);
  EXPECT_EQ(r.units()[0].layer, 2);
  EXPECT_EQ(r.units()[4].offset, spec.weight_offset(1) + 768 * 1024);
  EXPECT_EQ(r.units()[4].count, 256 * 1024 + 1024);  // the bias rides in the last block
  EXPECT_EQ(r.units()[5].layer, 0);
  ASSERT_EQ(r.pieces().size(), 9u);  // every block (≥ 0.77 MiB) is a piece of its own at 0.5 MiB
  expect_cover(r, spec);
  // At 1 MiB layer 1's blocks (1 MiB) stay single and layer 0's (0.77 MiB) pair up; at 4 MiB each
  // layer is one piece (layer 2 cannot join layer 1: not adjacent in the buffer).
  GradReducer one(spec, 1, true, comm, 256);
  EXPECT_EQ(one.pieces().size(), 1u + 4u + 2u);
  expect_cover(one, spec);
  GradReducer four(spec, 4, true, comm, 256);
  ASSERT_EQ(four.pieces().size(), 3u);
  EXPECT_EQ(four.pieces()[1].offset, spec.weight_offset(1));
  EXPECT_EQ(four.pieces()[2].offset, 0);
  expect_cover(four, spec);
  // The Eigen engine's 128-row tiles: twice the blocks.
  EXPECT_EQ(GradReducer(spec, 0.1, true, comm, 128).pieces().size(), 1u + 8u + 8u);
}

TEST(GradReducer, OneBlockLayersJoinLikeWholeLayerBuckets) {
  RecordingComm comm;
  ModelSpec spec;
  spec.sizes = {5, 7, 6, 3};
  GradReducer big(spec, 4, true, comm, 256);
  ASSERT_EQ(big.pieces().size(), 1u);
  expect_cover(big, spec);
  GradReducer tiny(spec, 1e-6, true, comm, 256);
  ASSERT_EQ(tiny.pieces().size(), 3u);
  EXPECT_EQ(tiny.pieces()[0].offset, spec.weight_offset(2));  // last layer first
  EXPECT_EQ(tiny.pieces()[2].offset, 0);
}

TEST(GradReducer, PiecesStartInOrderOnceTheirTilesAndAllBeforeAreFinal) {
  const ModelSpec spec = reference_mlp();
  std::vector<float> grads(static_cast<size_t>(spec.param_count()), 1.0f);
  RecordingComm comm;
  GradReducer r(spec, 0.5, true, comm, 256);
  r.begin(grads.data());
  report_rows(spec, grads.data(), 2, 0, 10);
  kernels::poll_between_tiles();
  ASSERT_EQ(comm.started.size(), 1u);
  EXPECT_EQ(comm.started[0].data, grads.data() + spec.weight_offset(2));
  // Another thread finished layer 1's second block first: it waits for the first.
  report_rows(spec, grads.data(), 1, 256, 512);
  kernels::poll_between_tiles();
  EXPECT_EQ(comm.started.size(), 1u);
  // Half of the first block's columns are not a block.
  kernels::report_final(grads.data() + spec.weight_offset(1), 1024, 0, 256, 0, 512);
  kernels::poll_between_tiles();
  EXPECT_EQ(comm.started.size(), 1u);
  kernels::report_final(grads.data() + spec.weight_offset(1), 1024, 0, 256, 512, 1024);
  kernels::poll_between_tiles();
  ASSERT_EQ(comm.started.size(), 3u);
  EXPECT_EQ(comm.started[1].data, grads.data() + spec.weight_offset(1));
  EXPECT_EQ(comm.started[2].data, grads.data() + spec.weight_offset(1) + 256 * 1024);
  // A oneTBB worker's poll point does nothing: only the installing thread polls.
  report_rows(spec, grads.data(), 1, 512, 768);
  const int polls = comm.progresses;
  std::thread([] { kernels::poll_between_tiles(); }).join();
  EXPECT_EQ(comm.started.size(), 3u);
  EXPECT_EQ(comm.progresses, polls);
  // The last block's weights without the bias are not final.
  kernels::report_final(grads.data() + spec.weight_offset(1), 1024, 768, 1024, 0, 1024);
  kernels::poll_between_tiles();
  EXPECT_EQ(comm.started.size(), 4u);
  // The layer hook completes a layer even without tile reports.
  r.layer_done(1);
  EXPECT_EQ(comm.started.size(), 5u);
  EXPECT_EQ(comm.waits, 0);
  r.finish();
  EXPECT_EQ(comm.started.size(), 9u);
  EXPECT_EQ(comm.waits, 1);
  kernels::poll_between_tiles();  // uninstalled by finish(): nothing happens
  EXPECT_EQ(comm.started.size(), 9u);
}

TEST(GradReducer, OverlapOffStartsEverythingInFinishInTheSameOrder) {
  const ModelSpec spec = reference_mlp();
  std::vector<float> grads(static_cast<size_t>(spec.param_count()), 1.0f);
  std::vector<std::vector<float*>> order(2);
  for (bool overlap : {true, false}) {
    RecordingComm comm;
    GradReducer r(spec, 0.5, overlap, comm, 256);
    r.begin(grads.data());
    for (int l = 2; l >= 0; --l) {
      report_rows(spec, grads.data(), l, 0, spec.sizes[static_cast<size_t>(l) + 1]);
      kernels::poll_between_tiles();
      r.layer_done(l);
    }
    EXPECT_EQ(comm.started.size(), overlap ? 9u : 0u);
    r.finish();
    ASSERT_EQ(comm.started.size(), 9u);
    for (const auto& s : comm.started) order[overlap ? 1 : 0].push_back(s.data);
    EXPECT_FALSE(r.local_non_finite());
  }
  EXPECT_EQ(order[0], order[1]);
}

TEST(GradReducer, ReportsNonFiniteInAnyPiece) {
  const ModelSpec spec = reference_mlp();
  std::vector<float> grads(static_cast<size_t>(spec.param_count()), 0.5f);
  for (bool overlap : {true, false}) {
    RecordingComm comm;
    GradReducer r(spec, 0.5, overlap, comm, 256);
    grads[5] = INFINITY;  // layer 0: the last piece, checked in finish()
    r.begin(grads.data());
    r.finish();
    EXPECT_TRUE(r.local_non_finite());
    grads[5] = 0.5f;
    r.begin(grads.data());
    r.finish();
    EXPECT_FALSE(r.local_non_finite());  // begin() resets it
    // Checked by the tile that reports it.
    const size_t at = static_cast<size_t>(spec.bias_offset(1)) + 3;
    grads[at] = NAN;
    r.begin(grads.data());
    report_rows(spec, grads.data(), 1, 0, 1024);
    kernels::poll_between_tiles();
    r.finish();
    EXPECT_TRUE(r.local_non_finite());
    grads[at] = 0.5f;
  }
}

// A verdict the kernel reports with a dW block is taken as given (tessera's SIMD engine tests
// the values in registers as it stores them, so the reducer must not read them again); a block
// reported kUnknown is scanned, and so is the bias, which rides unchecked.
TEST(GradReducer, UsesTheKernelsVerdictOnAWeightBlock) {
  const ModelSpec spec = reference_mlp();
  std::vector<float> grads(static_cast<size_t>(spec.param_count()), 0.5f);
  const int64_t in = 1024;
  float* w1 = grads.data() + spec.weight_offset(1);
  const auto report = [&](kernels::Finite finite) {
    kernels::report_final(w1, in, 0, 256, 0, in, finite);
    kernels::report_final(grads.data() + spec.bias_offset(1), 1024, 0, 1, 0, 256);
  };
  RecordingComm comm;
  GradReducer r(spec, 0.5, true, comm, 256);
  // Finite values, reported non-finite: flagged without looking.
  r.begin(grads.data());
  report(kernels::Finite::kNonFinite);
  r.finish();
  EXPECT_TRUE(r.local_non_finite());
  // A NaN in the block, reported finite: not read again (the kernel saw the stored values, so
  // this cannot happen in training; it shows the scan is skipped).
  w1[7] = NAN;
  r.begin(grads.data());
  report(kernels::Finite::kFinite);
  r.finish();
  EXPECT_FALSE(r.local_non_finite());
  // Reported unknown: scanned, and the NaN found.
  r.begin(grads.data());
  report(kernels::Finite::kUnknown);
  r.finish();
  EXPECT_TRUE(r.local_non_finite());
  w1[7] = 0.5f;
  // The bias is scanned whatever the weights' verdict.
  grads[static_cast<size_t>(spec.bias_offset(1)) + 3] = INFINITY;
  r.begin(grads.data());
  report(kernels::Finite::kFinite);
  r.finish();
  EXPECT_TRUE(r.local_non_finite());
}

// A real backward pass: the tiles report as they finish and the polls between them start the
// pieces, so every piece is in flight before the first layer's hook runs. One thread: with more,
// a layer's last tiles may run on a worker, and its pieces then start at the hook.
TEST(GradReducer, BackwardStartsPiecesFromInsideTheGemms) {
  tbb::global_control one(tbb::global_control::max_allowed_parallelism, 1);
  ModelSpec spec;
  spec.sizes = {40, 600, 300, 10};
  Model model(spec, 8);
  std::vector<float> params(static_cast<size_t>(spec.param_count())), grads(params.size());
  init_params(spec, 5, params.data());
  std::vector<float> x(8 * 40);
  for (size_t i = 0; i < x.size(); ++i) x[i] = std::cos(static_cast<float>(i));
  RecordingComm comm;
  GradReducer r(spec, 1e-3, true, comm);
  ASSERT_GT(r.pieces().size(), 3u);
  float* out = model.forward(params.data(), x.data(), 8);
  for (int i = 0; i < 80; ++i) out[i] = 0.01f * static_cast<float>(i % 7) - 0.03f;
  r.begin(grads.data());
  size_t before_last_hook = 0;
  model.backward(params.data(), x.data(), out, grads.data(), 8, [&](int l) {
    if (l == 0) before_last_hook = comm.started.size();
    r.layer_done(l);
  });
  EXPECT_EQ(before_last_hook, r.pieces().size());
  r.finish();
  EXPECT_FALSE(r.local_non_finite());
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
