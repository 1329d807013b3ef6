// Tests for kernels/dense: the three GEMMs of each engine against naive double loops at odd,
// multi-tile sizes, bitwise equality between 1 and 2 threads, the fused relu epilogue, a
// central-difference gradient check, and a malloc counter on the step's kernels.
#include "kernels/dense.h"

#include <gtest/gtest.h>
#include <tbb/task_arena.h>

#include <atomic>
#include <cmath>
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <tuple>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "kernels/activation.h"
#include "kernels/gemm_engines.h"
#include "tests/kernels/kernel_test_util.h"
#include "tests/kernels/tile_reports.h"

#include "tests/malloc_count.h"

namespace tessera::kernels {
namespace {

using test::bitwise_equal;
using test::expect_reports_final_once;
using test::random_vector;
using test::TileRecorder;
using test::with_threads;

struct Shape {
  int64_t n, in, out;
};

// 37x19x23 is one partial tile; 257x129x67 spans 3 row tiles of Eigen's and 2 of oneDNN's;
// 300x70x520 spans 3 (Eigen) / 2 (oneDNN) column tiles of y (out > 512) and 3 row tiles of
// oneDNN's dw; 129x600x40 spans 3 / 2 column tiles of dx (in > 512); 70x1100x30 spans 2 column
// tiles of oneDNN's dw (in > 1024), each staging the same block of dyᵀ.
// Rows 37, 257, 300, 129, 70 leave 1, 5, 2, 3 and 4 rows after tessera's engine's 6-row
// blocks; 530 rows take the weight gradient past one 512-deep block of staged dyᵀ, and 1100
// inputs the forward past one 1024-deep panel.
const Shape kShapes[] = {{37, 19, 23},  {257, 129, 67}, {300, 70, 520}, {129, 600, 40},
                         {70, 1100, 30}, {530, 45, 36}, {1, 1, 1}};

// Outputs of one forward + backward run.
template <class T>
struct DenseRun {
  std::vector<T> y, dw, db, dx;
};

template <class T>
struct DenseInputs {
  Shape s;
  std::vector<T> x, w, b, dy;
  explicit DenseInputs(Shape shape)
      : s(shape),
        x(random_vector<T>(s.n * s.in, 1)),
        w(random_vector<T>(s.out * s.in, 2)),
        b(random_vector<T>(s.out, 3)),
        dy(random_vector<T>(s.n * s.out, 4)) {}

  // With eigen, the Eigen engine explicitly; otherwise dense.h's (the build's engine for float).
  DenseRun<T> run(bool eigen = false) const {
    DenseRun<T> r{std::vector<T>(s.n * s.out), std::vector<T>(s.out * s.in), std::vector<T>(s.out),
                  std::vector<T>(s.n * s.in)};
    run_into(r, eigen);
    return r;
  }
  void run_into(DenseRun<T>& r, bool eigen) const {
    if (eigen) {
      eigen_dense_forward(x.data(), w.data(), b.data(), r.y.data(), s.n, s.in, s.out, false);
      eigen_dense_backward(dy.data(), x.data(), w.data(), r.dw.data(), r.db.data(), r.dx.data(),
                           s.n, s.in, s.out);
      return;
    }
    dense_forward(x.data(), w.data(), b.data(), r.y.data(), s.n, s.in, s.out);
    dense_backward(dy.data(), x.data(), w.data(), r.dw.data(), r.db.data(), r.dx.data(), s.n, s.in,
                   s.out);
  }
};

// Naive reference in double. Also returns, per output, Σ|terms| to scale the tolerance.
template <class T>
void reference(const DenseInputs<T>& d, DenseRun<double>& r, DenseRun<double>& mag) {
  const auto [n, in, out] = d.s;
  r = {std::vector<double>(n * out), std::vector<double>(out * in), std::vector<double>(out),
       std::vector<double>(n * in)};
  mag = r;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t o = 0; o < out; ++o) {
      double acc = d.b[o], m = std::fabs(double(d.b[o]));
      for (int64_t k = 0; k < in; ++k) {
        acc += double(d.x[i * in + k]) * double(d.w[o * in + k]);
        m += std::fabs(double(d.x[i * in + k]) * double(d.w[o * in + k]));
      }
      r.y[i * out + o] = acc;
      mag.y[i * out + o] = m;
    }
  for (int64_t o = 0; o < out; ++o)
    for (int64_t k = 0; k < in; ++k)
      for (int64_t i = 0; i < n; ++i) {
        const double t = double(d.dy[i * out + o]) * double(d.x[i * in + k]);
        r.dw[o * in + k] += t;
        mag.dw[o * in + k] += std::fabs(t);
      }
  for (int64_t i = 0; i < n; ++i)
    for (int64_t o = 0; o < out; ++o) {
      r.db[o] += d.dy[i * out + o];
      mag.db[o] += std::fabs(double(d.dy[i * out + o]));
    }
  for (int64_t i = 0; i < n; ++i)
    for (int64_t k = 0; k < in; ++k)
      for (int64_t o = 0; o < out; ++o) {
        const double t = double(d.dy[i * out + o]) * double(d.w[o * in + k]);
        r.dx[i * in + k] += t;
        mag.dx[i * in + k] += std::fabs(t);
      }
}

// |got - want| <= tol * Σ|terms| elementwise: a bound on any summation order's rounding.
template <class T>
void expect_close(const char* what, const std::vector<T>& got, const std::vector<double>& want,
                  const std::vector<double>& mag, double tol) {
  ASSERT_EQ(got.size(), want.size()) << what;
  double worst = 0.0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double err = std::fabs(double(got[i]) - want[i]);
    worst = std::max(worst, err);
    ASSERT_LE(err, tol * (mag[i] + 1e-30)) << what << "[" << i << "]";
  }
  std::printf("[ reference ] %-3s max|diff| %.3e\n", what, worst);
}

