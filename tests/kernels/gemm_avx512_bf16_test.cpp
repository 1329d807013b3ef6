// Tests for tessera's AVX512_BF16 engine (kernels/gemm_avx512_bf16.cpp): the three products
// against double loops over the same bf16 operands, at odd shapes and odd depths, with every
// optional epilogue on and off; 1 and 2 threads bitwise equal; dW tiles reported final; and no
// heap allocation after warm-up (malloc interposed: this file is its own test binary).
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <stdexcept>
#include <vector>

#include "kernels/dense.h"
#include "kernels/gemm_engines.h"
#include "kernels/tile_observer.h"
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

// n = 1, 7, 129, 250, 256 (129: 21 full 6-row blocks and 3 rows; 7 and 129 are odd dW
// depths); in, out = 10 (one-vector panels, in 16-row blocks), 33 (a partial 16-column vector),
// 784, 1024 (several column tiles, several depth blocks); 1025 x 513: odd depths over several
// depth blocks for the forward and dX.
const Shape kShapes[] = {{1, 10, 33},      {7, 33, 10},     {7, 1025, 513},
                         {129, 33, 784},   {129, 784, 1024}, {256, 1024, 33},
                         {256, 1024, 10},  {250, 784, 10}};

// Which optional inputs and outputs a run passes (nullptr otherwise).
struct Options {
  bool bias, relu, y16, db, dx, relu_x, dx16, dxt16;
};
const Options kAll{true, true, true, true, true, true, true, true};
const Options kNone{false, false, false, false, false, false, false, false};
const Options kPlain{true, false, false, true, true, false, true, false};  // dx16 without dxt16

// One layer's operands: float x (n, in), w (out, in), b (out), dy (n, out), and their bf16
// copies (dy also transposed), as the model keeps them. x is a relu output (>= 0, with zeros).
struct Operands {
  Shape s;
  std::vector<float> x, w, b, dy;
  std::vector<bf16> x16, w16, dy16, dyt16;
  explicit Operands(Shape shape)
      : s(shape),
        x(random_vector<float>(s.n * s.in, 1, -0.5, 1.0)),
        w(random_vector<float>(s.out * s.in, 2)),
        b(random_vector<float>(s.out, 3)),
        dy(random_vector<float>(s.n * s.out, 4)),
        x16(x.size()),
        w16(w.size()),
        dy16(dy.size()),
        dyt16(dy.size()) {
    for (float& v : x) v = v < 0.0f ? 0.0f : v;
    to_bf16(x.data(), x16.data(), int64_t(x.size()));
    to_bf16(w.data(), w16.data(), int64_t(w.size()));
    to_bf16(dy.data(), dy16.data(), dyt16.data(), s.n, s.out);
  }
};

struct Outputs {
  std::vector<float> y, dw, db, dx;
  std::vector<bf16> y16, dx16, dxt16;
};

Outputs run(const Operands& d, const Options& o, int threads) {
  const auto [n, in, out] = d.s;
  Outputs r{std::vector<float>(n * out), std::vector<float>(out * in), std::vector<float>(out),
            std::vector<float>(n * in),  std::vector<bf16>(n * out),  std::vector<bf16>(n * in),
            std::vector<bf16>(n * in)};
  with_threads(threads, [&] {
    avx512_dense_forward_bf16(d.x16.data(), d.w16.data(), o.bias ? d.b.data() : nullptr,
                              r.y.data(), o.y16 ? r.y16.data() : nullptr, n, in, out, o.relu);
    DenseBf16Backward a;
    a.dy = d.dy.data();
    a.dy16 = d.dy16.data();
    a.dyt16 = d.dyt16.data();
    a.x16 = d.x16.data();
    a.w16 = d.w16.data();
    a.relu_x = o.relu_x ? d.x.data() : nullptr;
    a.dw = r.dw.data();
    a.db = o.db ? r.db.data() : nullptr;
    a.dx = o.dx ? r.dx.data() : nullptr;
    a.dx16 = o.dx16 ? r.dx16.data() : nullptr;
    a.dxt16 = o.dxt16 ? r.dxt16.data() : nullptr;
    avx512_dense_backward_bf16(a, n, in, out);
  });
  return r;
}

std::vector<double> widen(const std::vector<bf16>& v) {
  std::vector<double> d(v.size());
  for (size_t i = 0; i < v.size(); ++i) d[i] = to_float(v[i]);
  return d;
}

