// Throughput of the dense GEMM kernels of each engine (0 = Eigen, 1 = oneDNN, 2 and 3 =
// tessera's own microkernels in AVX-512 and AVX2), of the bf16 products of oneDNN and of
// tessera's AVX512_BF16 engine (avx512 = 1; both alternating in BM_Bf16EnginesAlternating), at
// the reference MLP's shapes (784-1024-1024-10, batch 128 and 256) and of the flat optimizer
// steps, for 1 and 2 oneTBB threads. Every (engine, shape) is validated once against a naive
// double reference before timing; a wrong kernel aborts. peak_pct is against this core's FMA
// peak, measured at start-up in the widest vectors the build has (printed in the context).
#include <benchmark/benchmark.h>
#include <immintrin.h>
#include <tbb/global_control.h>
#include <time.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "kernels/dense.h"
#include "kernels/gemm_engines.h"
#include "kernels/optim.h"
#include "kernels/parallel.h"

namespace {

using namespace tessera::kernels;

// FMA peak of one core in FLOP/s, measured: independent FMA chains in the widest float vectors
// the build targets, enough of them to cover the FMA latency on every pipe, best of 5 runs of
// ~40 ms (shorter runs measured the clock still ramping up). bf16: vdpbf16ps does two
// multiply-adds per float lane, twice the float FMA's work.
template <class V, class Fma>
double fma_chains_rate(V seed, Fma fma, int lanes) {
  constexpr int kChains = 12;
  constexpr long kSteps = 20'000'000;
  double best = 0.0;
  for (int rep = 0; rep < 5; ++rep) {
    V acc[kChains];  // distinct starting values, or the compiler merges the chains
    acc[0] = seed;
    for (int i = 1; i < kChains; ++i) acc[i] = fma(acc[i - 1], seed, seed);
    timespec t0, t1;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
    for (long s = 0; s < kSteps; ++s) {
      for (int i = 0; i < kChains; ++i) acc[i] = fma(acc[i], seed, seed);
    }
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1);
    for (int i = 1; i < kChains; ++i) acc[0] = fma(acc[0], acc[i], seed);
    benchmark::DoNotOptimize(acc[0]);
    const double secs = double(t1.tv_sec - t0.tv_sec) + 1e-9 * double(t1.tv_nsec - t0.tv_nsec);
    best = std::max(best, 2.0 * lanes * kChains * double(kSteps) / secs);
  }
  return best;
}

double measure_fma_peak() {
#if defined(__AVX512F__)
  return fma_chains_rate(_mm512_set1_ps(0.999f),
                         [](__m512 a, __m512 b, __m512 c) { return _mm512_fmadd_ps(a, b, c); }, 16);
#elif defined(__AVX2__) && defined(__FMA__)
  return fma_chains_rate(_mm256_set1_ps(0.999f),
                         [](__m256 a, __m256 b, __m256 c) { return _mm256_fmadd_ps(a, b, c); }, 8);
#else
  return fma_chains_rate(0.999f, [](float a, float b, float c) { return std::fma(a, b, c); }, 1);
#endif
}

const double kPeakPerThread = measure_fma_peak();
const double kBf16PeakPerThread = 2 * kPeakPerThread;
const bool kPeakInContext = [] {
  benchmark::AddCustomContext("fma_peak_gflops_per_core", std::to_string(kPeakPerThread / 1e9));
  return true;
}();

std::vector<float> random_floats(int64_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = dist(rng);
  return v;
}

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "dense_bench: validation failed: %s\n", what.c_str());
  std::abort();
}

// got[i] within 1e-5·Σ|terms| of the double reference (a float rounding bound); aborts if not.
void check(const char* what, const std::vector<float>& got, const std::vector<double>& want,
           const std::vector<double>& mag) {
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::fabs(double(got[i]) - want[i]) > 1e-5 * mag[i] + 1e-30) {
      fail(std::string(what) + "[" + std::to_string(i) + "] = " + std::to_string(got[i]) +
           ", reference " + std::to_string(want[i]));
    }
  }
}

// The engines compared: index 0 Eigen, 1 oneDNN, 2 tessera's AVX-512, 3 tessera's AVX2 (the
// last three when built in).
constexpr int64_t kEigen = 0, kOneDnn = 1, kAvx512 = 2, kAvx2 = 3;

