// One training step of the reference MLP (784-1024-1024-10, batch 256, SGD with momentum) as the
// trainer runs it, without reading data or communicating: Model::forward, the softmax
// cross-entropy and its gradient, Model::backward, Optimizer::step, on batches already in
// memory. Three benchmarks take the step apart by difference: forward; forward + loss +
// backward; the whole step. With 1 thread, read cpu_time (the thread's CPU time): other jobs
// on the machine stretch real time but hardly this.
#include <benchmark/benchmark.h>
#include <tbb/global_control.h>

#include <cstdint>
#include <random>
#include <vector>

#include "core/model.h"
#include "core/optimizer.h"
#include "kernels/loss.h"

namespace {

using namespace tessera;

constexpr int64_t kBatch = 256;
constexpr int64_t kBatches = 8;  // cycled, so the inputs come from memory as the reader's would

// FLOP of one step: forward and weight gradients of the three layers, input gradients of the
// last two (the first layer's input needs none).
constexpr double kStepFlop =
    2.0 * kBatch * (2.0 * (784 * 1024 + 1024 * 1024 + 1024 * 10) + (1024 * 1024 + 1024 * 10));

struct Setup {
  ModelSpec spec;
  Model model;
  Optimizer optimizer;
  std::vector<float> params, grads, x;
  std::vector<int32_t> labels;

  static ModelSpec reference() {
    ModelSpec s;
    s.sizes = {784, 1024, 1024, 10};
    return s;
  }
  static OptimizerConfig sgd() {
    OptimizerConfig c;
    c.lr = 0.01;
    c.momentum = 0.9;
    return c;
  }
  Setup()
      : spec(reference()), model(spec, kBatch), optimizer(sgd(), spec.param_count(), 1 << 30),
        params(spec.param_count()), grads(spec.param_count()), x(kBatches * kBatch * 784),
        labels(kBatches * kBatch) {
    init_params(spec, 1, params.data());
    std::mt19937 rng(3);
    std::uniform_real_distribution<float> u(0.0f, 1.0f);
    for (float& v : x) v = u(rng);
    for (int32_t& y : labels) y = static_cast<int32_t>(rng() % 10);
  }

  // Runs `parts` of step s: 1 forward, 2 + loss and backward, 3 + optimizer.
  void run(int64_t s, int parts) {
    const float* xb = x.data() + (s % kBatches) * kBatch * 784;
    float* out = model.forward(params.data(), xb, kBatch);
    if (parts < 2) return;
    kernels::softmax_xent(out, labels.data() + (s % kBatches) * kBatch, out, kBatch, 10,
                          1.0 / kBatch);
    model.backward(params.data(), xb, out, grads.data(), kBatch);
    if (parts < 3) return;
    optimizer.step(params.data(), grads.data(), s);
  }
};

// Args: parts (1 forward, 2 forward + loss + backward, 3 the whole step), threads.
void BM_MlpStep(benchmark::State& state) {
  const int parts = static_cast<int>(state.range(0));
  tbb::global_control limit(tbb::global_control::max_allowed_parallelism, state.range(1));
  Setup setup;
  int64_t s = 0;
  for (int warm = 0; warm < 3; ++warm) setup.run(s++, 3);  // primitives, pages, momentum
  for (auto _ : state) {
    setup.run(s++, parts);
    benchmark::ClobberMemory();
  }
  if (parts == 3) {
    state.counters["flops"] =
        benchmark::Counter(kStepFlop * double(state.iterations()), benchmark::Counter::kIsRate);
    state.counters["samples"] =
        benchmark::Counter(double(kBatch * state.iterations()), benchmark::Counter::kIsRate);
  }
}

// 1 thread: rates from the calling thread's CPU time, which does all the work; 2 threads: from
// real time (the CPU time counted is only the calling thread's).
BENCHMARK(BM_MlpStep)
    ->ArgNames({"parts", "threads"})
    ->ArgsProduct({{1, 2, 3}, {1}})
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_MlpStep)
    ->ArgNames({"parts", "threads"})
    ->ArgsProduct({{1, 2, 3}, {2}})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
