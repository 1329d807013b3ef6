// Elementwise activations, forward and backward, on flat buffers of n values.
// gelu is the exact erf form (PyTorch's default approximate="none").
#pragma once

#include <cstdint>

namespace tessera::kernels {

enum class Activation { kRelu, kTanh, kGelu, kSigmoid };

// z (n) -> a (n) = act(z); a may alias z.
template <class T>
void activation_forward(Activation act, const T* z, T* a, int64_t n);

// z (n) pre-activation, a (n) = act(z), da (n) -> dz (n) = da * act'(z); dz may alias da.
template <class T>
void activation_backward(Activation act, const T* z, const T* a, const T* da, T* dz, int64_t n);

}  // namespace tessera::kernels