void engine_forward(int64_t engine, const float* x, const float* w, const float* b, float* y,
                    int64_t n, int64_t in, int64_t out, bool relu) {
  if (engine == kOneDnn) {
    onednn_dense_forward(x, w, b, y, n, in, out, relu);
  } else if (engine == kAvx512) {
    avx512_dense_forward(x, w, b, y, n, in, out, relu);
  } else if (engine == kAvx2) {
    avx2_dense_forward(x, w, b, y, n, in, out, relu);
  } else {
    eigen_dense_forward(x, w, b, y, n, in, out, relu);
  }
}

void engine_backward(int64_t engine, const float* dy, const float* x, const float* w, float* dw,
                     float* db, float* dx, int64_t n, int64_t in, int64_t out) {
  if (engine == kOneDnn) {
    onednn_dense_backward(dy, x, w, dw, db, dx, n, in, out);
  } else if (engine == kAvx512) {
    avx512_dense_backward(dy, x, w, dw, db, dx, n, in, out);
  } else if (engine == kAvx2) {
    avx2_dense_backward(dy, x, w, dw, db, dx, n, in, out);
  } else {
    eigen_dense_backward(dy, x, w, dw, db, dx, n, in, out);
  }
}

// One layer's operands: x (n, in), w (out, in), b (out), dy (n, out) and the outputs.
struct Layer {
  int64_t engine, n, in, out;
  std::vector<float> x, w, b, dy, y, dw, db, dx;
  Layer(int64_t engine_, int64_t n_, int64_t in_, int64_t out_)
      : engine(engine_),
        n(n_),
        in(in_),
        out(out_),
        x(random_floats(n * in, 1)),
        w(random_floats(out * in, 2)),
        b(random_floats(out, 3)),
        dy(random_floats(n * out, 4)),
        y(n * out),
        dw(out * in),
        db(out),
        dx(n * in) {}

  // Runs forward + backward once and compares every output with naive double loops.
  void validate() {
    validate_run([&] {
      engine_forward(engine, x.data(), w.data(), b.data(), y.data(), n, in, out, false);
      engine_backward(engine, dy.data(), x.data(), w.data(), dw.data(), db.data(), dx.data(), n,
                      in, out);
    });
  }

  // run() fills y, dw, db, dx from x, w, b, dy.
  template <class Run>
  void validate_run(const Run& run) {
    run();
    std::vector<double> want(n * out), mag(n * out);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t o = 0; o < out; ++o) {
        double acc = b[o], m = std::fabs(b[o]);
        for (int64_t k = 0; k < in; ++k) {
          acc += double(x[i * in + k]) * w[o * in + k];
          m += std::fabs(double(x[i * in + k]) * w[o * in + k]);
        }
        want[i * out + o] = acc;
        mag[i * out + o] = m;
      }
    check("y", y, want, mag);
    want.assign(out * in, 0.0);
    mag.assign(out * in, 0.0);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t o = 0; o < out; ++o)
        for (int64_t k = 0; k < in; ++k) {
          want[o * in + k] += double(dy[i * out + o]) * x[i * in + k];
          mag[o * in + k] += std::fabs(double(dy[i * out + o]) * x[i * in + k]);
        }
    check("dw", dw, want, mag);
    want.assign(n * in, 0.0);
    mag.assign(n * in, 0.0);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t o = 0; o < out; ++o)
        for (int64_t k = 0; k < in; ++k) {
          want[i * in + k] += double(dy[i * out + o]) * w[o * in + k];
          mag[i * in + k] += std::fabs(double(dy[i * out + o]) * w[o * in + k]);
        }
    check("dx", dx, want, mag);
    want.assign(out, 0.0);
    mag.assign(out, 0.0);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t o = 0; o < out; ++o) {
        want[o] += dy[i * out + o];
        mag[o] += std::fabs(dy[i * out + o]);
      }
    check("db", db, want, mag);
  }
};

// Builds the layer for the benchmark's (engine, n, in, out) args, validating each only once.
Layer make_layer(const benchmark::State& state) {
  static std::mutex mu;
  static std::set<std::tuple<int64_t, int64_t, int64_t, int64_t>> validated;
  Layer layer(state.range(0), state.range(1), state.range(2), state.range(3));
  std::lock_guard<std::mutex> lock(mu);
  if (validated.insert({layer.engine, layer.n, layer.in, layer.out}).second) layer.validate();
  return layer;
}

