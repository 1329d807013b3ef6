// Flat float32 optimizer updates (torch.optim SGD, Adam, AdamW) and the gradient-norm helpers.
// Elementwise math is float, as PyTorch computes float parameters; per-step scalars (bias
// corrections, decay factor) are computed once in double and cast, as PyTorch's Python does.
#include "kernels/optim.h"

#include <immintrin.h>  // GCC 12 false -Wmaybe-uninitialized in its AVX-512 headers: silenced in CMakeLists.txt

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "kernels/parallel.h"

namespace tessera::kernels {
namespace {

// 32 Ki floats (128 KiB per stream) per chunk: long enough to vectorize and amortize a task.
constexpr int64_t kChunk = 32768;

// Calls body(begin, end) over the fixed chunks of n.
template <class Body>
void for_range(int64_t n, const Body& body) {
  for_chunks(n, chunk_size(n, kChunk), body);
}

}  // namespace

// Every element must get the same operations whichever code path (vector body, peeled head,
// scalar tail) handles it, or the bits would depend on buffer alignment and on where a ZeRO
// shard starts. So the updates are plain loops that GCC vectorizes as a whole (the scalar
// remainder is the same statement, contracted into FMAs the same way), with the mode flags
// resolved outside the loops. Eigen array expressions were tried and rejected: under Eigen's
// default EIGEN_FAST_MATH its packet sqrt is an rsqrt14 + Newton approximation while its
// alignment-peeled scalar head is exact, so Adam's bits moved with the buffer's alignment.

// torch.optim.SGD, dampening 0, no nesterov (see optim.h for the formula), for one element:
// returns p's new value, b holds buf's old value on entry (unless kFirst) and its new one on
// return. The FMAs are spelled out (std::fma), so the bits do not hang on the compiler's
// contraction flags: the GEMM engine's fused form (kernels/gemm_simd.cpp) runs the same FMAs.
// PyTorch skips the decay term when wd == 0 (so 0·inf never injects a NaN); so do we (kDecay).
// A target without FMA instructions (TESSERA_PORTABLE) would run std::fma in software, an
// unvectorized call per element: there a·b + c, which this ISO build does not contract. Such a
// build has no fused form to agree with (its engine is Eigen's).
inline float mul_add(float a, float b, float c) {
#if defined(__FMA__)
  return std::fma(a, b, c);
#else
  return a * b + c;
#endif
}

template <bool kBuf, bool kFirst, bool kDecay>
inline float sgd_element(float p, float g, float& b, float neg_lr, float momentum, float wd) {
  float d = kDecay ? mul_add(wd, p, g) : g;
  if constexpr (kBuf) {
    if constexpr (!kFirst) d = mul_add(momentum, b, d);
    b = d;
  }
  return mul_add(neg_lr, d, p);
}

// Calls f.operator()<kBuf, kFirst, kDecay>() for the rule's mode, so each mode is its own loop.
template <class F>
void sgd_mode(bool buf, bool first, float wd, const F& f) {
  const bool decay = wd != 0.0f;
  if (!buf) {
    decay ? f.template operator()<false, false, true>() : f.template operator()<false, false, false>();
  } else if (first) {
    decay ? f.template operator()<true, true, true>() : f.template operator()<true, true, false>();
  } else {
    decay ? f.template operator()<true, false, true>() : f.template operator()<true, false, false>();
  }
}

void sgd_step(float* p, const float* g, float* buf, int64_t n, float lr, float momentum, float wd,
              bool first_step) {
  const bool use_buf = momentum != 0.0f;
  for_range(n, [=](int64_t begin, int64_t end) {
    // Locals, not the closure's members, and restrict pointers: otherwise a store to p could
    // alias the captured scalars, GCC reloads them every element and the loops stay scalar
    // (13.6 GB/s against a 37.6 GB/s triad on an AVX2 core; 36 GB/s vectorized).
    float* __restrict pp = p;
    const float* __restrict gg = g;
    float* __restrict bb = buf;
    const float rate = -lr, mom = momentum, decay = wd;
    sgd_mode(use_buf, first_step, decay, [&]<bool kBuf, bool kFirst, bool kDecay>() {
      for (int64_t i = begin; i < end; ++i) {
        float b = kBuf && !kFirst ? bb[i] : 0.0f;
        pp[i] = sgd_element<kBuf, kFirst, kDecay>(pp[i], gg[i], b, rate, mom, decay);
        if constexpr (kBuf) bb[i] = b;
      }
    });
  });
}

void sgd_update_serial(const SgdUpdate& u, const float* g, int64_t n) {
  sgd_mode(u.buf != nullptr, u.first_step, u.wd, [&]<bool kBuf, bool kFirst, bool kDecay>() {
    for (int64_t i = 0; i < n; ++i) {
      float b = kBuf && !kFirst ? u.buf[i] : 0.0f;
      u.p_next[i] = sgd_element<kBuf, kFirst, kDecay>(u.p[i], g[i], b, -u.lr, u.momentum, u.wd);
      if constexpr (kBuf) u.buf_next[i] = b;
    }
  });
}

namespace {

// Adam works through a chunk in blocks whose sqrt(v) sits in a stack buffer between passes.
constexpr int64_t kAdamBlock = 512;

// out = sqrt(x) for len values. GCC will not vectorize std::sqrt without -fno-math-errno (it
// guards each call for errno), and Eigen's packet sqrt is an approximation under its default
// EIGEN_FAST_MATH, so the vector part uses the ISA's sqrt. Every form here is the correctly
// rounded IEEE sqrt, so vector and scalar elements agree bit for bit.
void sqrt_block(const float* x, float* out, int64_t len) {
  int64_t i = 0;
#if defined(__AVX512F__)
  for (; i + 16 <= len; i += 16) _mm512_storeu_ps(out + i, _mm512_sqrt_ps(_mm512_loadu_ps(x + i)));
#elif defined(__AVX__)
  for (; i + 8 <= len; i += 8) _mm256_storeu_ps(out + i, _mm256_sqrt_ps(_mm256_loadu_ps(x + i)));
#elif defined(__SSE2__)
  for (; i + 4 <= len; i += 4) _mm_storeu_ps(out + i, _mm_sqrt_ps(_mm_loadu_ps(x + i)));
#endif
  for (; i < len; ++i) out[i] = std::sqrt(x[i]);
}

// Adam on [begin, end) in three passes per block (moments, sqrt, parameters), each a loop
// that vectorizes. Operand order follows PyTorch's CPU kernels: m = β1·m + (1-β1)·g;
// addcmul v = β2·v + ((1-β2)·g)·g; addcdiv p = p + (-step_size·m) / (sqrt(v)/bc2_sqrt + eps).
void adam_chunk(float* p, const float* g, float* m, float* v, int64_t begin, int64_t end,
                float step_size, float bc2_sqrt, float eps, float beta1, float beta2, float wd,
                float keep, bool decoupled) {
  const float one_minus_b1 = 1.0f - beta1;
  const float one_minus_b2 = 1.0f - beta2;
  alignas(64) float root[kAdamBlock];
  for (int64_t b0 = begin; b0 < end; b0 += kAdamBlock) {
    const int64_t b1 = std::min(end, b0 + kAdamBlock);
    for (int64_t i = b0; i < b1; ++i) {
      // Adam's coupled decay uses p before the update; AdamW's decay touches p only below.
      const float gi = decoupled ? g[i] : g[i] + wd * p[i];
      m[i] = beta1 * m[i] + one_minus_b1 * gi;
      v[i] = beta2 * v[i] + (one_minus_b2 * gi) * gi;
    }
    sqrt_block(v + b0, root, b1 - b0);
    for (int64_t i = b0; i < b1; ++i) {
      const float pi = decoupled ? p[i] * keep : p[i];
      p[i] = pi - (step_size * m[i]) / (root[i - b0] / bc2_sqrt + eps);
    }
  }
}

}  // namespace

// torch.optim.Adam (decoupled false) / AdamW (decoupled true), amsgrad false; see optim.h.
void adam_step(float* p, const float* g, float* m, float* v, int64_t n, float lr, float beta1,
               float beta2, float eps, float wd, int64_t t, bool decoupled) {
  // PyTorch 1.13 _single_tensor_adam computes the step scalars in Python doubles:
  //   step_size = lr / (1 - β1^t);  bc2_sqrt = sqrt(1 - β2^t);  AdamW: keep = 1 - lr·wd
  // and the tensor ops cast them to float. β's arrive here as float, so β^t is of the float
  // value (a relative difference near 1e-8 from PyTorch's double β).
  const double t_d = static_cast<double>(t);
  const float step_size = static_cast<float>(lr / (1.0 - std::pow(double(beta1), t_d)));
  const float bc2_sqrt = static_cast<float>(std::sqrt(1.0 - std::pow(double(beta2), t_d)));
  const float keep = static_cast<float>(1.0 - double(lr) * double(wd));
  // With wd == 0 both decay forms are exact no-ops for finite p (p·1, g + 0·p), matching
  // PyTorch, which skips them.
  for_range(n, [=](int64_t begin, int64_t end) {
    adam_chunk(p, g, m, v, begin, end, step_size, bc2_sqrt, eps, beta1, beta2, wd, keep, decoupled);
  });
}

// x (n) *= s
void scale(float* x, int64_t n, float s) {
  for_range(n, [=](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) x[i] *= s;
  });
}

