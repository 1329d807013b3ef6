// The linear and mlp models: a stack of nn.Linear layers with an activation between them.
// Parameters and gradients are flat buffers owned by the caller; the model owns only its
// activation arena, sized once for max_rows (with bf16 copies of the weights, activations and
// gradients when built for bf16 training), so forward and backward allocate nothing of their
// own (the oneDNN engine allocates a constant few blocks per GEMM call; see kernels/dense.h).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/config.h"
#include "kernels/activation.h"
#include "kernels/bf16.h"
#include "kernels/optim.h"

namespace tessera {

struct ModelSpec {
  std::string kind = "mlp";      // linear | mlp
  std::vector<int64_t> sizes;    // [inputs, hidden..., outputs]
  kernels::Activation activation = kernels::Activation::kRelu;
  Task task = Task::kClassification;

  int layers() const { return static_cast<int>(sizes.size()) - 1; }
  int64_t inputs() const { return sizes.front(); }
  int64_t outputs() const { return sizes.back(); }
  int64_t param_count() const;
  // Layer l's weight (out, in) then bias (out) are at these offsets of the flat buffer.
  int64_t weight_offset(int l) const;
  int64_t bias_offset(int l) const;
  std::string describe() const;  // "mlp 784-256-128-10 relu classification"
};

// Builds the spec from the config and the data's shape; classes = outputs for classification.
ModelSpec make_model_spec(const ModelConfig& cfg, int64_t features, int64_t outputs);

template <class T>
class BasicModel {
 public:
  // bf16 (float only) sizes the bf16 arena too, so that forward may be asked for bf16.
  BasicModel(ModelSpec spec, int64_t max_rows, Precision precision = Precision::kFp32);
  const ModelSpec& spec() const { return spec_; }

  // params (param_count), x (n, inputs) -> returns out (n, outputs), valid until next forward;
  // the caller may overwrite it (e.g. with the loss gradient) before backward. kBf16 (training)
  // converts the weights to bf16 once, here, and runs every product on bf16 operands with
  // float accumulation; out, the loss and the gradients stay float.
  T* forward(const T* params, const T* x, int64_t n, Precision p = Precision::kFp32);
  // After forward on the same params and x: dout (n, outputs) -> grads (param_count),
  // overwritten, in the precision of that forward. dout is clobbered (used as scratch).
  // Layers run last first; layer_done(l), when given, is called as soon as layer l's weight and
  // bias gradients are final (gradient bucketing starts their reduction while earlier layers run).
  // With sgd (float, after a float forward; its run is the flat parameter buffer), the
  // products also write every parameter's SGD update from these gradients into sgd->p_next
  // and buf_next as they compute them (kernels/dense.h), params staying as they were.
  void backward(const T* params, const T* x, T* dout, T* grads, int64_t n,
                const std::function<void(int)>& layer_done = {},
                const kernels::SgdUpdate* sgd = nullptr);

 private:
  // relu hidden layers run as one GEMM with relu in its epilogue and keep only a.
  bool fused_relu() const { return spec_.activation == kernels::Activation::kRelu; }
  void forward_bf16(const T* params, const T* x, int64_t n);
  void backward_bf16(T* dout, T* grads, int64_t n, const std::function<void(int)>& layer_done);

  ModelSpec spec_;
  int64_t max_rows_;
  std::vector<std::vector<T>> z_;  // pre-activation of each layer (n, out_l); empty if fused
  std::vector<std::vector<T>> a_;  // activation of each hidden layer (n, out_l)
  std::vector<T> scratch_a_, scratch_b_;
  // bf16 arena (empty unless built for bf16): the weights, the input, each hidden activation,
  // and each gradient scratch plain and transposed (the weight gradient's left operand).
  bool last_forward_bf16_ = false;
  std::vector<kernels::bf16> params16_, x16_;
  std::vector<std::vector<kernels::bf16>> a16_;
  std::vector<kernels::bf16> scratch16_[2], scratch16_t_[2];
};

using Model = BasicModel<float>;

// PyTorch's nn.Linear default init drawn from our seed: weight and bias ~ U(-1/√in, 1/√in)
// (kaiming_uniform with a = √5 reduces to this bound).
void init_params(const ModelSpec& spec, uint64_t seed, float* params);

// "layers.0.weight", "layers.0.bias", ... in flat-buffer order, with their shapes.
struct TensorInfo {
  std::string name;
  std::vector<int64_t> shape;
  int64_t offset = 0;
  int64_t count = 0;
};
std::vector<TensorInfo> tensor_layout(const ModelSpec& spec);

}  // namespace tessera
