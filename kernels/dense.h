// Dense (fully connected) layer kernels in nn.Linear's row-major layout.
// The three GEMMs are tiled with a fixed tiling (independent of thread count) and each tile is
// one single-threaded Eigen product, so the bits do not depend on how many threads run.
// The kernels never allocate: Eigen's packing panels live on the stack (up to 384 KiB per
// running tile, within oneTBB's default 4 MiB worker stacks). Outputs must not alias inputs.
#pragma once

#include <cstdint>

namespace tessera::kernels {

// x (n, in), w (out, in), b (out) or nullptr -> y (n, out) = x·wᵀ + b
template <class T>
void dense_forward(const T* x, const T* w, const T* b, T* y, int64_t n, int64_t in, int64_t out);

// dy (n, out), x (n, in), w (out, in) ->
//   dw (out, in) = dyᵀ·x      (overwritten, not accumulated)
//   db (out)     = Σ_rows dy  (overwritten; skipped when nullptr)
//   dx (n, in)   = dy·w       (overwritten; skipped when nullptr, e.g. for the first layer)
template <class T>
void dense_backward(const T* dy, const T* x, const T* w, T* dw, T* db, T* dx, int64_t n,
                    int64_t in, int64_t out);

}  // namespace tessera::kernels