template <class T>
void check_against_reference(double tol, bool eigen = false) {
  for (const Shape& s : kShapes) {
    SCOPED_TRACE(testing::Message() << "n=" << s.n << " in=" << s.in << " out=" << s.out);
    const DenseInputs<T> d(s);
    DenseRun<T> one, two;
    with_threads(1, [&] { one = d.run(eigen); });
    with_threads(2, [&] { two = d.run(eigen); });
    EXPECT_TRUE(bitwise_equal(one.y, two.y));
    EXPECT_TRUE(bitwise_equal(one.dw, two.dw));
    EXPECT_TRUE(bitwise_equal(one.db, two.db));
    EXPECT_TRUE(bitwise_equal(one.dx, two.dx));
    DenseRun<double> want, mag;
    reference(d, want, mag);
    expect_close("y", one.y, want.y, mag.y, tol);
    expect_close("dw", one.dw, want.dw, mag.dw, tol);
    expect_close("db", one.db, want.db, mag.db, tol);
    expect_close("dx", one.dx, want.dx, mag.dx, tol);
  }
}

// The build's engine (avx512 or avx2 as the target has them, else oneDNN; or as TESSERA_GEMM
// says).
TEST(Dense, FloatMatchesReferenceAndThreadCountInvariant) {
  std::printf("[ engine    ] %s\n", gemm_engine_name());
  check_against_reference<float>(1e-5);
}

// The documented arithmetic of tessera's own engine (one std::fma chain per output in order, the
// bias added after; relu keeps NaN; dx's mask zeroes where x <= 0 and keeps NaN masks), as a
// scalar reference.
struct FmaChainRef {
  std::vector<float> y, dw, db, dx;
  FmaChainRef(const std::vector<float>& x, const std::vector<float>& w, const std::vector<float>& b,
              const std::vector<float>& dy, int64_t n, int64_t in, int64_t out)
      : y(n * out), dw(out * in), db(out), dx(n * in) {
    for (int64_t i = 0; i < n; ++i)
      for (int64_t o = 0; o < out; ++o) {
        float acc = 0.0f;
        for (int64_t k = 0; k < in; ++k) acc = std::fma(x[i * in + k], w[o * in + k], acc);
        acc += b[o];
        y[i * out + o] = acc < 0.0f ? 0.0f : acc;
      }
    for (int64_t o = 0; o < out; ++o) {
      float sum = 0.0f;
      for (int64_t i = 0; i < n; ++i) sum += dy[i * out + o];
      db[o] = sum;
      for (int64_t k = 0; k < in; ++k) {
        float acc = 0.0f;
        for (int64_t i = 0; i < n; ++i) acc = std::fma(dy[i * out + o], x[i * in + k], acc);
        dw[o * in + k] = acc;
      }
    }
    for (int64_t i = 0; i < n; ++i)
      for (int64_t k = 0; k < in; ++k) {
        float acc = 0.0f;
        for (int64_t o = 0; o < out; ++o) acc = std::fma(dy[i * out + o], w[o * in + k], acc);
        dx[i * in + k] = x[i * in + k] <= 0.0f ? 0.0f : acc;
      }
  }
};

// Same bits, or both NaN.
bool same_float(float a, float b) {
  return (std::isnan(a) && std::isnan(b)) || std::memcmp(&a, &b, sizeof a) == 0;
}

// An output buffer of `size` floats filled with NaN, followed by a guard of canaries.
struct Guarded {
  static constexpr int64_t kGuard = 80;
  static constexpr float kCanary = 12345.0f;
  std::vector<float> v;
  int64_t size;
  explicit Guarded(int64_t n) : v(n + kGuard, kCanary), size(n) {
    std::fill(v.begin(), v.begin() + n, std::nanf(""));
  }
  float* data() { return v.data(); }
  bool guard_intact() const {
    for (int64_t i = size; i < size + kGuard; ++i)
      if (std::memcmp(&v[i], &kCanary, sizeof kCanary) != 0) return false;
    return true;
  }
};

// tessera's own engine in each vector width this build has (AVX-512, AVX2): the same contract,
// the same bits.
struct SimdEngine {
  const char* name;
  void (*forward)(const float*, const float*, const float*, float*, int64_t, int64_t, int64_t,
                  bool);
  void (*backward)(const float*, const float*, const float*, float*, float*, float*, int64_t,
                   int64_t, int64_t, bool);
  // The same backward with a fused SGD update.
  void (*fused)(const float*, const float*, const float*, float*, float*, float*, int64_t,
                int64_t, int64_t, bool, const SgdUpdate*);
};

template <auto kBackward>
void without_sgd(const float* dy, const float* x, const float* w, float* dw, float* db, float* dx,
                 int64_t n, int64_t in, int64_t out, bool relu_dx) {
  kBackward(dy, x, w, dw, db, dx, n, in, out, relu_dx, nullptr);
}

// The SGD modes the fused update is checked in, one per call in turn: momentum with decay,
// momentum without, the first step (buffer set to the gradient), no momentum at all.
SgdUpdate sgd_mode(int k) {
  SgdUpdate u;
  u.lr = 0.05f;
  u.momentum = k == 3 ? 0.0f : 0.9f;
  u.wd = k == 1 ? 0.0f : 0.01f;
  u.first_step = k == 2;
  return u;
}

std::vector<SimdEngine> simd_engines() {
  std::vector<SimdEngine> e;
  if (avx512_available()) {
    e.push_back({"avx512", &avx512_dense_forward, &without_sgd<&avx512_dense_backward>,
                 &avx512_dense_backward});
  }
  if (avx2_available()) {
    e.push_back({"avx2", &avx2_dense_forward, &without_sgd<&avx2_dense_backward>,
                 &avx2_dense_backward});
  }
  return e;
}

