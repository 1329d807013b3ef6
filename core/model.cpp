// Model forward/backward as a sequence of kernel calls over arena buffers (llm.c style):
// z_l = a_{l-1}·W_lᵀ + b_l, a_l = act(z_l) for hidden layers, out = z_L. For relu the
// activation is fused into the forward GEMM's epilogue and its backward into the dx GEMM's, and
// only a_l is kept (relu' comes from a_l). bf16 training runs the same sequence on bf16 copies
// of the weights, activations and gradients, made by the products' epilogues where it can.
#include "core/model.h"

#include <cmath>
#include <sstream>
#include <type_traits>

#include "core/error.h"
#include "core/rng.h"
#include "kernels/dense.h"

namespace tessera {

int64_t ModelSpec::param_count() const {
  int64_t n = 0;
  for (int l = 0; l < layers(); ++l) n += sizes[l + 1] * sizes[l] + sizes[l + 1];
  return n;
}

int64_t ModelSpec::weight_offset(int l) const {
  int64_t n = 0;
  for (int i = 0; i < l; ++i) n += sizes[i + 1] * sizes[i] + sizes[i + 1];
  return n;
}

int64_t ModelSpec::bias_offset(int l) const { return weight_offset(l) + sizes[l + 1] * sizes[l]; }

std::string ModelSpec::describe() const {
  std::ostringstream os;
  os << kind << " ";
  for (size_t i = 0; i < sizes.size(); ++i) os << (i ? "-" : "") << sizes[i];
  if (layers() > 1) os << " " << to_string(activation);
  os << " " << to_string(task);
  return os.str();
}

ModelSpec make_model_spec(const ModelConfig& cfg, int64_t features, int64_t outputs) {
  ModelSpec spec;
  spec.kind = cfg.kind;
  spec.activation = cfg.activation;
  spec.task = cfg.task;
  spec.sizes.push_back(features);
  if (cfg.kind == "mlp") {
    for (int64_t h : cfg.hidden) spec.sizes.push_back(h);
  }
  spec.sizes.push_back(outputs);
  return spec;
}

template <class T>
BasicModel<T>::BasicModel(ModelSpec spec, int64_t max_rows, Precision precision)
    : spec_(std::move(spec)), max_rows_(max_rows) {
  TESSERA_CHECK(spec_.layers() >= 1 && max_rows_ > 0, "empty model or batch");
  int64_t widest = 0;
  for (int64_t s : spec_.sizes) widest = std::max(widest, s);
  for (int l = 0; l < spec_.layers(); ++l) {
    const size_t n = static_cast<size_t>(max_rows_ * spec_.sizes[l + 1]);
    const bool hidden = l + 1 < spec_.layers();
    z_.emplace_back(hidden && fused_relu() ? 0 : n);
    a_.emplace_back(hidden ? n : 0);
  }
  scratch_a_.resize(static_cast<size_t>(max_rows_ * widest));
  scratch_b_.resize(static_cast<size_t>(max_rows_ * widest));
  if (precision == Precision::kBf16) {
    TESSERA_CHECK((std::is_same_v<T, float>), "bf16 training needs a float model");
    params16_.resize(static_cast<size_t>(spec_.param_count()));
    x16_.resize(static_cast<size_t>(max_rows_ * spec_.inputs()));
    for (int l = 0; l + 1 < spec_.layers(); ++l) a16_.emplace_back(static_cast<size_t>(max_rows_ * spec_.sizes[l + 1]));
    for (int i = 0; i < 2; ++i) {
      scratch16_[i].resize(static_cast<size_t>(max_rows_ * widest));
      scratch16_t_[i].resize(static_cast<size_t>(max_rows_ * widest));
    }
  }
}

template <class T>
T* BasicModel<T>::forward(const T* params, const T* x, int64_t n, Precision p) {
  TESSERA_CHECK(n > 0 && n <= max_rows_, "batch of ", n, " rows exceeds arena of ", max_rows_);
  last_forward_bf16_ = p == Precision::kBf16;
  if (last_forward_bf16_) {
    TESSERA_CHECK(!params16_.empty(), "bf16 forward on a model built for fp32");
    forward_bf16(params, x, n);
    return z_.back().data();
  }
  const T* in = x;
  for (int l = 0; l < spec_.layers(); ++l) {
    const int64_t fin = spec_.sizes[l], fout = spec_.sizes[l + 1];
    const T* w = params + spec_.weight_offset(l);
    const T* b = params + spec_.bias_offset(l);
    if (l + 1 < spec_.layers() && fused_relu()) {
      kernels::dense_forward_relu(in, w, b, a_[l].data(), n, fin, fout);
      in = a_[l].data();
      continue;
    }
    T* z = z_[l].data();
    kernels::dense_forward(in, w, b, z, n, fin, fout);
    if (l + 1 < spec_.layers()) {
      kernels::activation_forward(spec_.activation, z, a_[l].data(), n * fout);
      in = a_[l].data();
    }
  }
  return z_.back().data();
}

template <class T>
void BasicModel<T>::backward(const T* params, const T* x, T* dout, T* grads, int64_t n,
                            const std::function<void(int)>& layer_done,
                            const kernels::SgdUpdate* sgd) {
  TESSERA_CHECK(n > 0 && n <= max_rows_, "batch of ", n, " rows exceeds arena of ", max_rows_);
  TESSERA_CHECK(sgd == nullptr || (std::is_same_v<T, float> && !last_forward_bf16_),
                "a fused SGD update needs a float32 step");
  if (last_forward_bf16_) {
    backward_bf16(dout, grads, n, layer_done);
    return;
  }
  T* dz = dout;  // gradient w.r.t. this layer's pre-activation
  for (int l = spec_.layers() - 1; l >= 0; --l) {
    const int64_t fin = spec_.sizes[l], fout = spec_.sizes[l + 1];
    const T* in = l == 0 ? x : a_[l - 1].data();
    T* da_prev = l == 0 ? nullptr : (dz == scratch_a_.data() ? scratch_b_.data() : scratch_a_.data());
    const T* w = params + spec_.weight_offset(l);
    // The layer's bias follows its weights in the flat buffer: one run for its update.
    const kernels::SgdUpdate layer_sgd = sgd != nullptr ? sgd->at(spec_.weight_offset(l)) : kernels::SgdUpdate{};
    const kernels::SgdUpdate* lsgd = sgd != nullptr ? &layer_sgd : nullptr;
    if (l > 0 && fused_relu()) {
      // in = a_{l-1} = relu(z_{l-1}): relu's backward runs on each dx tile in the same pass, so
      // da_prev comes out as the gradient w.r.t. z_{l-1}.
      kernels::dense_backward_relu(dz, in, w, grads + spec_.weight_offset(l),
                                   grads + spec_.bias_offset(l), da_prev, n, fin, fout, lsgd);
      if (layer_done) layer_done(l);
      dz = da_prev;
      continue;
    }
    kernels::dense_backward(dz, in, w, grads + spec_.weight_offset(l), grads + spec_.bias_offset(l),
                            da_prev, n, fin, fout, lsgd);
    if (layer_done) layer_done(l);
    if (l > 0) {
      kernels::activation_backward(spec_.activation, z_[l - 1].data(), a_[l - 1].data(), da_prev,
                                   da_prev, n * fin);
      dz = da_prev;
    }
  }
}

template <class T>
void BasicModel<T>::forward_bf16(const T* params, const T* x, int64_t n) {
  if constexpr (std::is_same_v<T, float>) {
    // Once per step: backward reuses these weights.
    kernels::to_bf16(params, params16_.data(), spec_.param_count());
    kernels::to_bf16(x, x16_.data(), n * spec_.inputs());
    const kernels::bf16* in = x16_.data();
    for (int l = 0; l < spec_.layers(); ++l) {
      const int64_t fin = spec_.sizes[l], fout = spec_.sizes[l + 1];
      const kernels::bf16* w = params16_.data() + spec_.weight_offset(l);
      const T* b = params + spec_.bias_offset(l);
      if (l + 1 == spec_.layers()) {
        kernels::dense_forward_bf16(in, w, b, z_[l].data(), nullptr, n, fin, fout, false);
      } else if (fused_relu()) {
        kernels::dense_forward_bf16(in, w, b, a_[l].data(), a16_[l].data(), n, fin, fout, true);
      } else {
        kernels::dense_forward_bf16(in, w, b, z_[l].data(), nullptr, n, fin, fout, false);
        kernels::activation_forward(spec_.activation, z_[l].data(), a_[l].data(), n * fout);
        kernels::to_bf16(a_[l].data(), a16_[l].data(), n * fout);
      }
      in = l + 1 < spec_.layers() ? a16_[l].data() : nullptr;
    }
  }
}

template <class T>
void BasicModel<T>::backward_bf16(T* dout, T* grads, int64_t n, const std::function<void(int)>& layer_done) {
  if constexpr (std::is_same_v<T, float>) {
    T* dz = dout;  // float gradient w.r.t. this layer's pre-activation
    int cur = 0;   // scratch16_[cur] / scratch16_t_[cur] hold bf16(dz), plain and transposed
    kernels::to_bf16(dz, scratch16_[0].data(), scratch16_t_[0].data(), n, spec_.outputs());
    for (int l = spec_.layers() - 1; l >= 0; --l) {
      const int64_t fin = spec_.sizes[l], fout = spec_.sizes[l + 1];
      kernels::DenseBf16Backward a;
      a.dy = dz;
      a.dy16 = scratch16_[cur].data();
      a.dyt16 = scratch16_t_[cur].data();
      a.x16 = l == 0 ? x16_.data() : a16_[l - 1].data();
      a.w16 = params16_.data() + spec_.weight_offset(l);
      a.dw = grads + spec_.weight_offset(l);
      a.db = grads + spec_.bias_offset(l);
      if (l > 0) {
        a.dx = dz == scratch_a_.data() ? scratch_b_.data() : scratch_a_.data();
        if (fused_relu()) {
          // relu's backward and the bf16 copies for the next product in the dx tiles' epilogue.
          a.relu_x = a_[l - 1].data();
          a.dx16 = scratch16_[1 - cur].data();
          a.dxt16 = scratch16_t_[1 - cur].data();
        }
      }
      kernels::dense_backward_bf16(a, n, fin, fout);
      if (layer_done) layer_done(l);
      if (l == 0) break;
      if (!fused_relu()) {
        kernels::activation_backward(spec_.activation, z_[l - 1].data(), a_[l - 1].data(), a.dx,
                                     a.dx, n * fin);
        kernels::to_bf16(a.dx, scratch16_[1 - cur].data(), scratch16_t_[1 - cur].data(), n, fin);
      }
      dz = a.dx;
      cur = 1 - cur;
    }
  }
}

template class BasicModel<float>;
template class BasicModel<double>;

void init_params(const ModelSpec& spec, uint64_t seed, float* params) {
  for (int l = 0; l < spec.layers(); ++l) {
    const int64_t fin = spec.sizes[l], fout = spec.sizes[l + 1];
    const double bound = 1.0 / std::sqrt(static_cast<double>(fin));
    Rng rng(seed, 0x1417 + static_cast<uint64_t>(l));
    float* w = params + spec.weight_offset(l);
    for (int64_t i = 0; i < fout * fin; ++i) w[i] = static_cast<float>((2 * rng.uniform() - 1) * bound);
    float* b = params + spec.bias_offset(l);
    for (int64_t i = 0; i < fout; ++i) b[i] = static_cast<float>((2 * rng.uniform() - 1) * bound);
  }
}

std::vector<TensorInfo> tensor_layout(const ModelSpec& spec) {
  std::vector<TensorInfo> out;
  for (int l = 0; l < spec.layers(); ++l) {
    const int64_t fin = spec.sizes[l], fout = spec.sizes[l + 1];
    const std::string prefix = "layers." + std::to_string(l) + ".";
    out.push_back({prefix + "weight", {fout, fin}, spec.weight_offset(l), fout * fin});
    out.push_back({prefix + "bias", {fout}, spec.bias_offset(l), fout});
  }
  return out;
}

}  // namespace tessera
