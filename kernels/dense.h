// Dense (fully connected) layer kernels in nn.Linear's row-major layout.
// Every product is cut into fixed output tiles (independent of the thread count), each tile one
// single-threaded engine call, so the bits do not depend on how many threads run. float goes
// through the GEMM engine chosen at build time (TESSERA_GEMM: tessera's own microkernels in
// AVX-512 or AVX2, oneDNN or Eigen); double always uses Eigen (gradient checks). Outputs must not
// alias inputs. tessera's and the Eigen engines never allocate; oneDNN allocates a constant few small blocks
// inside each primitive call (its execution context), none of them ours.
#pragma once

#include <cstdint>

#include "kernels/bf16.h"
#include "kernels/optim.h"

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
// With sgd (float only; its run is w then the bias, (out, in) then (out), as a layer's
// parameters lie in the flat buffer), the same call also writes their SGD update into
// sgd->p_next and buf_next, bit for bit sgd_update_serial's on dw and db: tessera's engines
// from the weight-gradient tiles' registers as they finish (the gradient is never read back),
// Eigen and oneDNN in a pass after the products.
template <class T>
void dense_backward(const T* dy, const T* x, const T* w, T* dw, T* db, T* dx, int64_t n,
                    int64_t in, int64_t out, const SgdUpdate* sgd = nullptr);

// dense_backward for a layer whose input x is a relu output, with relu's backward fused into
// the dx product: dx = (dy·w) ⊙ [x > 0], the gradient w.r.t. the previous layer's
// pre-activation. Bitwise equal to dense_backward followed by activation_backward(kRelu) with
// z = a = x. dw and db as dense_backward.
template <class T>
void dense_backward_relu(const T* dy, const T* x, const T* w, T* dw, T* db, T* dx, int64_t n,
                         int64_t in, int64_t out, const SgdUpdate* sgd = nullptr);

// The engine behind the float products: "avx512", "avx2", "onednn" or "eigen".
const char* gemm_engine_name();

// Whether the build's engine writes dense_backward's SGD update from its products' registers
// (tessera's engines); Eigen's and oneDNN's builds run it as a serial pass after the products.
bool dense_backward_fuses_sgd();

// The engine behind the bf16 products ("avx512"), or "none" when bf16_unsupported_reason().
const char* bf16_engine_name();

// Bytes of stack a float product's tile takes on the thread that runs it, at most (its packed
// panels; the bf16 engine's tiles take less). oneTBB workers have 4 MiB; the main thread, which
// also runs tiles, has what `ulimit -s` gives it.
int64_t dense_tile_stack_bytes();

// Rows of the fixed weight-gradient tiles of the float and bf16 products (the engine's): the
// weight gradient dw (out, in) becomes final in blocks of this many rows, each reported to the
// installed TileObserver (kernels/tile_observer.h) as its tiles finish.
int64_t dense_tile_rows();

// bf16 products, for bf16 training: bf16 operands, float32 accumulation and float32 outputs, on
// tessera's AVX512_BF16 engine (kernels/gemm_avx512_bf16.cpp) in any x86-64 build, cut into
// fixed tiles (so the bits do not depend on the thread count), allocating nothing. They throw
// std::logic_error when bf16_unsupported_reason() is not nullptr.

// nullptr when this build on this CPU runs the bf16 products; otherwise why not, in words: a
// CPU without AVX-512 or AVX512_BF16, or a build for another architecture.
const char* bf16_unsupported_reason();

// x (n, in), w (out, in) bf16, b (out) float or nullptr -> y (n, out) float = x·wᵀ + b, with
// relu fused into the epilogue when `relu`; and y16 (n, out) = bf16(y) unless nullptr (the next
// layer's input), converted tile by tile while the tile is in cache.
void dense_forward_bf16(const bf16* x, const bf16* w, const float* b, float* y, bf16* y16,
                        int64_t n, int64_t in, int64_t out, bool relu);

// One layer's backward in bf16. The products read bf16 copies of dy, x and w; the bias gradient
// sums the float dy. Outputs are overwritten; nullptr ones are skipped.
struct DenseBf16Backward {
  const float* dy = nullptr;   // (n, out): db = Σ_rows dy
  const bf16* dy16 = nullptr;  // (n, out) bf16(dy): dx = dy·w
  const bf16* dyt16 = nullptr; // (out, n) bf16(dy)ᵀ: dw = dyᵀ·x with a dense left operand
                               // (the engine broadcasts adjacent pairs of a row)
  const bf16* x16 = nullptr;   // (n, in)
  const bf16* w16 = nullptr;   // (out, in)
  const float* relu_x = nullptr;  // (n, in) float x when x is a relu output: dx ⊙= [x > 0]
  float* dw = nullptr;         // (out, in)
  float* db = nullptr;         // (out)
  float* dx = nullptr;         // (n, in)
  bf16* dx16 = nullptr;        // (n, in) bf16(dx), after the relu mask, for the previous layer
  bf16* dxt16 = nullptr;       // (in, n) bf16(dx)ᵀ
};
void dense_backward_bf16(const DenseBf16Backward& a, int64_t n, int64_t in, int64_t out);

}  // namespace tessera::kernels