// With the SGD update fused (mode `sgd_mode(mode)`), the backward also writes the layer's
// updated parameters and buffer: they must be sgd_update_serial's on the reference dw and db,
// bit for bit, and the inputs of the update stay as they were.
void expect_simd_exact(const std::vector<float>& x, const std::vector<float>& w,
                       const std::vector<float>& b, const std::vector<float>& dy, int64_t n,
                       int64_t in, int64_t out, int mode = 0) {
  const FmaChainRef want(x, w, b, dy, n, in, out);
  const int64_t count = out * in + out;  // the layer's run: w then the bias
  std::vector<float> params(w), buf = random_vector<float>(count, 77);
  params.insert(params.end(), b.begin(), b.end());
  SgdUpdate ref = sgd_mode(mode);
  std::vector<float> want_p(count), want_buf(count), grads(want.dw);
  grads.insert(grads.end(), want.db.begin(), want.db.end());
  ref.p = params.data(), ref.p_next = want_p.data();
  if (ref.momentum != 0.0f) ref.buf = buf.data(), ref.buf_next = want_buf.data();
  sgd_update_serial(ref, grads.data(), count);
  for (const SimdEngine& engine : simd_engines()) {
    for (int threads : {1, 2}) {
      SCOPED_TRACE(testing::Message() << engine.name << " threads=" << threads << " sgd mode " << mode);
      Guarded y(n * out), dw(out * in), db(out), dx(n * in), p_next(count), buf_next(count);
      SgdUpdate u = ref;
      u.p_next = p_next.data();
      if (u.buf != nullptr) u.buf_next = buf_next.data();
      Guarded dw2(out * in), db2(out), dx2(n * in);
      with_threads(threads, [&] {
        engine.forward(x.data(), w.data(), b.data(), y.data(), n, in, out, true);
        engine.backward(dy.data(), x.data(), w.data(), dw.data(), db.data(), dx.data(), n, in,
                        out, true);
        engine.fused(dy.data(), x.data(), w.data(), dw2.data(), db2.data(), dx2.data(), n, in,
                     out, true, &u);
      });
      if (u.buf == nullptr) std::fill(buf_next.v.begin(), buf_next.v.begin() + count, 0.0f);
      const std::vector<float> no_buf(count, 0.0f);
      const std::vector<float>* want_buf_next = u.buf == nullptr ? &no_buf : &want_buf;
      const std::vector<float>* want_p_next = &want_p;
      for (auto [what, got, ref] :
           {std::tuple{"y", &y, &want.y}, std::tuple{"dw", &dw, &want.dw},
            std::tuple{"db", &db, &want.db}, std::tuple{"dx", &dx, &want.dx},
            std::tuple{"dw (fused)", &dw2, &want.dw}, std::tuple{"db (fused)", &db2, &want.db},
            std::tuple{"dx (fused)", &dx2, &want.dx}, std::tuple{"p_next", &p_next, want_p_next},
            std::tuple{"buf_next", &buf_next, want_buf_next}}) {
        ASSERT_TRUE(got->guard_intact()) << what << ": written past its end";
        for (int64_t i = 0; i < got->size; ++i) {
          ASSERT_TRUE(same_float(got->v[i], (*ref)[i]))
              << what << "[" << i << "] = " << got->v[i] << ", want " << (*ref)[i];
        }
      }
    }
  }
}

// tessera's engine computes every output as one float FMA chain over the reduction in order,
// the bias added after it, whatever its tiles, panels, depth blocks and vector width: so
// FmaChainRef's scalar loops give the same bits at the MLP-like shapes too (k = 1100 crosses a
// 1024-deep panel of either width, n = 530 a 512-deep AVX-512 dW block); the bias
// gradient is a plain sum over rows in order. AVX-512 and AVX2 thus agree bit for bit.
TEST(Dense, SimdIsOneFmaChainPerOutput) {
  if (simd_engines().empty()) GTEST_SKIP() << "neither AVX-512 nor AVX2 engine in this build";
  for (const Shape& s : kShapes) {
    SCOPED_TRACE(testing::Message() << "n=" << s.n << " in=" << s.in << " out=" << s.out);
    const DenseInputs<float> d(s);
    expect_simd_exact(d.x, d.w, d.b, d.dy, s.n, s.in, s.out);
    if (HasFatalFailure()) return;
  }
}

// Every edge of the engine in each width, bitwise against the FMA-chain reference and with
// nothing written past the outputs: column edges (widths 1..80 around the 8- and 16-lane
// vectors and the 16-, 32- and 64-column panels), every row remainder of the 6- and 12-row
// blocks, reductions of 0, depths of exactly 1024 and past it (forward, dX and dW), several
// staged depth blocks of dW, tile edges; dX whose first row block packs full panels while
// accumulating over 1024-deep blocks (out = 1100: 1024 + 76; 2049: a last block 1 deep).
TEST(Dense, SimdEdgeShapesExactAndInBounds) {
  if (simd_engines().empty()) GTEST_SKIP() << "neither AVX-512 nor AVX2 engine in this build";
  std::vector<Shape> shapes;
  for (int64_t n : {1, 2, 3, 4, 5, 6, 7, 11, 12, 13})
    for (int64_t in : {1, 15, 16, 17, 31, 32, 33, 48, 63, 64, 65, 80})
      for (int64_t out : {1, 5, 16, 17, 32, 33, 47, 64, 65, 79}) shapes.push_back({n, in, out});
  for (Shape s : {Shape{0, 5, 7}, Shape{6, 0, 5}, Shape{0, 0, 3}, Shape{7, 5, 0}, Shape{3, 1024, 20},
                  Shape{5, 2049, 17}, Shape{1025, 17, 3}, Shape{1537, 3, 40}, Shape{513, 70, 257},
                  Shape{31, 40, 1025}, Shape{260, 1030, 18}, Shape{9, 513, 520},
                  Shape{1024, 17, 9}, Shape{257, 257, 23}, Shape{255, 9, 260},
                  Shape{13, 128, 1100}, Shape{7, 64, 2049}})
    shapes.push_back(s);
  uint64_t seed = 100;
  for (const Shape& s : shapes) {
    SCOPED_TRACE(testing::Message() << "n=" << s.n << " in=" << s.in << " out=" << s.out);
    const auto [n, in, out] = s;
    expect_simd_exact(random_vector<float>(n * in, seed), random_vector<float>(out * in, seed + 1),
                      random_vector<float>(out, seed + 2), random_vector<float>(n * out, seed + 3),
                      n, in, out, static_cast<int>(seed / 4 % 4));
    if (HasFatalFailure()) return;
    seed += 4;
  }
}

