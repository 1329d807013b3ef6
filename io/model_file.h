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
};

// Writes atomically (temp, fsync, rename); identical inputs give identical bytes.
void write_model_file(const std::string& path, const ModelSpec& spec, const float* params);

// Reads and verifies a tessera model file: CorruptionError (exit 4) if it is not one, if a
// tensor is missing or misshapen, or if the checksum does not match.
ModelFile read_model_file(const std::string& path);

// model.init: fills params from a weights file in the same layout, written by tessera or by
// PyTorch (h5py); shapes must match spec. Verifies the checksum when the file carries one.
void load_init_weights(const std::string& path, const ModelSpec& spec, float* params);

}  // namespace tessera
