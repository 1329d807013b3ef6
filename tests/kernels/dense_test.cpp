// Tests for kernels/dense: the three GEMMs against naive double loops at odd, multi-tile sizes,
// bitwise equality between 1 and 2 threads, a central-difference gradient check, and a
// malloc counter proving the kernels never touch the heap.
#include "kernels/dense.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <vector>

#include "tests/kernels/kernel_test_util.h"

// Count malloc calls while armed by interposing glibc's malloc (Eigen's aligned_malloc and
// operator new both end there). ASan already interposes malloc, so the check is off there.
#if defined(__SANITIZE_ADDRESS__)
#define TESSERA_COUNT_MALLOC 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(memory_sanitizer) || \
    __has_feature(thread_sanitizer)
#define TESSERA_COUNT_MALLOC 0
#endif
#endif
#if !defined(TESSERA_COUNT_MALLOC) && defined(__GLIBC__)
#define TESSERA_COUNT_MALLOC 1
#endif

#if TESSERA_COUNT_MALLOC
namespace {
std::atomic<bool> g_malloc_armed{false};
std::atomic<int64_t> g_malloc_calls{0};
}  // namespace
extern "C" void* __libc_malloc(size_t size);
extern "C" void* malloc(size_t size) {
  if (g_malloc_armed.load(std::memory_order_relaxed)) g_malloc_calls.fetch_add(1);
  return __libc_malloc(size);
}
#endif

namespace tessera::kernels {
namespace {

using test::bitwise_equal;
using test::random_vector;
using test::with_threads;

struct Shape {
  int64_t n, in, out;
};

// 37x19x23 is one partial tile; 257x129x67 spans 3 row tiles; 300x70x520 spans 3 column tiles
// of y and dw (out > 256), and 129x300x40 spans 2 column tiles of dx (in > 256).
const Shape kShapes[] = {{37, 19, 23}, {257, 129, 67}, {300, 70, 520}, {129, 300, 40}, {1, 1, 1}};

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

  DenseRun<T> run() const {
    DenseRun<T> r{std::vector<T>(s.n * s.out), std::vector<T>(s.out * s.in), std::vector<T>(s.out),
                  std::vector<T>(s.n * s.in)};
    dense_forward(x.data(), w.data(), b.data(), r.y.data(), s.n, s.in, s.out);
    dense_backward(dy.data(), x.data(), w.data(), r.dw.data(), r.db.data(), r.dx.data(), s.n, s.in,
                   s.out);
    return r;
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
void check_against_reference(double tol) {
  for (const Shape& s : kShapes) {
    SCOPED_TRACE(testing::Message() << "n=" << s.n << " in=" << s.in << " out=" << s.out);
    const DenseInputs<T> d(s);
    DenseRun<T> one, two;
    with_threads(1, [&] { one = d.run(); });
    with_threads(2, [&] { two = d.run(); });
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

TEST(Dense, FloatMatchesReferenceAndThreadCountInvariant) { check_against_reference<float>(1e-5); }

TEST(Dense, DoubleMatchesReferenceAndThreadCountInvariant) {
  check_against_reference<double>(1e-13);
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

#if TESSERA_COUNT_MALLOC
// Eigen's own `Map.noalias() = a * b` mallocs its packing panels for products this size; the
// kernels pass fixed stack panels instead and must stay off the heap.
TEST(Dense, NeverAllocates) {
  // The hook is live: a plain malloc is counted.
  g_malloc_calls = 0;
  g_malloc_armed = true;
  void* volatile probe = std::malloc(64);
  g_malloc_armed = false;
  std::free(probe);
  ASSERT_EQ(g_malloc_calls.load(), 1) << "malloc interposition is not active";

  for (const Shape s : {Shape{256, 784, 1024}, Shape{300, 70, 520}}) {
    const DenseInputs<float> d(s);
    DenseRun<float> r = d.run();  // warm oneTBB's arena and task pools
    for (int threads : {1, 2}) {
      with_threads(threads, [&] {
        r = d.run();  // warm at this thread count
        g_malloc_calls = 0;
        g_malloc_armed = true;
        dense_forward(d.x.data(), d.w.data(), d.b.data(), r.y.data(), s.n, s.in, s.out);
        dense_backward(d.dy.data(), d.x.data(), d.w.data(), r.dw.data(), r.db.data(), r.dx.data(),
                       s.n, s.in, s.out);
        g_malloc_armed = false;
      });
      EXPECT_EQ(g_malloc_calls.load(), 0)
          << "threads=" << threads << " n=" << s.n << " in=" << s.in << " out=" << s.out;
    }
  }
}
#endif

}  // namespace
}  // namespace tessera::kernels