// NaN and infinities through the epilogues: relu keeps NaN (max(0, NaN) is NaN, as relu_tile),
// maps -inf to 0 and keeps +inf; dx's mask zeroes where x <= 0 (x = -0 included), keeps where
// x is NaN or > 0.
TEST(Dense, SimdEpiloguesPropagateNanAndInf) {
  if (simd_engines().empty()) GTEST_SKIP() << "neither AVX-512 nor AVX2 engine in this build";
  const int64_t n = 7, in = 37, out = 70;
  std::vector<float> x = random_vector<float>(n * in, 7), w = random_vector<float>(out * in, 8),
                     b = random_vector<float>(out, 9), dy = random_vector<float>(n * out, 10);
  const float inf = std::numeric_limits<float>::infinity();
  x[0 * in + 3] = std::nanf("");  // row 0 of y and column 3 of dw are NaN
  x[1 * in + 36] = -0.0f;         // masked
  x[2 * in + 20] = inf;           // row 2 of y: ±inf
  b[5] = -inf;                    // column 5 of y: -inf -> 0 (where not NaN)
  b[66] = inf;
  dy[4 * out + 1] = std::nanf("");  // row 4 of dx is NaN where not masked
  expect_simd_exact(x, w, b, dy, n, in, out);
}

// The build's engine (whichever: tessera's, oneDNN's or Eigen's pass after the products) with a
// fused SGD update through dense.h: the updated parameters and momentum are those of
// sgd_update_serial on the same call's gradients, bit for bit, and the gradients are still
// written; with 1 and 2 threads, relu mask or not.
TEST(Dense, BuildEngineFusedSgdIsTheSerialUpdate) {
  for (const Shape s : {Shape{129, 70, 130}, Shape{256, 784, 64}, Shape{7, 33, 10}}) {
    const DenseInputs<float> d(s);
    const int64_t count = s.out * s.in + s.out;
    std::vector<float> params(d.w), buf = random_vector<float>(count, 5);
    params.insert(params.end(), d.b.begin(), d.b.end());
    for (bool relu : {false, true}) {
      for (int threads : {1, 2}) {
        SCOPED_TRACE(testing::Message() << "n=" << s.n << " in=" << s.in << " out=" << s.out
                                        << " relu=" << relu << " threads=" << threads);
        std::vector<float> grads(count), dx(s.n * s.in), p_next(count), buf_next(count);
        SgdUpdate u = sgd_mode(0);
        u.p = params.data(), u.p_next = p_next.data(), u.buf = buf.data(), u.buf_next = buf_next.data();
        with_threads(threads, [&] {
          (relu ? dense_backward_relu<float> : dense_backward<float>)(
              d.dy.data(), d.x.data(), d.w.data(), grads.data(), grads.data() + s.out * s.in,
              dx.data(), s.n, s.in, s.out, &u);
        });
        std::vector<float> want_p(count), want_buf(count);
        SgdUpdate ref = u;
        ref.p_next = want_p.data(), ref.buf_next = want_buf.data();
        sgd_update_serial(ref, grads.data(), count);
        EXPECT_TRUE(bitwise_equal(p_next, want_p)) << "parameters";
        EXPECT_TRUE(bitwise_equal(buf_next, want_buf)) << "momentum";
        const DenseRun<float> plain = d.run();
        EXPECT_TRUE(bitwise_equal(std::vector<float>(grads.begin(), grads.begin() + s.out * s.in), plain.dw))
            << "the gradient";
      }
    }
  }
}

// A layer with no inputs (in = 0) has no dw tiles, which is where the engines sum db: db must
// still come out as dy's column sums ("all overwritten"), on every engine.
TEST(Dense, BackwardWithoutInputsStillWritesBiasGradient) {
  const int64_t n = 6, in = 0, out = 5;
  const std::vector<float> dy = random_vector<float>(n * out, 11);
  std::vector<float> want(out, 0.0f);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t o = 0; o < out; ++o) want[o] += dy[i * out + o];
  using Backward = void (*)(const float*, const float*, const float*, float*, float*, float*,
                            int64_t, int64_t, int64_t, bool);
  std::vector<std::pair<const char*, Backward>> engines = {{"eigen", &eigen_dense_backward<float>}};
  for (const SimdEngine& e : simd_engines()) engines.push_back({e.name, e.backward});
  if (onednn_available()) engines.push_back({"onednn", &onednn_dense_backward});
  for (auto [name, backward] : engines) {
    for (bool relu : {false, true}) {
      std::vector<float> db(out, std::nanf(""));
      backward(dy.data(), nullptr, nullptr, nullptr, db.data(), nullptr, n, in, out, relu);
      EXPECT_TRUE(bitwise_equal(db, want)) << name << " relu=" << relu;
    }
  }
  std::vector<float> db(out, std::nanf(""));
  dense_backward(dy.data(), static_cast<const float*>(nullptr), static_cast<const float*>(nullptr),
                 static_cast<float*>(nullptr), db.data(), static_cast<float*>(nullptr), n, in, out);
  EXPECT_TRUE(bitwise_equal(db, want)) << "dense_backward";
}

