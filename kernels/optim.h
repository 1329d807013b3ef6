// Optimizer updates on flat float32 buffers, written to match torch.optim's update rules
// (PyTorch 1.13 docs): formulas next to each function and in tests/kernels/optim_test.cpp.
#pragma once

#include <cstdint>

namespace tessera::kernels {

// torch.optim.SGD (dampening 0, nesterov false):
//   g = grad + wd·p;  buf = first_step ? g : momentum·buf + g;  p -= lr·buf   (buf unused if momentum 0)
// p, g, buf (n); buf may be nullptr when momentum == 0.
void sgd_step(float* p, const float* g, float* buf, int64_t n, float lr, float momentum, float wd,
              bool first_step);

// The same SGD update written to other buffers: p_next = the updated p, buf_next = the updated
// buf, from p and buf, which stay as they were (so a step that turns out non-finite can be
// dropped). Bit for bit sgd_step's: every form of the rule (this, sgd_step, the GEMM engine's
// weight-gradient epilogue, kernels/gemm_simd.cpp) is the same float FMAs in the same order.
// Pointers are to element 0 of the run being updated; buf and buf_next are nullptr when
// momentum == 0.
struct SgdUpdate {
  const float* p = nullptr;
  float* p_next = nullptr;
  const float* buf = nullptr;
  float* buf_next = nullptr;
  float lr = 0, momentum = 0, wd = 0;
  bool first_step = false;
  // The same update for the run starting `offset` elements on.
  SgdUpdate at(int64_t offset) const {
    SgdUpdate u = *this;
    u.p += offset;
    u.p_next += offset;
    if (u.buf != nullptr) u.buf += offset, u.buf_next += offset;
    return u;
  }
};
// Elements [0, n) of u's run from the gradient g (n), on the calling thread.
void sgd_update_serial(const SgdUpdate& u, const float* g, int64_t n);

// torch.optim.Adam (decoupled = false) and torch.optim.AdamW (decoupled = true), amsgrad false.
//   Adam:  g = grad + wd·p           AdamW: p = p·(1 - lr·wd), g = grad
//   m = β1·m + (1-β1)·g;  v = β2·v + (1-β2)·g²
//   p -= (lr / (1-β1^t)) · m / (sqrt(v) / sqrt(1-β2^t) + eps)       t = step, starting at 1
// p, g, m, v (n)
void adam_step(float* p, const float* g, float* m, float* v, int64_t n, float lr, float beta1,
               float beta2, float eps, float wd, int64_t t, bool decoupled);

// x (n) *= s
void scale(float* x, int64_t n, float s);

// Σ x² in double, fixed chunks (global gradient norm for clipping).
double sum_squares(const float* x, int64_t n);

// Any NaN or infinity in x (n)? In parallel chunks.
bool has_non_finite(const float* x, int64_t n);
// The same on the calling thread only: for a block a kernel tile has just written.
bool has_non_finite_serial(const float* x, int64_t n);

}  // namespace tessera::kernels
