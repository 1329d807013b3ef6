// Dense (fully connected) layer kernels in nn.Linear's row-major layout.
// Every product is cut into fixed output tiles (independent of the thread count), each tile one
// single-threaded engine call, so the bits do not depend on how many threads run. float goes
// through the GEMM engine chosen at build time (TESSERA_GEMM: oneDNN or Eigen); double always
// uses Eigen (gradient checks). Outputs must not alias inputs. The Eigen engine never allocates;
// oneDNN allocates a constant few small blocks inside each primitive call (its execution
// context), none of them ours.
#pragma once

#include <cstdint>

namespace tessera::kernels {

// x (n, in), w (out, in), b (out) or nullptr -> y (n, out) = x·wᵀ + b
template <class T>
void dense_forward(const T* x, const T* w, const T* b, T* y, int64_t n, int64_t in, int64_t out);

// Same, with ReLU fused into the product's epilogue: y = max(x·wᵀ + b, 0). Equal in value to
// dense_forward followed by activation_forward(kRelu) (a zero may come out as -0). The
// pre-activation is not kept: relu's backward can use y itself, as y > 0 exactly where z > 0.
template <class T>
void dense_forward_relu(const T* x, const T* w, const T* b, T* y, int64_t n, int64_t in,
                        int64_t out);

// dy (n, out), x (n, in), w (out, in) ->
//   dw (out, in) = dyᵀ·x      (overwritten, not accumulated)
//   db (out)     = Σ_rows dy  (overwritten; skipped when nullptr)
//   dx (n, in)   = dy·w       (overwritten; skipped when nullptr, e.g. for the first layer)
template <class T>
void dense_backward(const T* dy, const T* x, const T* w, T* dw, T* db, T* dx, int64_t n,
                    int64_t in, int64_t out);

// dense_backward for a layer whose input x is a relu output, with relu's backward fused into
// the dx product: dx = (dy·w) ⊙ [x > 0], the gradient w.r.t. the previous layer's
// pre-activation. Bitwise equal to dense_backward followed by activation_backward(kRelu) with
// z = a = x. dw and db as dense_backward.
template <class T>
void dense_backward_relu(const T* dy, const T* x, const T* w, T* dw, T* db, T* dx, int64_t n,
                         int64_t in, int64_t out);

// The engine behind the float products: "onednn" or "eigen".
const char* gemm_engine_name();

}  // namespace tessera::kernels
