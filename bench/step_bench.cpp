// One training step of the reference MLP (784-1024-1024-10, batch 256, SGD with momentum) as the
// trainer runs it, without reading data or communicating: Model::forward, the softmax
// cross-entropy and its gradient, Model::backward, Optimizer::step, on batches already in
// memory. Three benchmarks take the step apart by difference: forward; forward + loss +
// backward; the whole step. With 1 thread, read cpu_time (the thread's CPU time): other jobs
// on the machine stretch real time but hardly this. BM_MlpStepProducts runs the same kernel
// calls as Model's float path and times each one inside the step, where its operands come as
// cold as in training (a product alone in dense_bench finds them in cache): counters are the
// median milliseconds of each call over the iterations.
#include <benchmark/benchmark.h>
#include <tbb/global_control.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "core/flat_buffer.h"
#include "core/model.h"
#include "core/optimizer.h"
#include "kernels/dense.h"
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
  // FlatBuffers, as the trainer's: their staggered starts matter to the fused update.
  FlatBuffer params, params_next, grads;
  std::vector<float> x;
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
        params(spec.param_count()), params_next(spec.param_count()), grads(spec.param_count()),
        x(kBatches * kBatch * 784),
        labels(kBatches * kBatch) {
    init_params(spec, 1, params.data());
    optimizer.prepare_fused();
    std::mt19937 rng(3);
    std::uniform_real_distribution<float> u(0.0f, 1.0f);
    for (float& v : x) v = u(rng);
    for (int32_t& y : labels) y = static_cast<int32_t>(rng() % 10);
  }

  // Runs `parts` of step s: 1 forward, 2 + loss and backward, 3 + optimizer; 4 the whole step
  // with the optimizer fused into backward, as the trainer runs it on one rank.
  void run(int64_t s, int parts) {
    const float* xb = x.data() + (s % kBatches) * kBatch * 784;
    float* out = model.forward(params.data(), xb, kBatch);
    if (parts < 2) return;
    kernels::softmax_xent(out, labels.data() + (s % kBatches) * kBatch, out, kBatch, 10,
                          1.0 / kBatch);
    if (parts == 4) {
      const kernels::SgdUpdate sgd = optimizer.fused_update(params.data(), params_next.data(), s);
      model.backward(params.data(), xb, out, grads.data(), kBatch, {}, &sgd);
      std::swap(params, params_next);
      optimizer.commit_fused();
      return;
    }
    model.backward(params.data(), xb, out, grads.data(), kBatch);
    if (parts < 3) return;
    optimizer.step(params.data(), grads.data(), s);
  }
};

// Args: parts (1 forward, 2 forward + loss + backward, 3 the whole step, 4 the whole step with
// the fused SGD update), threads.
void BM_MlpStep(benchmark::State& state) {
  const int parts = static_cast<int>(state.range(0));
  tbb::global_control limit(tbb::global_control::max_allowed_parallelism, state.range(1));
  Setup setup;
  int64_t s = 0;
  for (int warm = 0; warm < 3; ++warm) setup.run(s++, parts == 4 ? 4 : 3);  // pages, momentum
  for (auto _ : state) {
    setup.run(s++, parts);
    benchmark::ClobberMemory();
  }
  if (parts >= 3) {
    state.counters["flops"] =
        benchmark::Counter(kStepFlop * double(state.iterations()), benchmark::Counter::kIsRate);
    state.counters["samples"] =
        benchmark::Counter(double(kBatch * state.iterations()), benchmark::Counter::kIsRate);
  }
}