// FLOP/s and the share of the threads' combined peak (float's, or bf16's).
void set_flop_counters(benchmark::State& state, double flops_per_iter, int64_t threads,
                       double peak_per_thread = kPeakPerThread) {
  const double flops = flops_per_iter * double(state.iterations());
  state.counters["flops"] = benchmark::Counter(flops, benchmark::Counter::kIsRate);
  state.counters["peak_pct"] = benchmark::Counter(
      100.0 * flops / (peak_per_thread * double(threads)), benchmark::Counter::kIsRate);
}

// Args: engine, n, in, out, threads, relu (fused ReLU epilogue).
void BM_DenseForward(benchmark::State& state) {
  Layer l = make_layer(state);
  const int64_t threads = state.range(4);
  const bool relu = state.range(5) != 0;
  tbb::global_control limit(tbb::global_control::max_allowed_parallelism, threads);
  for (auto _ : state) {
    engine_forward(l.engine, l.x.data(), l.w.data(), l.b.data(), l.y.data(), l.n, l.in, l.out,
                   relu);
    benchmark::DoNotOptimize(l.y.data());
    benchmark::ClobberMemory();
  }
  set_flop_counters(state, 2.0 * double(l.n * l.in * l.out), threads);
}

// Args: engine, n, in, out, threads, with_dx (0 for a first layer, whose dx nobody needs).
void BM_DenseBackward(benchmark::State& state) {
  Layer l = make_layer(state);
  const int64_t threads = state.range(4);
  const bool with_dx = state.range(5) != 0;
  tbb::global_control limit(tbb::global_control::max_allowed_parallelism, threads);
  for (auto _ : state) {
    engine_backward(l.engine, l.dy.data(), l.x.data(), l.w.data(), l.dw.data(), l.db.data(),
                    with_dx ? l.dx.data() : nullptr, l.n, l.in, l.out);
    benchmark::DoNotOptimize(l.dw.data());
    benchmark::ClobberMemory();
  }
  set_flop_counters(state, (with_dx ? 4.0 : 2.0) * double(l.n * l.in * l.out), threads);
}

// The reference MLP's three layers at batch 256 and 128, on 1 and 2 threads, for each engine
// built in. Forward runs with the fused ReLU of the hidden layers (not for the 10-wide output
// layer); backward with and without dx.
void mlp_shapes(benchmark::internal::Benchmark* b, bool backward) {
  for (int64_t engine : {kEigen, kOneDnn, kAvx512, kAvx2}) {
    if (engine == kOneDnn && !onednn_available()) continue;
    if (engine == kAvx512 && !avx512_available()) continue;
    if (engine == kAvx2 && !avx2_available()) continue;
    for (int64_t n : {256, 128})
      for (auto [in, out] : {std::pair<int64_t, int64_t>{784, 1024}, {1024, 1024}, {1024, 10}})
        for (int64_t threads : {1, 2}) {
          if (!backward) {
            b->Args({engine, n, in, out, threads, out == 10 ? 0 : 1});
          } else {
            for (int64_t with_dx : {1, 0}) b->Args({engine, n, in, out, threads, with_dx});
          }
        }
  }
  b->ArgNames(backward ? std::vector<std::string>{"engine", "n", "in", "out", "threads", "dx"}
                       : std::vector<std::string>{"engine", "n", "in", "out", "threads", "relu"});
  b->UseRealTime()->Unit(benchmark::kMicrosecond);
}

BENCHMARK(BM_DenseForward)->Apply([](benchmark::internal::Benchmark* b) { mlp_shapes(b, false); });
BENCHMARK(BM_DenseBackward)->Apply([](benchmark::internal::Benchmark* b) { mlp_shapes(b, true); });

// The bf16 engines compared: oneDNN's matmul (gemm_engines.h's onednn_dense_*_bf16) or
// tessera's own AVX512_BF16 kernels (avx512_dense_*_bf16).
constexpr int64_t kBf16OneDnn = 0, kBf16Avx512 = 1;

