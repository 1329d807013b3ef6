// Model weights files (DESIGN §5): one float32 dataset per tensor named like a PyTorch
// state_dict ("layers.0.weight" (out, in), "layers.0.bias" (out), ...), the architecture as
// attributes, and a SHA-256 of all weights that every tessera load verifies.
#pragma once

#include <string>
#include <vector>

#include "core/model.h"

namespace tessera {

struct ModelFile {
  ModelSpec spec;
  std::vector<float> params;  // flat, in tensor_layout(spec) order
  std::string sha256;         // weights_sha256 of params, as the file recorded and the read verified
};

// SHA-256 of the flat weights (param_count() little-endian float32 in tensor_layout order): the
// model file's weights_sha256 and a checkpoint rank part's params_sha256.
std::string weights_sha256(const ModelSpec& spec, const float* params);

// Writes atomically (temp, fsync, rename); identical inputs give identical bytes. `sha256` is
// weights_sha256(spec, params) where the caller has it already (a checkpoint: its rank part
// records the same digest), so 4 bytes a weight are not hashed twice.
void write_model_file(const std::string& path, const ModelSpec& spec, const float* params);
void write_model_file(const std::string& path, const ModelSpec& spec, const float* params,
                      const std::string& sha256);

// Reads and verifies a tessera model file: CorruptionError (exit 4) if it is not one, if a
// tensor is missing or misshapen, or if the checksum does not match.
ModelFile read_model_file(const std::string& path);

// model.init: fills params from a weights file in the same layout, written by tessera or by
// PyTorch (h5py); shapes must match spec. Verifies the checksum when the file carries one.
void load_init_weights(const std::string& path, const ModelSpec& spec, float* params);

}  // namespace tessera