// Σ x² in double. Inside a chunk, 8 interleaved accumulators (combined in a fixed order) let
// the loop vectorize while keeping one summation order for every run.
double sum_squares(const float* x, int64_t n) {
  return sum_chunks(n, kChunk, [=](int64_t begin, int64_t end) {
    constexpr int kLanes = 8;
    double lane[kLanes] = {};
    int64_t i = begin;
    for (; i + kLanes <= end; i += kLanes) {
      for (int j = 0; j < kLanes; ++j) lane[j] += double(x[i + j]) * double(x[i + j]);
    }
    for (; i < end; ++i) lane[0] += double(x[i]) * double(x[i]);
    double total = 0.0;
    for (int j = 0; j < kLanes; ++j) total += lane[j];
    return total;
  });
}

// Any NaN or infinity? Tested on the exponent bits (all ones) so the loop is an integer OR
// reduction that vectorizes, and fast-math flags cannot fold the test away.
bool has_non_finite_serial(const float* x, int64_t n) {
  uint32_t any = 0;
  for (int64_t i = 0; i < n; ++i) {
    uint32_t bits;
    std::memcpy(&bits, x + i, sizeof bits);
    any |= static_cast<uint32_t>((bits & 0x7f800000u) == 0x7f800000u);
  }
  return any != 0;
}

bool has_non_finite(const float* x, int64_t n) {
  const double bad = sum_chunks(n, kChunk, [=](int64_t begin, int64_t end) {
    return has_non_finite_serial(x + begin, end - begin) ? 1.0 : 0.0;
  });
  return bad != 0.0;
}

}  // namespace tessera::kernels