// The float weight-gradient tiles report each dW and db element exactly once, final, in
// blocks of the engine's tile rows (the gradient reducer's units), whatever tiles the engine
// runs: the AVX-512 engine runs 512-row dW tiles where every thread still gets one and
// reports them in halves. 1100 rows make 512-row tiles with a short last one; 520 rows on 4
// threads (an arena of 4, whatever the cores) take the AVX-512 engine back to 256-row tiles.
TEST(Dense, ReportsFinalWeightGradientTiles) {
  using Backward = void (*)(const float*, const float*, const float*, float*, float*, float*,
                            int64_t, int64_t, int64_t, bool);
  std::vector<std::tuple<const char*, Backward, int64_t>> engines = {
      {"dense_backward_relu",
       [](const float* dy, const float* x, const float* w, float* dw, float* db, float* dx,
          int64_t n, int64_t in, int64_t out, bool) {
         dense_backward_relu(dy, x, w, dw, db, dx, n, in, out);
       },
       dense_tile_rows()}};
  for (const SimdEngine& e : simd_engines()) engines.push_back({e.name, e.backward, kSimdTileRows});
  for (const Shape s : {Shape{129, 1024 + 33, 1100}, Shape{300, 70, 520}, Shape{7, 33, 10}}) {
    const DenseInputs<float> d(s);
    for (auto [name, backward, tile_rows] : engines) {
      for (int threads : {1, 2, 4}) {
        SCOPED_TRACE(testing::Message() << name << " n=" << s.n << " in=" << s.in
                                        << " out=" << s.out << " threads=" << threads);
        std::vector<float> dw(s.out * s.in), db(s.out), dx(s.n * s.in);
        TileRecorder rec;
        {
          ObserveTiles guard(rec);
          // The limit first, then an arena of its own, so 4 threads count as 4 on a 2-core
          // machine too.
          with_threads(threads, [&] {
            tbb::task_arena arena(threads);
            arena.execute([&] {
              backward(d.dy.data(), d.x.data(), d.w.data(), dw.data(), db.data(), dx.data(), s.n,
                       s.in, s.out, true);
            });
          });
        }
        expect_reports_final_once(rec, dw, db, s.in, s.out, tile_rows);
        if (HasFatalFailure()) return;
      }
    }
  }
}

// tessera's engine tests dW's values in registers as it stores them, so the gradient reducer
// need not read them again: every dW report carries a verdict, "finite" only for a block with no
// NaN or infinity, never "finite" for one with any; "non-finite" only where the reporting
// tile's columns hold one. Clean inputs, an infinity in dy (a whole row of dW: the first, the
// last), a NaN in x (a whole column: one in a whole vector, the last one in a partial vector),
// on 1 and 2 threads, for each SIMD width. The weight gradient takes two staged depth blocks at
// 530 rows (AVX-512) and at 1100 (AVX2 as well).
TEST(Dense, WeightGradientTilesReportWhetherFinite) {
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (const Shape s : {Shape{300, 70, 520}, Shape{129, 1024 + 33, 1100}, Shape{530, 45, 36},
                        Shape{1100, 70, 20}}) {
    for (int poison : {0, 1, 2, 3, 4}) {
      DenseInputs<float> d(s);
      if (poison == 1) d.dy[(s.n / 2) * s.out] = inf;              // dW's first row
      if (poison == 2) d.dy[(s.n / 2) * s.out + s.out - 1] = inf;  // dW's last row
      if (poison == 3) d.x[(s.n - 1) * s.in + s.in / 3] = nan;     // dW's column in / 3
      if (poison == 4) d.x[s.in - 1] = nan;                         // dW's last column
      for (const SimdEngine& e : simd_engines()) {
        for (int threads : {1, 2}) {
          SCOPED_TRACE(testing::Message() << e.name << " n=" << s.n << " in=" << s.in
                                          << " out=" << s.out << " poison=" << poison
                                          << " threads=" << threads);
          std::vector<float> dw(s.out * s.in), db(s.out), dx(s.n * s.in);
          TileRecorder rec;
          {
            ObserveTiles guard(rec);
            with_threads(threads, [&] {
              e.backward(d.dy.data(), d.x.data(), d.w.data(), dw.data(), db.data(), dx.data(),
                         s.n, s.in, s.out, true);
            });
          }
          int non_finite_reports = 0;
          for (const TileRecorder::Report& rep : rec.reports) {
            if (rep.m != dw.data()) continue;
            const bool block_bad = std::any_of(rep.values.begin(), rep.values.end(),
                                               [](float v) { return !std::isfinite(v); });
            bool columns_bad = false;
            for (int64_t r = 0; r < s.out; ++r) {
              for (int64_t c = rep.c0; c < rep.c1; ++c) columns_bad |= !std::isfinite(dw[r * s.in + c]);
            }
            ASSERT_NE(rep.finite, Finite::kUnknown) << "rows " << rep.r0 << ".." << rep.r1;
            if (block_bad) {
              ASSERT_EQ(rep.finite, Finite::kNonFinite) << "rows " << rep.r0 << ".." << rep.r1;
            }
            if (rep.finite == Finite::kNonFinite) {
              ++non_finite_reports;
              ASSERT_TRUE(columns_bad) << "rows " << rep.r0 << ".." << rep.r1 << " cols "
                                       << rep.c0 << ".." << rep.c1;
            }
          }
          EXPECT_EQ(non_finite_reports > 0, poison != 0);
        }
      }
    }
  }
}

TEST(Dense, EigenFloatMatchesReferenceAndThreadCountInvariant) {
  check_against_reference<float>(1e-5, true);
}