// got within tol·Σ|terms| of the double product of the same bf16 operands (float32 accumulation
// rounding over up to 1025 terms stays far below 1e-5 of Σ|terms| for random data).
void expect_close(const char* what, const std::vector<float>& got, const std::vector<double>& want,
                  const std::vector<double>& mag) {
  ASSERT_EQ(got.size(), want.size());
  int64_t bad = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::fabs(double(got[i]) - want[i]) > 1e-5 * mag[i] + 1e-30 && bad++ < 5) {
      ADD_FAILURE() << what << "[" << i << "] = " << got[i] << ", reference " << want[i];
    }
  }
  EXPECT_EQ(bad, 0) << what;
}

// The three products in double from the bf16 operands, with Σ|a||b| per output.
struct Reference {
  std::vector<double> y, ymag, dw, dwmag, dx, dxmag;
  explicit Reference(const Operands& d) {
    const auto [n, in, out] = d.s;
    const std::vector<double> x = widen(d.x16), w = widen(d.w16), dy = widen(d.dy16);
    y.assign(n * out, 0.0), ymag = y;
    dw.assign(out * in, 0.0), dwmag = dw;
    dx.assign(n * in, 0.0), dxmag = dx;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t o = 0; o < out; ++o) {
        double acc = 0.0, m = 0.0;
        for (int64_t k = 0; k < in; ++k) {
          acc += x[i * in + k] * w[o * in + k];
          m += std::fabs(x[i * in + k] * w[o * in + k]);
        }
        y[i * out + o] = acc, ymag[i * out + o] = m;
      }
    for (int64_t i = 0; i < n; ++i)
      for (int64_t o = 0; o < out; ++o) {
        const double g = dy[i * out + o];
        for (int64_t k = 0; k < in; ++k) {
          dw[o * in + k] += g * x[i * in + k], dwmag[o * in + k] += std::fabs(g * x[i * in + k]);
          dx[i * in + k] += g * w[o * in + k], dxmag[i * in + k] += std::fabs(g * w[o * in + k]);
        }
      }
  }
};

std::vector<bf16> to_bf16_copy(const std::vector<float>& v) {
  std::vector<bf16> h(v.size());
  to_bf16(v.data(), h.data(), int64_t(v.size()));
  return h;
}

bool bits_equal(const std::vector<bf16>& a, const std::vector<bf16>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(bf16)) == 0;
}

TEST(GemmAvx512Bf16, RefusesWhenUnsupported) {
  const char* why = avx512_bf16_unsupported_reason();
  if (why == nullptr) GTEST_SKIP() << "this CPU runs the kernels";
  const Operands d({4, 3, 2});
  std::vector<float> y(8);
  EXPECT_THROW(avx512_dense_forward_bf16(d.x16.data(), d.w16.data(), nullptr, y.data(), nullptr,
                                         4, 3, 2, false),
               std::logic_error);
}