// A layer for the bf16 products, as the model runs them: x, w and dy rounded to bf16 in place
// (so the double reference sees the operands the products see and the float tolerance holds),
// their bf16 copies, dyᵀ, and bf16 copies of y and dx written by the epilogues.
struct Bf16Layer : Layer {
  int64_t bf16_engine;
  std::vector<bf16> x16, w16, dy16, dyt16, y16, dx16, dxt16;
  Bf16Layer(int64_t bf16_engine_, int64_t n_, int64_t in_, int64_t out_)
      : Layer(kOneDnn, n_, in_, out_), bf16_engine(bf16_engine_), x16(x.size()), w16(w.size()),
        dy16(dy.size()), dyt16(dy.size()), y16(y.size()), dx16(dx.size()), dxt16(dx.size()) {
    for (auto* v : {&x, &w, &dy}) {
      for (float& f : *v) f = to_float(to_bf16(f));
    }
    to_bf16(x.data(), x16.data(), int64_t(x.size()));
    to_bf16(w.data(), w16.data(), int64_t(w.size()));
    to_bf16(dy.data(), dy16.data(), dyt16.data(), n, out);
  }
  void forward(bool relu) {
    if (bf16_engine == kBf16Avx512) {
      avx512_dense_forward_bf16(x16.data(), w16.data(), b.data(), y.data(), y16.data(), n, in,
                                out, relu);
    } else {
      onednn_dense_forward_bf16(x16.data(), w16.data(), b.data(), y.data(), y16.data(), n, in,
                                out, relu);
    }
  }
  // With the dx epilogue the model uses for a relu hidden layer: mask, bf16 copies for the
  // previous layer's products.
  void backward(bool with_dx, bool relu_dx) {
    DenseBf16Backward a;
    a.dy = dy.data();
    a.dy16 = dy16.data();
    a.dyt16 = dyt16.data();
    a.x16 = x16.data();
    a.w16 = w16.data();
    a.dw = dw.data();
    a.db = db.data();
    if (with_dx) {
      a.relu_x = relu_dx ? x.data() : nullptr;
      a.dx = dx.data();
      a.dx16 = dx16.data();
      a.dxt16 = dxt16.data();
    }
    if (bf16_engine == kBf16Avx512) {
      avx512_dense_backward_bf16(a, n, in, out);
    } else {
      onednn_dense_backward_bf16(a, n, in, out);
    }
  }
};

// Args: bf16 engine, n, in, out, threads; as BM_DenseForward / BM_DenseBackward, for the bf16
// products.
Bf16Layer make_bf16_layer(const benchmark::State& state) {
  static std::mutex mu;
  static std::set<std::tuple<int64_t, int64_t, int64_t, int64_t>> validated;
  Bf16Layer l(state.range(0), state.range(1), state.range(2), state.range(3));
  std::lock_guard<std::mutex> lock(mu);
  if (validated.insert({l.bf16_engine, l.n, l.in, l.out}).second) {
    l.validate_run([&] {
      l.forward(false);
      l.backward(true, false);
    });
  }
  return l;
}

void BM_DenseForwardBf16(benchmark::State& state) {
  Bf16Layer l = make_bf16_layer(state);
  const int64_t threads = state.range(4);
  const bool relu = state.range(5) != 0;
  tbb::global_control limit(tbb::global_control::max_allowed_parallelism, threads);
  for (auto _ : state) {
    l.forward(relu);
    benchmark::DoNotOptimize(l.y.data());
    benchmark::ClobberMemory();
  }
  set_flop_counters(state, 2.0 * double(l.n * l.in * l.out), threads, kBf16PeakPerThread);
}

void BM_DenseBackwardBf16(benchmark::State& state) {
  Bf16Layer l = make_bf16_layer(state);
  const int64_t threads = state.range(4);
  const bool with_dx = state.range(5) != 0;
  tbb::global_control limit(tbb::global_control::max_allowed_parallelism, threads);
  for (auto _ : state) {
    l.backward(with_dx, true);
    benchmark::DoNotOptimize(l.dw.data());
    benchmark::ClobberMemory();
  }
  set_flop_counters(state, (with_dx ? 4.0 : 2.0) * double(l.n * l.in * l.out), threads,
                    kBf16PeakPerThread);
}

// The same shapes as mlp_shapes, on each bf16 engine this build and CPU can run; the engines'
// rows of a shape side by side, so that both meet the same load on a shared machine.
void mlp_shapes_bf16(benchmark::internal::Benchmark* b, bool backward) {
  std::vector<int64_t> engines;
  if (onednn_bf16_unsupported_reason() == nullptr) engines.push_back(kBf16OneDnn);
  if (avx512_bf16_unsupported_reason() == nullptr) engines.push_back(kBf16Avx512);
  for (int64_t n : {256, 128})
    for (auto [in, out] : {std::pair<int64_t, int64_t>{784, 1024}, {1024, 1024}, {1024, 10}})
      for (int64_t threads : {1, 2})
        for (int64_t with_dx : {1, 0}) {
          if (!backward && with_dx == 0) continue;
          for (int64_t engine : engines) {
            b->Args({engine, n, in, out, threads, backward ? with_dx : (out == 10 ? 0 : 1)});
          }
        }
  b->ArgNames(backward ? std::vector<std::string>{"avx512", "n", "in", "out", "threads", "dx"}
                       : std::vector<std::string>{"avx512", "n", "in", "out", "threads", "relu"});
  b->UseRealTime()->Unit(benchmark::kMicrosecond);
}

