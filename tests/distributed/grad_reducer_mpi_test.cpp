// GradReducer over MPI (N = 1, 2, 4): a real backward pass whose pieces start from inside the
// GEMMs gives the same bits with overlap on or off and with 1 or 2 threads (float and bf16), and
// those bits are the sum over ranks of every rank's own gradient.
#include "core/grad_reducer.h"

#include <gtest/gtest.h>
#include <tbb/global_control.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/dense.h"
#include "tests/distributed/mpi_test_env.h"

namespace tessera {
namespace {

constexpr int64_t kRows = 24;  // per rank

std::vector<float> rank_input(int rank, int64_t inputs) {
  std::vector<float> x(static_cast<size_t>(kRows * inputs));
  for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(0.37f * static_cast<float>(i) + static_cast<float>(rank));
  return x;
}

// forward, a fixed loss gradient, backward: this rank's gradient (reduced when reducer is given).
void gradient(Model& model, const std::vector<float>& params, const std::vector<float>& x, float* grads,
              GradReducer* reducer, Precision precision = Precision::kFp32) {
  float* out = model.forward(params.data(), x.data(), kRows, precision);
  for (int64_t i = 0; i < kRows * model.spec().outputs(); ++i) out[i] = 0.05f * out[i] - 0.01f * static_cast<float>(i % 3);
  if (reducer == nullptr) {
    model.backward(params.data(), x.data(), out, grads, kRows);
    return;
  }
  reducer->begin(grads);
  model.backward(params.data(), x.data(), out, grads, kRows, [&](int l) { reducer->layer_done(l); });
  reducer->finish();
}

// The reduced gradient for overlap off/on x threads 1/2, in that order; all must hold the same bits.
std::vector<std::vector<float>> reduced_four_ways(MpiCommunicator& comm, const ModelSpec& spec, Model& model,
                                                  const std::vector<float>& params, const std::vector<float>& x,
                                                  Precision precision) {
  std::vector<std::vector<float>> results;
  for (bool overlap : {false, true}) {
    for (int threads : {1, 2}) {
      tbb::global_control gc(tbb::global_control::max_allowed_parallelism, static_cast<size_t>(threads));
      GradReducer reducer(spec, 0.05, overlap, comm);
      EXPECT_GE(reducer.pieces().size(), 6u);
      std::vector<float> grads(params.size());
      gradient(model, params, x, grads.data(), &reducer, precision);
      EXPECT_FALSE(reducer.local_non_finite());
      results.push_back(std::move(grads));
    }
  }
  for (size_t k = 1; k < results.size(); ++k) {
    EXPECT_EQ(0, std::memcmp(results[0].data(), results[k].data(), results[0].size() * sizeof(float)))
        << "configuration " << k << " (overlap " << (k >= 2) << ", threads " << (k % 2 + 1) << ") differs";
  }
  return results;
}

TEST(GradReducerMpi, OverlapAndThreadCountDoNotChangeTheBits) {
  MpiCommunicator& comm = *g_comm;
  ModelSpec spec;
  spec.sizes = {96, 700, 520, 10};  // 7 row blocks of 256 rows or fewer: rings and one small sum
  Model model(spec, kRows);
  std::vector<float> params(static_cast<size_t>(spec.param_count()));
  init_params(spec, 9, params.data());
  const std::vector<float> x = rank_input(comm.rank(), spec.inputs());
  const auto results = reduced_four_ways(comm, spec, model, params, x, Precision::kFp32);
  // Every rank's own gradient, computed here and summed in double: the reduced values.
  std::vector<double> sum(params.size(), 0.0);
  std::vector<float> own(params.size());
  for (int r = 0; r < comm.size(); ++r) {
    gradient(model, params, rank_input(r, spec.inputs()), own.data(), nullptr);
    for (size_t i = 0; i < own.size(); ++i) sum[i] += own[i];
  }
  double worst = 0, scale = 0;
  for (size_t i = 0; i < sum.size(); ++i) {
    worst = std::max(worst, std::abs(sum[i] - results[0][i]));
    scale = std::max(scale, std::abs(sum[i]));
  }
  EXPECT_LT(worst, 1e-5 * scale) << "max difference " << worst << " of max " << scale;
}

// bf16 training reports its float weight-gradient tiles the same way.
TEST(GradReducerMpi, Bf16OverlapAndThreadCountDoNotChangeTheBits) {
  if (const char* why = kernels::bf16_unsupported_reason()) GTEST_SKIP() << why;
  MpiCommunicator& comm = *g_comm;
  ModelSpec spec;
  spec.sizes = {96, 700, 520, 10};
  Model model(spec, kRows, Precision::kBf16);
  std::vector<float> params(static_cast<size_t>(spec.param_count()));
  init_params(spec, 9, params.data());
  const std::vector<float> x = rank_input(comm.rank(), spec.inputs());
  reduced_four_ways(comm, spec, model, params, x, Precision::kBf16);
}

}  // namespace
}  // namespace tessera