// The step's kernel calls one by one, each timed: forward of layers 1-3 (bias and ReLU fused in
// the hidden ones), the loss, backward of layers 3-1 (dW, db and, but for layer 1, dX with the
// ReLU mask fused), the SGD update. Args: threads.
void BM_MlpStepProducts(benchmark::State& state) {
  tbb::global_control limit(tbb::global_control::max_allowed_parallelism, state.range(0));
  Setup setup;
  const ModelSpec& spec = setup.spec;
  const int layers = spec.layers();
  std::vector<std::vector<float>> act(static_cast<size_t>(layers) + 1), grad(act.size());
  for (int l = 1; l <= layers; ++l) {
    act[static_cast<size_t>(l)].resize(
        static_cast<size_t>(kBatch * spec.sizes[static_cast<size_t>(l)]));
    grad[static_cast<size_t>(l)].resize(act[static_cast<size_t>(l)].size());
  }
  std::vector<std::string> names;
  for (int l = 1; l <= layers; ++l) names.push_back("fwd" + std::to_string(l));
  names.push_back("loss");
  for (int l = layers; l >= 1; --l) names.push_back("bwd" + std::to_string(l));
  names.push_back("sgd");
  std::vector<std::vector<double>> ms(names.size());
  int64_t s = 0;
  const auto step = [&](bool timed) {
    size_t k = 0;
    const auto time = [&](const auto& call) {
      const auto t0 = std::chrono::steady_clock::now();
      call();
      if (timed) {
        ms[k].push_back(
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
                .count());
      }
      ++k;
    };
    float* p = setup.params.data();
    float* g = setup.grads.data();
    const float* x = setup.x.data() + (s % kBatches) * kBatch * 784;
    const auto in = [&](int l) { return l == 0 ? x : act[static_cast<size_t>(l)].data(); };
    for (int l = 0; l < layers; ++l) {
      const int64_t fin = spec.sizes[static_cast<size_t>(l)],
                    fout = spec.sizes[static_cast<size_t>(l) + 1];
      float* y = act[static_cast<size_t>(l) + 1].data();
      time([&] {
        if (l + 1 < layers) {
          kernels::dense_forward_relu(in(l), p + spec.weight_offset(l), p + spec.bias_offset(l), y,
                                      kBatch, fin, fout);
        } else {
          kernels::dense_forward(in(l), p + spec.weight_offset(l), p + spec.bias_offset(l), y,
                                 kBatch, fin, fout);
        }
      });
    }
    time([&] {
      kernels::softmax_xent(act.back().data(), setup.labels.data() + (s % kBatches) * kBatch,
                            grad.back().data(), kBatch, 10, 1.0 / kBatch);
    });
    for (int l = layers - 1; l >= 0; --l) {
      const int64_t fin = spec.sizes[static_cast<size_t>(l)],
                    fout = spec.sizes[static_cast<size_t>(l) + 1];
      const float* dy = grad[static_cast<size_t>(l) + 1].data();
      float* dw = g + spec.weight_offset(l);
      float* db = g + spec.bias_offset(l);
      time([&] {
        if (l > 0) {
          kernels::dense_backward_relu(dy, in(l), p + spec.weight_offset(l), dw, db,
                                       grad[static_cast<size_t>(l)].data(), kBatch, fin, fout);
        } else {
          kernels::dense_backward(dy, in(l), p + spec.weight_offset(l), dw, db,
                                  static_cast<float*>(nullptr), kBatch, fin, fout);
        }
      });
    }
    time([&] { setup.optimizer.step(p, g, s); });
    ++s;
  };
  for (int warm = 0; warm < 3; ++warm) step(false);
  for (auto _ : state) {
    step(true);
    benchmark::ClobberMemory();
  }
  for (size_t k = 0; k < names.size(); ++k) {
    std::vector<double>& v = ms[k];
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(v.size() / 2), v.end());
    state.counters[names[k] + "_ms"] = v[v.size() / 2];
  }
}

// 1 thread: rates from the calling thread's CPU time, which does all the work; 2 threads: from
// real time (the CPU time counted is only the calling thread's).
BENCHMARK(BM_MlpStep)
    ->ArgNames({"parts", "threads"})
    ->ArgsProduct({{1, 2, 3, 4}, {1}})
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_MlpStep)
    ->ArgNames({"parts", "threads"})
    ->ArgsProduct({{1, 2, 3, 4}, {2}})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_MlpStepProducts)
    ->ArgName("threads")
    ->Arg(1)
    ->Arg(2)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