// y = relu(x·wᵀ + b) in one pass equals the product followed by activation_forward's relu: the
// same values (-0 and +0 compare equal), for 1 and 2 threads, for the build's engine and Eigen.
TEST(Dense, FusedReluEqualsForwardThenRelu) {
  for (const Shape& s : kShapes) {
    SCOPED_TRACE(testing::Message() << "n=" << s.n << " in=" << s.in << " out=" << s.out);
    const DenseInputs<float> d(s);
    for (bool eigen : {false, true}) {
      std::vector<float> want(s.n * s.out), one(want.size()), two(want.size());
      if (eigen) {
        eigen_dense_forward(d.x.data(), d.w.data(), d.b.data(), want.data(), s.n, s.in, s.out,
                            false);
      } else {
        dense_forward(d.x.data(), d.w.data(), d.b.data(), want.data(), s.n, s.in, s.out);
      }
      activation_forward(Activation::kRelu, want.data(), want.data(), s.n * s.out);
      for (auto [threads, got] : {std::pair{1, &one}, std::pair{2, &two}}) {
        with_threads(threads, [&] {
          if (eigen) {
            eigen_dense_forward(d.x.data(), d.w.data(), d.b.data(), got->data(), s.n, s.in, s.out,
                                true);
          } else {
            dense_forward_relu(d.x.data(), d.w.data(), d.b.data(), got->data(), s.n, s.in, s.out);
          }
        });
      }
      EXPECT_TRUE(bitwise_equal(one, two)) << "eigen=" << eigen;
      int64_t positive = 0;
      for (size_t i = 0; i < want.size(); ++i) {
        ASSERT_EQ(one[i], want[i]) << "eigen=" << eigen << " [" << i << "]";
        positive += want[i] > 0.0f;
      }
      if (want.size() > 100) {
        EXPECT_GT(positive, 0) << "no positive output: test is vacuous";
        EXPECT_LT(positive, int64_t(want.size())) << "relu never clipped";
      }
    }
  }
}

TEST(Dense, DoubleMatchesReferenceAndThreadCountInvariant) {
  check_against_reference<double>(1e-13);
}

// dx = (dy·w) ⊙ [x > 0] in the dx tiles' epilogue equals dense_backward followed by
// activation_backward's relu with z = a = x, bitwise (a selection, no arithmetic), for 1 and 2
// threads, for the build's engine and Eigen. dw and db are unchanged.
TEST(Dense, FusedReluBackwardEqualsBackwardThenRelu) {
  for (const Shape& s : kShapes) {
    SCOPED_TRACE(testing::Message() << "n=" << s.n << " in=" << s.in << " out=" << s.out);
    DenseInputs<float> d(s);
    for (float& v : d.x) v = v < 0.0f ? 0.0f : v;  // x is a relu output, as in the model
    for (bool eigen : {false, true}) {
      DenseRun<float> want = d.run(eigen);
      activation_backward(Activation::kRelu, d.x.data(), d.x.data(), want.dx.data(),
                          want.dx.data(), s.n * s.in);
      for (int threads : {1, 2}) {
        DenseRun<float> got = d.run(eigen);
        std::fill(got.dx.begin(), got.dx.end(), 7.0f);
        with_threads(threads, [&] {
          if (eigen) {
            eigen_dense_backward(d.dy.data(), d.x.data(), d.w.data(), got.dw.data(), got.db.data(),
                                 got.dx.data(), s.n, s.in, s.out, true);
          } else {
            dense_backward_relu(d.dy.data(), d.x.data(), d.w.data(), got.dw.data(), got.db.data(),
                                got.dx.data(), s.n, s.in, s.out);
          }
        });
        EXPECT_TRUE(bitwise_equal(got.dx, want.dx)) << "eigen=" << eigen << " threads=" << threads;
        EXPECT_TRUE(bitwise_equal(got.dw, want.dw)) << "eigen=" << eigen << " threads=" << threads;
        EXPECT_TRUE(bitwise_equal(got.db, want.db)) << "eigen=" << eigen << " threads=" << threads;
      }
    }
  }
}

// nullptr bias, db and dx are skipped and change nothing else.
TEST(Dense, OptionalOutputsSkipped) {
  const DenseInputs<float> d({70, 33, 290});
  const DenseRun<float> full = d.run();
  const auto [n, in, out] = d.s;
  std::vector<float> y(n * out), dw(out * in, -1.0f);
  dense_forward(d.x.data(), d.w.data(), static_cast<const float*>(nullptr), y.data(), n, in, out);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t o = 0; o < out; ++o) y[i * out + o] += d.b[o];
  // Same adds in the same order as the fused bias, so bitwise equal.
  EXPECT_TRUE(bitwise_equal(y, full.y));
  dense_backward(d.dy.data(), d.x.data(), d.w.data(), dw.data(), static_cast<float*>(nullptr),
                 static_cast<float*>(nullptr), n, in, out);
  EXPECT_TRUE(bitwise_equal(dw, full.dw));
}

// L = Σ r ⊙ y with random r, so dL/dy = r: dense_backward(dy = r) must match central
// differences of L in x, w and b.
TEST(Dense, GradientCheck) {
  const int64_t n = 6, in = 9, out = 5;
  std::vector<double> x = random_vector<double>(n * in, 11),
                      w = random_vector<double>(out * in, 12), b = random_vector<double>(out, 13),
                      r = random_vector<double>(n * out, 14);
  std::vector<double> y(n * out), dw(out * in), db(out), dx(n * in);
  auto loss = [&] {
    dense_forward(x.data(), w.data(), b.data(), y.data(), n, in, out);
    double l = 0.0;
    for (int64_t i = 0; i < n * out; ++i) l += r[i] * y[i];
    return l;
  };
  dense_backward(r.data(), x.data(), w.data(), dw.data(), db.data(), dx.data(), n, in, out);
  EXPECT_LT(test::grad_check_score("dense dx", dx, test::numeric_gradient(x, loss)), 1e-6);
  EXPECT_LT(test::grad_check_score("dense dw", dw, test::numeric_gradient(w, loss)), 1e-6);
  EXPECT_LT(test::grad_check_score("dense db", db, test::numeric_gradient(b, loss)), 1e-6);
}

// bf16 copies of a DenseInputs' operands, as the model keeps them: x, w, dy and dyᵀ.
struct Bf16Inputs {
  std::vector<bf16> x, w, dy, dyt;
  explicit Bf16Inputs(const DenseInputs<float>& d)
      : x(d.x.size()), w(d.w.size()), dy(d.dy.size()), dyt(d.dy.size()) {
    to_bf16(d.x.data(), x.data(), int64_t(x.size()));
    to_bf16(d.w.data(), w.data(), int64_t(w.size()));
    to_bf16(d.dy.data(), dy.data(), dyt.data(), d.s.n, d.s.out);
  }
};