// Every product against the double reference; the fused epilogues exactly what the plain
// products followed by relu, the relu mask and to_bf16 give; db exactly the float sum; and
// every output bitwise the same on 1 and 2 threads.
TEST(GemmAvx512Bf16, MatchesReferenceEpiloguesAndThreads) {
  if (const char* why = avx512_bf16_unsupported_reason()) GTEST_SKIP() << why;
  for (const Shape& s : kShapes) {
    SCOPED_TRACE(testing::Message() << "n=" << s.n << " in=" << s.in << " out=" << s.out);
    const Operands d(s);
    const Reference ref(d);
    const Outputs none = run(d, kNone, 1), plain = run(d, kPlain, 2), all = run(d, kAll, 1);
    expect_close("y", none.y, ref.y, ref.ymag);
    expect_close("dw", none.dw, ref.dw, ref.dwmag);
    std::vector<double> yb = ref.y, ybmag = ref.ymag;
    for (int64_t i = 0; i < s.n * s.out; ++i) {
      yb[i] += d.b[i % s.out], ybmag[i] += std::fabs(d.b[i % s.out]);
    }
    expect_close("y + b", plain.y, yb, ybmag);
    expect_close("dx", plain.dx, ref.dx, ref.dxmag);
    EXPECT_TRUE(bitwise_equal(plain.dw, none.dw));
    EXPECT_TRUE(bits_equal(plain.dx16, to_bf16_copy(plain.dx)));

    std::vector<float> db(s.out);
    bias_backward_cols(d.dy.data(), db.data(), s.n, s.out, 0, s.out);
    EXPECT_TRUE(bitwise_equal(plain.db, db)) << "db must sum the float dy in row order";
    EXPECT_TRUE(bitwise_equal(all.db, db));
    for (size_t i = 0; i < all.y.size(); ++i) {
      ASSERT_EQ(all.y[i], plain.y[i] < 0.0f ? 0.0f : plain.y[i]) << "fused relu, y[" << i << "]";
    }
    for (size_t i = 0; i < all.dx.size(); ++i) {
      ASSERT_EQ(all.dx[i], d.x[i] <= 0.0f ? 0.0f : plain.dx[i]) << "relu mask, dx[" << i << "]";
    }
    EXPECT_TRUE(bits_equal(all.y16, to_bf16_copy(all.y)));
    std::vector<bf16> dx16(all.dx.size()), dxt16(all.dx.size());
    to_bf16(all.dx.data(), dx16.data(), dxt16.data(), s.n, s.in);
    EXPECT_TRUE(bits_equal(all.dx16, dx16));
    EXPECT_TRUE(bits_equal(all.dxt16, dxt16));
    for (int64_t i = 0; i < s.n; ++i)
      for (int64_t j = 0; j < s.in; ++j) {
        ASSERT_EQ(all.dxt16[j * s.n + i].bits, all.dx16[i * s.in + j].bits) << "dxt16 " << i << "," << j;
      }

    const Outputs two = run(d, kAll, 2), one = run(d, kPlain, 1);
    EXPECT_TRUE(bitwise_equal(two.y, all.y) && bitwise_equal(two.dw, all.dw) &&
                bitwise_equal(two.dx, all.dx) && bits_equal(two.y16, all.y16) &&
                bits_equal(two.dx16, all.dx16) && bits_equal(two.dxt16, all.dxt16))
        << "kAll: 2 threads differ from 1";
    EXPECT_TRUE(bitwise_equal(one.y, plain.y) && bitwise_equal(one.dx, plain.dx) &&
                bits_equal(one.dx16, plain.dx16))
        << "kPlain: 1 thread differs from 2";
  }
}

// Each dW element and each db element is reported exactly once, in tiles dense_tile_rows() high,
// holding its final value when reported; the main thread is polled between tiles.
TEST(GemmAvx512Bf16, ReportsFinalWeightGradientTiles) {
  if (const char* why = avx512_bf16_unsupported_reason()) GTEST_SKIP() << why;
  for (const Shape s : {Shape{129, 1024 + 33, 600}, Shape{7, 33, 10}}) {
    SCOPED_TRACE(testing::Message() << "n=" << s.n << " in=" << s.in << " out=" << s.out);
    const Operands d(s);
    for (int threads : {1, 2}) {
      Outputs r;
      TileRecorder rec;
      {
        ObserveTiles guard(rec);
        r = run(d, kAll, threads);
      }
      SCOPED_TRACE(testing::Message() << "threads=" << threads);
      expect_reports_final_once(rec, r.dw, r.db, s.in, s.out);
      if (HasFatalFailure()) return;
    }
  }
}

#if TESSERA_COUNT_MALLOC
// A forward and a backward at the reference MLP's widest layer after warm-up: no malloc at all,
// on 1 and 2 threads (the packed panels are on the stack).
TEST(GemmAvx512Bf16, NeverAllocates) {
  if (const char* why = avx512_bf16_unsupported_reason()) GTEST_SKIP() << why;
  malloc_count::expect_live();
  const Operands d({256, 784, 1024});
  Outputs r = run(d, kAll, 2);
  for (int threads : {1, 2}) {
    with_threads(threads, [&] {
      for (int step = 0; step < 3; ++step) {
        const bool armed = step > 0;  // the first call warms this thread count's arena
        malloc_count::calls = 0;
        malloc_count::armed = armed;
        avx512_dense_forward_bf16(d.x16.data(), d.w16.data(), d.b.data(), r.y.data(),
                                  r.y16.data(), 256, 784, 1024, true);
        DenseBf16Backward a;
        a.dy = d.dy.data(), a.dy16 = d.dy16.data(), a.dyt16 = d.dyt16.data();
        a.x16 = d.x16.data(), a.w16 = d.w16.data(), a.relu_x = d.x.data();
        a.dw = r.dw.data(), a.db = r.db.data(), a.dx = r.dx.data();
        a.dx16 = r.dx16.data(), a.dxt16 = r.dxt16.data();
        avx512_dense_backward_bf16(a, 256, 784, 1024);
        malloc_count::armed = false;
        if (armed) {
          EXPECT_EQ(malloc_count::calls.load(), 0) << "threads=" << threads << " step " << step;
        }
      }
    });
  }
}
#endif

}  // namespace
}  // namespace tessera::kernels
