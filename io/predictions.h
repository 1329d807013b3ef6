// `tessera predict` output: one HDF5 file, rows in input order. Each rank computes its
// contiguous share of rows; ranks write in turn into a temp file renamed into place at the end.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/communicator.h"
#include "core/config.h"

namespace tessera {

struct PredictionPart {
  int64_t first_row = 0;        // global index of this rank's first row
  int64_t rows = 0;
  int64_t outputs = 0;
  std::vector<float> scores;    // (rows, outputs): logits, the binary logit, or regression output
};

// Collective. Datasets: classification "logits" (rows, K) + "class" (rows, int64);
// binary "logit" (rows) + "class" (rows, int64); regression "prediction" (rows, T).
void write_predictions(const std::string& path, Task task, int64_t total_rows,
                       const PredictionPart& mine, Communicator& comm);

}  // namespace tessera