// Outputs of one bf16 forward + backward, with the bf16 copies of y and dx.
struct Bf16Run {
  DenseRun<float> f;
  std::vector<bf16> y16, dx16, dxt16;
};

Bf16Run run_bf16(const DenseInputs<float>& d, const Bf16Inputs& h, bool relu, int threads) {
  const auto [n, in, out] = d.s;
  Bf16Run r{{std::vector<float>(n * out), std::vector<float>(out * in), std::vector<float>(out),
             std::vector<float>(n * in)},
            std::vector<bf16>(n * out), std::vector<bf16>(n * in), std::vector<bf16>(n * in)};
  with_threads(threads, [&] {
    dense_forward_bf16(h.x.data(), h.w.data(), d.b.data(), r.f.y.data(), r.y16.data(), n, in,
                       out, relu);
    DenseBf16Backward a;
    a.dy = d.dy.data();
    a.dy16 = h.dy.data();
    a.dyt16 = h.dyt.data();
    a.x16 = h.x.data();
    a.w16 = h.w.data();
    a.relu_x = relu ? d.x.data() : nullptr;
    a.dw = r.f.dw.data();
    a.db = r.f.db.data();
    a.dx = r.f.dx.data();
    a.dx16 = r.dx16.data();
    a.dxt16 = r.dxt16.data();
    dense_backward_bf16(a, n, in, out);
  });
  return r;
}

bool bits_equal(const std::vector<bf16>& a, const std::vector<bf16>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(bf16)) == 0;
}

// bf16 products: bitwise the same for 1 and 2 threads; equal to float64 products of the
// bf16-rounded operands within float accumulation rounding (so they are bf16 inputs with float
// accumulation, nothing coarser); within bf16 input rounding (2·2⁻⁹ per term) of the float64
// products of the float operands; db exactly the float path's; the bf16 copies of y and dx
// (plain and transposed) exactly bf16(y), bf16(dx).
TEST(Dense, Bf16MatchesReferenceAndThreadCountInvariant) {
  if (const char* why = bf16_unsupported_reason()) {
    std::printf("[ bf16      ] unsupported here: %s\n", why);
    const DenseInputs<float> d({4, 3, 2});
    const Bf16Inputs h(d);
    std::vector<float> y(8);
    EXPECT_THROW(dense_forward_bf16(h.x.data(), h.w.data(), nullptr, y.data(), nullptr, 4, 3, 2,
                                    false),
                 std::logic_error);
    return;
  }
  for (const Shape& s : kShapes) {
    SCOPED_TRACE(testing::Message() << "n=" << s.n << " in=" << s.in << " out=" << s.out);
    const DenseInputs<float> d(s);
    const Bf16Inputs h(d);
    const Bf16Run one = run_bf16(d, h, false, 1), two = run_bf16(d, h, false, 2);
    EXPECT_TRUE(bitwise_equal(one.f.y, two.f.y));
    EXPECT_TRUE(bitwise_equal(one.f.dw, two.f.dw));
    EXPECT_TRUE(bitwise_equal(one.f.dx, two.f.dx));
    EXPECT_TRUE(bits_equal(one.dx16, two.dx16));
    EXPECT_TRUE(bitwise_equal(one.f.db, d.run().db)) << "db must sum the float dy";

    DenseInputs<float> rounded = d;  // the operands the products actually see
    for (auto* v : {&rounded.x, &rounded.w, &rounded.dy}) {
      for (float& f : *v) f = to_float(to_bf16(f));
    }
    DenseRun<double> want, mag;
    reference(rounded, want, mag);
    expect_close("y", one.f.y, want.y, mag.y, 1e-5);
    expect_close("dw", one.f.dw, want.dw, mag.dw, 1e-5);
    expect_close("dx", one.f.dx, want.dx, mag.dx, 1e-5);
    reference(d, want, mag);
    expect_close("y", one.f.y, want.y, mag.y, 2.0 / 512 + 1e-5);
    expect_close("dw", one.f.dw, want.dw, mag.dw, 2.0 / 512 + 1e-5);
    expect_close("dx", one.f.dx, want.dx, mag.dx, 2.0 / 512 + 1e-5);

    std::vector<bf16> y16(one.f.y.size()), dx16(one.f.dx.size()), dxt16(dx16.size());
    to_bf16(one.f.y.data(), y16.data(), int64_t(y16.size()));
    to_bf16(one.f.dx.data(), dx16.data(), dxt16.data(), s.n, s.in);
    EXPECT_TRUE(bits_equal(one.y16, y16));
    EXPECT_TRUE(bits_equal(one.dx16, dx16));
    EXPECT_TRUE(bits_equal(one.dxt16, dxt16));
  }
}

// The fused relu epilogue and relu-backward mask of the bf16 products select exactly what the
// unfused products followed by relu select, for 1 and 2 threads.
TEST(Dense, Bf16FusedReluEqualsUnfused) {
  if (bf16_unsupported_reason() != nullptr) GTEST_SKIP() << bf16_unsupported_reason();
  for (const Shape& s : kShapes) {
    SCOPED_TRACE(testing::Message() << "n=" << s.n << " in=" << s.in << " out=" << s.out);
    DenseInputs<float> d(s);
    for (float& v : d.x) v = v < 0.0f ? 0.0f : v;  // x is a relu output, as in the model
    const Bf16Inputs h(d);
    Bf16Run want = run_bf16(d, h, false, 1);
    activation_forward(Activation::kRelu, want.f.y.data(), want.f.y.data(), s.n * s.out);
    activation_backward(Activation::kRelu, d.x.data(), d.x.data(), want.f.dx.data(),
                        want.f.dx.data(), s.n * s.in);
    for (int threads : {1, 2}) {
      const Bf16Run got = run_bf16(d, h, true, threads);
      for (size_t i = 0; i < want.f.y.size(); ++i) ASSERT_EQ(got.f.y[i], want.f.y[i]) << i;
      EXPECT_TRUE(bitwise_equal(got.f.dx, want.f.dx)) << "threads=" << threads;
      EXPECT_TRUE(bitwise_equal(got.f.dw, want.f.dw)) << "threads=" << threads;
    }
  }
}

