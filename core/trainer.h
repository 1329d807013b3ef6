// The training loop of STYLE §2: read this rank's slice, forward, loss, backward, allreduce,
// optimizer step; log and evaluate at the configured intervals. All ranks run it in lockstep.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "core/batch_source.h"
#include "core/communicator.h"
#include "core/config.h"
#include "core/evaluate.h"
#include "core/flat_buffer.h"
#include "core/model.h"
#include "core/optimizer.h"
#include "core/progress.h"

namespace tessera {

struct TrainSummary {
  int64_t steps = 0;
  double last_loss = 0.0;        // mean loss of the last log interval
  double seconds = 0.0;
  double samples_per_s = 0.0;
  EvalResult last_eval;
  bool evaluated = false;
};

// DataError unless `rows` training rows fill at least one global batch (the message names the
// training files). Checked before anything is sized by the batch.
void check_batch_fits(const TrainConfig& cfg, int64_t rows);

// Number of optimizer steps a run of this config takes on `rows` training rows.
int64_t total_steps(const TrainSection& train, int64_t rows);

class Trainer {
 public:
  // metrics receives one JSON line per event (rank 0 writes it; other ranks pass nullptr).
  // validation may be null. The model arena must hold max(train, validation) batch rows.
  Trainer(const TrainConfig& cfg, Model& model, Communicator& comm, BatchSource& train,
          BatchSource* validation, std::function<void(const std::string&)> metrics,
          Progress& progress);

  // Collective. params must be identical on every rank (broadcast beforehand).
  TrainSummary run(FlatBuffer& params);

  // One optimizer step on global step `step` (epoch, step_in_epoch): read this rank's rows,
  // forward, loss, backward, allreduce, update. Collective. Returns the global loss sum and
  // correct count over the B rows. After warm-up it performs no heap allocation (tested).
  struct StepStats {
    double loss_sum = 0.0;
    double correct = 0.0;
  };
  StepStats step(FlatBuffer& params, int64_t epoch, int64_t step_in_epoch, int64_t step);
  double lr(int64_t step) const { return optimizer_.lr(step); }

 private:
  void run_eval(const FlatBuffer& params, int64_t step, int64_t epoch, TrainSummary& summary);

  const TrainConfig& cfg_;
  Model& model_;
  Communicator& comm_;
  BatchSource& train_;
  BatchSource* validation_;
  std::function<void(const std::string&)> metrics_;
  Progress& progress_;
  FlatBuffer grads_;
  Optimizer optimizer_;
  double data_wait_s_ = 0.0;  // time step() spent in train_.next() since the last log line
};

}  // namespace tessera
