// Loss dispatch by task, and exact evaluation: every row of a source counted once, rows split
// contiguously across ranks, sums reduced in double.
#pragma once

#include <cstdint>

#include "core/batch_source.h"
#include "core/communicator.h"
#include "core/model.h"
#include "kernels/loss.h"

namespace tessera {

// out (n, outputs) model outputs; writes dout = d(loss_sum * scale)/d(out) unless dout is null.
kernels::LossResult task_loss(Task task, const float* out, const Batch& batch, float* dout,
                              int64_t outputs, double scale);

struct EvalResult {
  int64_t rows = 0;
  double loss = 0.0;      // mean per-row loss
  double accuracy = 0.0;  // classification and binary
  double rmse = 0.0;      // regression
};

// Rows each rank evaluates per read: its share of a global batch, at least 256 (evaluation
// holds no gradients, so a larger read costs little and amortizes the per-read overhead).
int64_t eval_batch_rows(int64_t global_batch, int world);

// Collective: all ranks must call. Model arena must hold source.max_batch_rows() rows.
EvalResult evaluate(Model& model, const float* params, BatchSource& source, Communicator& comm);

}  // namespace tessera