// Round to nearest even, NaN kept, infinities and signed zeros exact.
TEST(Dense, Bf16Rounding) {
  EXPECT_EQ(to_bf16(1.0f).bits, 0x3f80);
  EXPECT_EQ(to_bf16(-2.0f).bits, 0xc000);
  EXPECT_EQ(to_bf16(-0.0f).bits, 0x8000);
  EXPECT_EQ(to_float(to_bf16(1.0f + 1.0f / 256)), 1.0f);               // tie: to even (down)
  EXPECT_EQ(to_float(to_bf16(1.0f + 3.0f / 256)), 1.0f + 1.0f / 64);   // tie: to even (up)
  EXPECT_EQ(to_float(to_bf16(1.0f + 1.0f / 256 + 1e-6f)), 1.0f + 1.0f / 128);
  EXPECT_TRUE(std::isinf(to_float(to_bf16(INFINITY))));
  EXPECT_TRUE(std::isnan(to_float(to_bf16(NAN))));
  uint32_t nan_bits = 0x7f800001;  // a NaN whose payload would round into infinity
  float tiny_nan;
  std::memcpy(&tiny_nan, &nan_bits, 4);
  EXPECT_TRUE(std::isnan(to_float(to_bf16(tiny_nan))));
  EXPECT_TRUE(std::isinf(to_float(to_bf16(3.4e38f))));  // above bf16's largest finite value
}

#if TESSERA_COUNT_MALLOC
// malloc calls of one forward + backward (with dense_forward_relu too) after warm-up.
int64_t count_step_mallocs(const DenseInputs<float>& d, DenseRun<float>& r, bool eigen) {
  const auto [n, in, out] = d.s;
  malloc_count::calls = 0;
  malloc_count::armed = true;
  d.run_into(r, eigen);
  if (eigen) {
    eigen_dense_forward(d.x.data(), d.w.data(), d.b.data(), r.y.data(), n, in, out, true);
  } else {
    dense_forward_relu(d.x.data(), d.w.data(), d.b.data(), r.y.data(), n, in, out);
  }
  malloc_count::armed = false;
  return malloc_count::calls.load();
}


const Shape kAllocShapes[] = {{256, 784, 1024}, {300, 70, 520}};

// Eigen's own `Map.noalias() = a * b` mallocs its packing panels for products this size; the
// Eigen engine passes fixed stack panels instead and must stay off the heap.
TEST(Dense, EigenNeverAllocates) {
  malloc_count::expect_live();
  for (const Shape s : kAllocShapes) {
    const DenseInputs<float> d(s);
    DenseRun<float> r = d.run(true);  // warm oneTBB's arena and task pools
    for (int threads : {1, 2}) {
      int64_t calls = -1;
      with_threads(threads, [&] {
        d.run_into(r, true);  // warm at this thread count
        calls = count_step_mallocs(d, r, true);
      });
      EXPECT_EQ(calls, 0) << "threads=" << threads << " n=" << s.n << " in=" << s.in
                          << " out=" << s.out;
    }
  }
}

// The build's engine. tessera's (AVX-512, AVX2) and Eigen: zero. oneDNN 2.6 cannot reach zero:
// every dnnl_primitive_execute builds an execution context (a std::unordered_map of its
// arguments and per-call resource bookkeeping) on the heap, a few small blocks per tile, even
// with a user-owned scratchpad, cached primitives and per-thread memory objects (which this engine
// creates once, at warm-up). So for oneDNN the test asserts the count is bounded per tile and
// the same every step: nothing grows, no new primitive or buffer is created after warm-up.
TEST(Dense, StepAllocationsBoundedAndConstant) {
  malloc_count::expect_live();
  const bool onednn = std::string(gemm_engine_name()) == "onednn";
  for (const Shape s : kAllocShapes) {
    const DenseInputs<float> d(s);
    DenseRun<float> r = d.run();
    const auto tiles = [](int64_t m, int64_t n, int64_t tr, int64_t tc) {
      return ((m + tr - 1) / tr) * ((n + tc - 1) / tc);
    };
    // forward + fused-relu forward + dw + dx tiles of one counted step.
    const int64_t step_tiles =
        onednn ? 2 * tiles(s.n, s.out, kOneDnnTileRows, kOneDnnTileCols) +
                     tiles(s.out, s.in, kOneDnnDwTileRows, kOneDnnRowTileCols) +
                     tiles(s.n, s.in, kOneDnnTileRows, kOneDnnTileCols)
               : 2 * tiles(s.n, s.out, kTileRows, kTileCols) +
                     tiles(s.out, s.in, kTileRows, kTileCols) +
                     tiles(s.n, s.in, kTileRows, kTileCols);
    for (int threads : {1, 2}) {
      std::vector<int64_t> counts;
      with_threads(threads, [&] {
        for (int warm = 0; warm < 2; ++warm) count_step_mallocs(d, r, false);
        for (int step = 0; step < 5; ++step) counts.push_back(count_step_mallocs(d, r, false));
      });
      std::printf("[ mallocs   ] %s threads=%d n=%ld in=%ld out=%ld: %ld per step, %ld tiles\n",
                  gemm_engine_name(), threads, long(s.n), long(s.in), long(s.out),
                  long(counts[0]), long(step_tiles));
      for (int64_t c : counts) {
        EXPECT_EQ(c, counts[0]) << "allocations per step vary: threads=" << threads;
      }
      if (onednn) {
        EXPECT_LE(counts[0], 16 * step_tiles) << "threads=" << threads;
      } else {
        EXPECT_EQ(counts[0], 0) << "threads=" << threads;
      }
    }
  }
}
#endif

}  // namespace
}  // namespace tessera::kernels
