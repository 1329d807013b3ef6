// Model weights files (DESIGN §5): exact round trip, reproducible bytes, CorruptionError (exit 4)
// for altered, truncated or foreign files, and model.init from a plain PyTorch-style file.
#include "io/model_file.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "core/error.h"
#include "tests/io/error_matchers.h"
#include "tests/io/test_files.h"

namespace tessera {
namespace {

using testing::TempDir;

ModelSpec spec_of(std::vector<int64_t> sizes, kernels::Activation act, Task task) {
  ModelSpec s;
  s.kind = sizes.size() > 2 ? "mlp" : "linear";
  s.sizes = std::move(sizes);
  s.activation = act;
  s.task = task;
  return s;
}

std::vector<float> params_for(const ModelSpec& spec, uint64_t seed) {
  std::vector<float> p(static_cast<size_t>(spec.param_count()));
  init_params(spec, seed, p.data());
  return p;
}

// Byte offsets in `bytes` where the 4 bytes of v occur.
std::vector<size_t> find_float(const std::string& bytes, float v) {
  char pat[4];
  std::memcpy(pat, &v, 4);
  std::vector<size_t> at;
  for (size_t pos = bytes.find(std::string(pat, 4)); pos != std::string::npos;
       pos = bytes.find(std::string(pat, 4), pos + 1)) {
    at.push_back(pos);
  }
  return at;
}

void expect_same_spec(const ModelSpec& a, const ModelSpec& b) {
  EXPECT_EQ(a.kind, b.kind);
  EXPECT_EQ(a.sizes, b.sizes);
  EXPECT_EQ(a.activation, b.activation);
  EXPECT_EQ(a.task, b.task);
}

TEST(ModelFile, RoundTripsSpecAndParamsExactly) {
  TempDir dir;
  const ModelSpec specs[] = {
      spec_of({7, 9, 5, 3}, kernels::Activation::kGelu, Task::kClassification),
      spec_of({4, 1}, kernels::Activation::kRelu, Task::kBinary),
      spec_of({6, 8, 2}, kernels::Activation::kSigmoid, Task::kRegression),
      spec_of({3, 5, 5, 5, 4}, kernels::Activation::kTanh, Task::kClassification),
  };
  int i = 0;
  for (const ModelSpec& spec : specs) {
    const std::string path = dir.file("m" + std::to_string(i++) + ".h5");
    std::vector<float> p = params_for(spec, 3);
    p[0] = -0.0f;  // bit-exact, including signed zero and tiny values
    p[1] = 1e-40f;
    write_model_file(path, spec, p.data());
    const ModelFile m = read_model_file(path);
    expect_same_spec(m.spec, spec);
    ASSERT_EQ(m.params.size(), p.size());
    EXPECT_EQ(std::memcmp(m.params.data(), p.data(), p.size() * sizeof(float)), 0) << spec.describe();
    // No temp file left behind.
    int files = 0;
    for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
      (void)e;
      ++files;
    }
    EXPECT_EQ(files, i);
  }
}

TEST(ModelFile, SameModelGivesIdenticalBytes) {
  TempDir dir;
  const ModelSpec spec = spec_of({7, 9, 5, 3}, kernels::Activation::kRelu, Task::kClassification);
  const std::vector<float> p = params_for(spec, 11);
  write_model_file(dir.file("a.h5"), spec, p.data());
  const std::string first = testing::read_bytes(dir.file("a.h5"));
  write_model_file(dir.file("a.h5"), spec, p.data());
  write_model_file(dir.file("b.h5"), spec, p.data());
  EXPECT_EQ(testing::read_bytes(dir.file("a.h5")), first);
  EXPECT_EQ(testing::read_bytes(dir.file("b.h5")), first);
  // And a different model gives different bytes.
  const std::vector<float> q = params_for(spec, 12);
  write_model_file(dir.file("c.h5"), spec, q.data());
  EXPECT_NE(testing::read_bytes(dir.file("c.h5")), first);
}

TEST(ModelFile, FlippedWeightByteIsCorruption) {
  TempDir dir;
  const ModelSpec spec = spec_of({7, 9, 5, 3}, kernels::Activation::kTanh, Task::kClassification);
  const std::vector<float> p = params_for(spec, 5);
  const std::string good_path = dir.file("good.h5");
  write_model_file(good_path, spec, p.data());
  const std::string good = testing::read_bytes(good_path);
  ASSERT_NO_THROW(read_model_file(good_path));

  // One weight in each tensor: find its bytes (unique in the file) and flip the lowest bit.
  int flipped = 0;
  for (const TensorInfo& t : tensor_layout(spec)) {
    const float v = p[static_cast<size_t>(t.offset + t.count / 2)];
    const std::vector<size_t> at = find_float(good, v);
    if (at.size() != 1) continue;  // ambiguous; another tensor covers this case
    std::string bad = good;
    bad[at[0]] = static_cast<char>(bad[at[0]] ^ 0x01);
    const std::string bad_path = dir.file("bad-" + t.name + ".h5");
    testing::write_bytes(bad_path, bad);
    TESSERA_EXPECT_THROW_NAMING(CorruptionError, read_model_file(bad_path), bad_path, "checksum");
    std::vector<float> out(p.size());
    TESSERA_EXPECT_THROW_NAMING(CorruptionError, load_init_weights(bad_path, spec, out.data()), bad_path,
                                "checksum");
    ++flipped;
  }
  EXPECT_GE(flipped, 4) << "weights must be findable in the file";
}

TEST(ModelFile, TruncatedFileIsCorruption) {
  TempDir dir;
  const ModelSpec spec = spec_of({20, 16, 3}, kernels::Activation::kRelu, Task::kClassification);
  const std::vector<float> p = params_for(spec, 1);
  write_model_file(dir.file("m.h5"), spec, p.data());
  const std::string good = testing::read_bytes(dir.file("m.h5"));
  for (size_t keep : {size_t{0}, size_t{7}, size_t{100}, good.size() / 3, good.size() / 2,
                      good.size() * 9 / 10, good.size() - 1}) {
    const std::string path = dir.file("cut" + std::to_string(keep) + ".h5");
    testing::write_bytes(path, good.substr(0, keep));
    SCOPED_TRACE(::testing::Message() << "kept " << keep << " of " << good.size() << " bytes");
    TESSERA_EXPECT_THROW_NAMING(CorruptionError, read_model_file(path), path);
    std::vector<float> out(p.size());
    TESSERA_EXPECT_THROW_NAMING(CorruptionError, load_init_weights(path, spec, out.data()), path);
  }
}

TEST(ModelFile, MissingFileIsCorruption) {
  TempDir dir;
  TESSERA_EXPECT_THROW_NAMING(CorruptionError, read_model_file(dir.file("none.h5")), dir.file("none.h5"));
}

// A file like one h5py writes from a PyTorch state_dict: just the tensors, no attributes.
void write_torch_style(const std::string& path, const ModelSpec& spec, const std::vector<float>& p,
                       bool transpose_layer1, bool skip_last_bias, bool as_float64) {
  testing::H5Writer w(path);
  for (const TensorInfo& t : tensor_layout(spec)) {
    if (skip_last_bias && t.name == "layers." + std::to_string(spec.layers() - 1) + ".bias") continue;
    std::vector<hsize_t> dims(t.shape.begin(), t.shape.end());
    if (transpose_layer1 && t.name == "layers.1.weight") std::swap(dims[0], dims[1]);
    const std::vector<float> v(p.begin() + t.offset, p.begin() + t.offset + t.count);
    if (as_float64) {
      w.write(t.name, dims, std::vector<double>(v.begin(), v.end()), H5T_IEEE_F64LE);
    } else {
      w.write(t.name, dims, v, H5T_IEEE_F32LE);
    }
  }
}

TEST(ModelFile, PlainTensorFileIsNotAModelFileButIsAnInit) {
  TempDir dir;
  const ModelSpec spec = spec_of({7, 9, 5, 3}, kernels::Activation::kRelu, Task::kClassification);
  const std::vector<float> p = params_for(spec, 21);
  for (bool f64 : {false, true}) {
    const std::string path = dir.file(f64 ? "torch64.h5" : "torch.h5");
    write_torch_style(path, spec, p, false, false, f64);
    TESSERA_EXPECT_THROW_NAMING(CorruptionError, read_model_file(path), path);
    std::vector<float> out(p.size(), 0.f);
    ASSERT_NO_THROW(load_init_weights(path, spec, out.data()));
    EXPECT_EQ(out, p);
  }
  // A tessera file is also a valid init.
  write_model_file(dir.file("tessera.h5"), spec, p.data());
  std::vector<float> out(p.size(), 0.f);
  load_init_weights(dir.file("tessera.h5"), spec, out.data());
  EXPECT_EQ(out, p);
}

TEST(ModelFile, InitRejectsWrongShapesNamingTheTensor) {
  TempDir dir;
  const ModelSpec spec = spec_of({7, 9, 5, 3}, kernels::Activation::kRelu, Task::kClassification);
  const std::vector<float> p = params_for(spec, 21);
  std::vector<float> out(p.size());
  write_torch_style(dir.file("t.h5"), spec, p, true, false, false);
  TESSERA_EXPECT_THROW_NAMING(CorruptionError, load_init_weights(dir.file("t.h5"), spec, out.data()),
                              dir.file("t.h5"), "layers.1.weight", "9x5", "5x9");
  write_torch_style(dir.file("m.h5"), spec, p, false, true, false);
  TESSERA_EXPECT_THROW_NAMING(CorruptionError, load_init_weights(dir.file("m.h5"), spec, out.data()),
                              dir.file("m.h5"), "layers.2.bias");
  // A model of another architecture.
  const ModelSpec other = spec_of({7, 10, 5, 3}, kernels::Activation::kRelu, Task::kClassification);
  std::vector<float> out2(static_cast<size_t>(other.param_count()));
  write_model_file(dir.file("x.h5"), spec, p.data());
  TESSERA_EXPECT_THROW_NAMING(CorruptionError, load_init_weights(dir.file("x.h5"), other, out2.data()),
                              "layers.0.weight");
}

TEST(ModelFile, TextFileIsCorruption) {
  TempDir dir;
  testing::write_bytes(dir.file("w.h5"), "not weights\n");
  TESSERA_EXPECT_THROW_NAMING(CorruptionError, read_model_file(dir.file("w.h5")), dir.file("w.h5"));
}

}  // namespace
}  // namespace tessera