BENCHMARK(BM_DenseForwardBf16)->Apply([](benchmark::internal::Benchmark* b) {
  mlp_shapes_bf16(b, false);
});
BENCHMARK(BM_DenseBackwardBf16)->Apply([](benchmark::internal::Benchmark* b) {
  mlp_shapes_bf16(b, true);
});

// Seconds on this thread's CPU clock (1 thread: what the load of other jobs distorts least) or
// the wall clock (2 threads: the second thread's time is not this thread's).
double clock_s(bool thread_cpu) {
  timespec t{};
  clock_gettime(thread_cpu ? CLOCK_THREAD_CPUTIME_ID : CLOCK_MONOTONIC, &t);
  return double(t.tv_sec) + 1e-9 * double(t.tv_nsec);
}

// Both bf16 engines on one layer, alternating call by call, so that a shared machine's load
// falls on both alike (the plain rows above run one engine's repetitions after the other's).
// Counters: each engine's GFLOP/s from the median call and their ratio (avx512_vs_onednn).
// Args: n, in, out, threads, product (0 forward with fused ReLU, 1 dW and db, 2 dW, db and dX
// with the relu mask and bf16 copies, as the model runs a hidden layer's backward).
void BM_Bf16EnginesAlternating(benchmark::State& state) {
  if (onednn_bf16_unsupported_reason() != nullptr || avx512_bf16_unsupported_reason() != nullptr) {
    state.SkipWithError("both bf16 engines are needed");
    return;
  }
  Bf16Layer l(kBf16OneDnn, state.range(0), state.range(1), state.range(2));
  const int64_t threads = state.range(3), product = state.range(4);
  static std::mutex mu;
  static std::set<std::tuple<int64_t, int64_t, int64_t>> validated;
  {
    std::lock_guard<std::mutex> lock(mu);
    if (validated.insert({l.n, l.in, l.out}).second) {
      for (int64_t e : {kBf16OneDnn, kBf16Avx512}) {
        l.bf16_engine = e;
        l.validate_run([&] {
          l.forward(false);
          l.backward(true, false);
        });
      }
    }
  }
  tbb::global_control limit(tbb::global_control::max_allowed_parallelism, threads);
  std::vector<double> seconds[2];
  for (auto _ : state) {
    for (int64_t e : {kBf16OneDnn, kBf16Avx512}) {
      l.bf16_engine = e;
      const double t0 = clock_s(threads == 1);
      if (product == 0) {
        l.forward(l.out != 10);
      } else {
        l.backward(product == 2, true);
      }
      seconds[e].push_back(clock_s(threads == 1) - t0);
    }
    benchmark::ClobberMemory();
  }
  const double flops = (product == 2 ? 4.0 : 2.0) * double(l.n * l.in * l.out);
  double gflops[2];
  for (int e = 0; e < 2; ++e) {
    std::sort(seconds[e].begin(), seconds[e].end());
    gflops[e] = flops / seconds[e][seconds[e].size() / 2] / 1e9;
  }
  state.counters["onednn_gflops"] = gflops[kBf16OneDnn];
  state.counters["avx512_gflops"] = gflops[kBf16Avx512];
  state.counters["avx512_vs_onednn"] = gflops[kBf16Avx512] / gflops[kBf16OneDnn];
}

BENCHMARK(BM_Bf16EnginesAlternating)
    ->Apply([](benchmark::internal::Benchmark* b) {
      for (int64_t n : {256, 128})
        for (auto [in, out] : {std::pair<int64_t, int64_t>{784, 1024}, {1024, 1024}, {1024, 10}})
          for (int64_t threads : {1, 2})
            for (int64_t product : {0, 1, 2}) b->Args({n, in, out, threads, product});
      b->ArgNames({"n", "in", "out", "threads", "product"});
    })
    ->Unit(benchmark::kMicrosecond);

