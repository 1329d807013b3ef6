// Elementwise activations over fixed chunks. Each element is computed independently, so the
// chunking only spreads work over threads and never changes a bit. The activation switch sits
// outside the loops so each loop body is a single straight-line formula.
#include "kernels/activation.h"

#include <cmath>
#include <numbers>

#include "kernels/parallel.h"

namespace tessera::kernels {
namespace {

// Elements per chunk: enough to amortize a task, small enough to split a 1-layer batch.
constexpr int64_t kChunk = 16384;

// Applies f(i) to every index in [0, n) over fixed chunks.
template <class F>
void for_each_index(int64_t n, const F& f) {
  for_chunks(n, chunk_size(n, kChunk), [&](int64_t begin, int64_t end) {
    // A local copy of f: its captured pointers then live in registers. Through the reference,
    // GCC must assume each store may change them, reloads them every element and cannot
    // vectorize (relu backward ran scalar with a data-dependent branch, ~3 ms/step on the
    // reference MLP). Element i reads only index i of its inputs before writing index i of its
    // output, so the exact aliasing allowed (dz == da, a == z) is safe to vectorize.
    const F g = f;
#pragma GCC ivdep
    for (int64_t i = begin; i < end; ++i) g(i);
  });
}

// 1 / (1 + e^-z) without overflow: e^-z only for z >= 0, e^z otherwise, so exp never sees a
// large positive argument and the result saturates cleanly to 0 or 1.
template <class T>
T sigmoid(T z) {
  if (z >= T(0)) return T(1) / (T(1) + std::exp(-z));
  const T e = std::exp(z);
  return e / (T(1) + e);
}

template <class T>
constexpr T kInvSqrt2 = std::numbers::sqrt2_v<T> / 2;
template <class T>
constexpr T kInvSqrt2Pi = std::numbers::inv_sqrtpi_v<T> / std::numbers::sqrt2_v<T>;

// Exact GELU: z·Φ(z), Φ the standard normal CDF (PyTorch approximate="none").
template <class T>
T gelu(T z) {
  return T(0.5) * z * (T(1) + std::erf(z * kInvSqrt2<T>));
}

// d/dz z·Φ(z) = Φ(z) + z·φ(z), φ(z) = e^(-z²/2) / √(2π).
template <class T>
T gelu_grad(T z) {
  const T cdf = T(0.5) * (T(1) + std::erf(z * kInvSqrt2<T>));
  const T pdf = std::exp(T(-0.5) * z * z) * kInvSqrt2Pi<T>;
  return cdf + z * pdf;
}

}  // namespace

// z (n) -> a (n) = act(z); a may alias z (each element is read before it is written).
template <class T>
void activation_forward(Activation act, const T* z, T* a, int64_t n) {
  switch (act) {
    case Activation::kRelu:
      // Written so a NaN passes through (as torch.relu does) and stays detectable downstream.
      for_each_index(n, [=](int64_t i) { a[i] = z[i] < T(0) ? T(0) : z[i]; });
      return;
    case Activation::kTanh:
      for_each_index(n, [=](int64_t i) { a[i] = std::tanh(z[i]); });
      return;
    case Activation::kGelu:
      for_each_index(n, [=](int64_t i) { a[i] = gelu(z[i]); });
      return;
    case Activation::kSigmoid:
      for_each_index(n, [=](int64_t i) { a[i] = sigmoid(z[i]); });
      return;
  }
}

// z (n), a (n) = act(z), da (n) -> dz (n) = da * act'(z); dz may alias da.
// tanh and sigmoid use the saved output a (exact and cheaper); relu and gelu use z.
template <class T>
void activation_backward(Activation act, const T* z, const T* a, const T* da, T* dz, int64_t n) {
  switch (act) {
    case Activation::kRelu:
      // The subgradient at 0 is 0, as in PyTorch's threshold_backward.
      for_each_index(n, [=](int64_t i) { dz[i] = z[i] <= T(0) ? T(0) : da[i]; });
      return;
    case Activation::kTanh:
      for_each_index(n, [=](int64_t i) { dz[i] = da[i] * (T(1) - a[i] * a[i]); });
      return;
    case Activation::kGelu:
      for_each_index(n, [=](int64_t i) { dz[i] = da[i] * gelu_grad(z[i]); });
      return;
    case Activation::kSigmoid:
      for_each_index(n, [=](int64_t i) { dz[i] = da[i] * a[i] * (T(1) - a[i]); });
      return;
  }
}

template void activation_forward<float>(Activation, const float*, float*, int64_t);
template void activation_forward<double>(Activation, const double*, double*, int64_t);
template void activation_backward<float>(Activation, const float*, const float*, const float*,
                                         float*, int64_t);
template void activation_backward<double>(Activation, const double*, const double*, const double*,
                                          double*, int64_t);

}  // namespace tessera::kernels
