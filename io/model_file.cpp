// Weights files. The checksum covers the float bytes of every tensor in layout order, so a
// flipped byte anywhere in the weights is caught before the model is used.
#include "io/model_file.h"

#include <cstring>
#include <optional>

#include "core/error.h"
#include "core/json.h"
#include "io/files.h"
#include "io/h5.h"

namespace tessera {

namespace {

constexpr const char* kFormat = "tessera-weights/1";

void write_sizes_attr(hid_t obj, const std::vector<int64_t>& sizes) {
  hsize_t n = sizes.size();
  h5::Handle space(H5Screate_simple(1, &n, nullptr));
  h5::Handle a(H5Acreate2(obj, "sizes", H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT));
  if (!a.valid() || H5Awrite(a, H5T_NATIVE_INT64, sizes.data()) < 0) throw Error("cannot write attribute 'sizes'");
}

std::vector<int64_t> read_sizes_attr(hid_t obj, const std::string& path) {
  if (H5Aexists(obj, "sizes") <= 0) throw CorruptionError(path + ": attribute 'sizes' missing");
  h5::Handle a(H5Aopen(obj, "sizes", H5P_DEFAULT));
  h5::Handle space(H5Aget_space(a));
  const hssize_t n = H5Sget_simple_extent_npoints(space);
  if (n < 2 || n > 64) throw CorruptionError(path + ": attribute 'sizes' has " + std::to_string(n) + " entries");
  std::vector<int64_t> sizes(static_cast<size_t>(n));
  if (H5Aread(a, H5T_NATIVE_INT64, sizes.data()) < 0) throw CorruptionError(path + ": unreadable attribute 'sizes'");
  for (int64_t s : sizes) {
    if (s <= 0 || s > (int64_t{1} << 31)) throw CorruptionError(path + ": layer width " + std::to_string(s) + " out of range");
  }
  return sizes;
}

template <class Parse>
auto parse_enum(const std::string& v, const std::string& path, const char* what, Parse parse) {
  auto r = parse(v);
  if (!r) throw CorruptionError(path + ": unknown " + std::string(what) + " '" + v + "'");
  return *r;
}

// Reads each tensor of spec from file f into params, checking shapes.
void read_tensors(hid_t f, const std::string& path, const ModelSpec& spec, float* params) {
  for (const TensorInfo& t : tensor_layout(spec)) {
    if (!h5::exists(f, t.name)) {
      throw CorruptionError(path + ": tensor '" + t.name + "' missing (expected for " + spec.describe() + ")");
    }
    h5::Handle d(H5Dopen2(f, t.name.c_str(), H5P_DEFAULT));
    const std::vector<int64_t> shape = h5::shape(d);
    if (shape != t.shape) {
      std::string got, want;
      for (int64_t s : shape) got += (got.empty() ? "" : "x") + std::to_string(s);
      for (int64_t s : t.shape) want += (want.empty() ? "" : "x") + std::to_string(s);
      throw CorruptionError(path + ": tensor '" + t.name + "' has shape " + got + ", the model needs " + want);
    }
    h5::Handle type(H5Dget_type(d));
    if (H5Tget_class(type) != H5T_FLOAT) throw CorruptionError(path + ": tensor '" + t.name + "' is not floating point");
    if (H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, params + t.offset) < 0) {
      throw CorruptionError(path + ": cannot read tensor '" + t.name + "' (truncated file?)");
    }
  }
}

h5::Handle open_model(const std::string& path) {
  try {
    return h5::open_read(path);
  } catch (const DataError& e) {
    throw CorruptionError(e.what());
  }
}

}  // namespace

std::string weights_sha256(const ModelSpec& spec, const float* params) {
  return sha256_hex(params, static_cast<size_t>(spec.param_count()) * sizeof(float));
}

void write_model_file(const std::string& path, const ModelSpec& spec, const float* params) {
  write_model_file(path, spec, params, weights_sha256(spec, params));
}

void write_model_file(const std::string& path, const ModelSpec& spec, const float* params,
                      const std::string& sha256) {
  const auto hdf5 = h5::lock();  // a training source's I/O thread may still be reading
  atomic_write_with(path, [&](const std::string& tmp) {
    h5::Handle f = h5::create(tmp);
    for (const TensorInfo& t : tensor_layout(spec)) h5::write_floats(f, t.name, t.shape, params + t.offset);
    h5::write_string_attr(f, "tessera_format", kFormat);
    h5::write_string_attr(f, "kind", spec.kind);
    h5::write_string_attr(f, "activation", to_string(spec.activation));
    h5::write_string_attr(f, "task", to_string(spec.task));
    write_sizes_attr(f, spec.sizes);
    JsonObject arch;
    arch.add("kind", spec.kind).add("activation", to_string(spec.activation)).add("task", to_string(spec.task));
    std::string sizes = "[";
    for (size_t i = 0; i < spec.sizes.size(); ++i) sizes += (i ? "," : "") + std::to_string(spec.sizes[i]);
    arch.add_raw("sizes", sizes + "]");
    h5::write_string_attr(f, "architecture", arch.str());
    h5::write_string_attr(f, "weights_sha256", sha256);
    if (H5Fflush(f, H5F_SCOPE_GLOBAL) < 0) throw Error("cannot flush " + tmp);
  });
}

ModelFile read_model_file(const std::string& path) {
  const auto hdf5 = h5::lock();
  h5::Handle f = open_model(path);
  if (h5::read_string_attr(f, "tessera_format") != kFormat) {
    throw CorruptionError(path + ": not a tessera model file (attribute tessera_format != '" +
                          std::string(kFormat) + "'); a PyTorch weights file can be used as model.init");
  }
  ModelFile m;
  m.spec.kind = h5::read_string_attr(f, "kind");
  if (m.spec.kind != "linear" && m.spec.kind != "mlp") throw CorruptionError(path + ": unknown model kind '" + m.spec.kind + "'");
  m.spec.sizes = read_sizes_attr(f, path);
  const std::string act = h5::read_string_attr(f, "activation"), task = h5::read_string_attr(f, "task");
  using A = kernels::Activation;
  m.spec.activation = parse_enum(act, path, "activation", [](const std::string& v) -> std::optional<A> {
    if (v == "relu") return A::kRelu;
    if (v == "tanh") return A::kTanh;
    if (v == "gelu") return A::kGelu;
    if (v == "sigmoid") return A::kSigmoid;
    return std::nullopt;
  });
  m.spec.task = parse_enum(task, path, "task", [](const std::string& v) -> std::optional<Task> {
    if (v == "classification") return Task::kClassification;
    if (v == "binary") return Task::kBinary;
    if (v == "regression") return Task::kRegression;
    return std::nullopt;
  });
  m.params.resize(static_cast<size_t>(m.spec.param_count()));
  read_tensors(f, path, m.spec, m.params.data());
  m.sha256 = h5::read_string_attr(f, "weights_sha256");
  if (m.sha256.empty() || m.sha256 != weights_sha256(m.spec, m.params.data())) {
    throw CorruptionError(path + ": weights checksum mismatch (the file was altered or damaged; "
                          "use an intact copy)");
  }
  return m;
}

void load_init_weights(const std::string& path, const ModelSpec& spec, float* params) {
  const auto hdf5 = h5::lock();  // the training source's I/O thread is already reading
  h5::Handle f = open_model(path);
  read_tensors(f, path, spec, params);
  const std::string want = h5::read_string_attr(f, "weights_sha256");
  if (!want.empty() && want != weights_sha256(spec, params)) {
    throw CorruptionError(path + ": weights checksum mismatch (the file was altered or damaged)");
  }
}

}  // namespace tessera