// The reference MLP's parameter count, rounded: 784·1024 + 1024·1024 + 1024·10 + biases.
constexpr int64_t kParams = 1'900'000;

// One SGD step checked against the formula in double, once, before timing.
void validate_sgd(const std::vector<float>& p0, const std::vector<float>& g) {
  std::vector<float> p = p0, buf(p0.size());
  sgd_step(p.data(), g.data(), buf.data(), kParams, 0.1f, 0.9f, 0.01f, true);
  for (int64_t i = 0; i < kParams; ++i) {
    const double want = p0[i] - 0.1 * (double(g[i]) + 0.01 * p0[i]);
    if (std::fabs(p[i] - want) > 1e-6) fail("sgd_step p[" + std::to_string(i) + "]");
  }
}

// Args: threads. Bytes: p, g, buf read; p, buf written.
void BM_SgdStep(benchmark::State& state) {
  const std::vector<float> g = random_floats(kParams, 5);
  std::vector<float> p = random_floats(kParams, 6), buf(kParams);
  static std::once_flag once;
  std::call_once(once, [&] { validate_sgd(p, g); });
  tbb::global_control limit(tbb::global_control::max_allowed_parallelism, state.range(0));
  sgd_step(p.data(), g.data(), buf.data(), kParams, 1e-4f, 0.9f, 1e-4f, true);
  for (auto _ : state) {
    sgd_step(p.data(), g.data(), buf.data(), kParams, 1e-4f, 0.9f, 1e-4f, false);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * kParams * 5 * int64_t(sizeof(float)));
}

// One AdamW step from zero moments checked against the formula in double, once.
void validate_adam(const std::vector<float>& p0, const std::vector<float>& g) {
  std::vector<float> p = p0, m(p0.size()), v(p0.size());
  adam_step(p.data(), g.data(), m.data(), v.data(), kParams, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, 1,
            true);
  for (int64_t i = 0; i < kParams; ++i) {
    const double gi = g[i], mi = 0.1 * gi, vi = 0.001 * gi * gi;
    const double want =
        p0[i] * (1.0 - 1e-3 * 0.01) - (1e-3 / 0.1) * mi / (std::sqrt(vi) / std::sqrt(0.001) + 1e-8);
    if (std::fabs(p[i] - want) > 1e-6) fail("adam_step p[" + std::to_string(i) + "]");
  }
}

// Args: threads. Bytes: p, g, m, v read; p, m, v written.
void BM_AdamStep(benchmark::State& state) {
  const std::vector<float> g = random_floats(kParams, 7);
  std::vector<float> p = random_floats(kParams, 8), m(kParams), v(kParams);
  static std::once_flag once;
  std::call_once(once, [&] { validate_adam(p, g); });
  tbb::global_control limit(tbb::global_control::max_allowed_parallelism, state.range(0));
  for (auto _ : state) {
    adam_step(p.data(), g.data(), m.data(), v.data(), kParams, 1e-4f, 0.9f, 0.999f, 1e-8f, 0.01f,
              10, true);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * kParams * 7 * int64_t(sizeof(float)));
}

// STREAM triad a = b + s·c over kParams floats with the same chunking as the optimizer
// kernels: the memory-speed yardstick the optimizer steps are compared with (issue: >= 80%).
// Bytes: b, c read; a written (STREAM's convention, no write-allocate counted).
void BM_StreamTriad(benchmark::State& state) {
  const std::vector<float> b = random_floats(kParams, 9), c = random_floats(kParams, 10);
  std::vector<float> a(kParams);
  tbb::global_control limit(tbb::global_control::max_allowed_parallelism, state.range(0));
  for (auto _ : state) {
    float* ap = a.data();
    const float* bp = b.data();
    const float* cp = c.data();
    for_chunks(kParams, chunk_size(kParams, 16384), [=](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) ap[i] = bp[i] + 0.5f * cp[i];
    });
    benchmark::ClobberMemory();
  }
  if (a[7] != b[7] + 0.5f * c[7]) fail("stream triad");
  state.SetBytesProcessed(int64_t(state.iterations()) * kParams * 3 * int64_t(sizeof(float)));
}

BENCHMARK(BM_StreamTriad)
    ->ArgName("threads")
    ->Arg(1)
    ->Arg(2)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_SgdStep)
    ->ArgName("threads")
    ->Arg(1)
    ->Arg(2)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_AdamStep)
    ->ArgName("threads")
    ->Arg(1)
    ->Arg(2)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

}  // namespace
