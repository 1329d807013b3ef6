// The training loop of STYLE §2: read this rank's slice, forward, loss, backward, allreduce,
// optimizer step; log and evaluate at the configured intervals. All ranks run it in lockstep.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "core/batch_source.h"
#include "core/communicator.h"
#include "core/config.h"
#include "core/evaluate.h"
#include "core/flat_buffer.h"
#include "core/json.h"
#include "core/grad_reducer.h"
#include "core/model.h"
#include "core/optimizer.h"
#include "core/progress.h"
#include "kernels/warm_stacks.h"

namespace tessera {

struct TrainSummary {
  int64_t steps = 0;
  double last_loss = 0.0;        // mean loss of the last log interval
  double seconds = 0.0;
  double samples_per_s = 0.0;
  EvalResult last_eval;
  bool evaluated = false;
  int64_t skipped_steps = 0;     // steps with a non-finite loss or gradient (train.non_finite = skip)
};

// Test-only fault injection (tests/cli/guard_test.sh), set by the CLI from the environment
// variable TESSERA_TEST_FAULT=KIND:RANK:STEP; never used by normal runs. KIND "nan" poisons the
// loss gradient of rank RANK at step STEP (backward carries it into the weight gradients);
// "extra_collective" makes that rank issue one allreduce the others do not; "other_op" makes it
// reduce with another operation where the others sum the same number of bytes; "stall" stops
// that rank at the start of step STEP until it is killed (tests/cli/checkpoint_test.sh).
struct TestFault {
  std::string kind;
  int rank = -1;
  int64_t step = -1;
};

// Where a run stands after `step` optimizer steps: with the weights and the optimizer state,
// everything needed to continue it exactly (a checkpoint). The data position is step itself:
// every epoch has the same number of steps, so (epoch, step in epoch) follows from it.
struct TrainState {
  int64_t step = 0;
  int64_t evaluated_at = -1;          // step of the last validation pass (-1: none yet)
  double interval[3] = {0, 0, 0};     // loss sum, correct, rows since the last training line
  double last_loss = 0.0;             // mean loss of the last training line
  double elapsed_s = 0.0;             // training seconds before this state (time_s continues)
  int64_t skipped_steps = 0;          // steps skipped so far (train.non_finite = "skip")
};

// DataError unless `rows` training rows fill at least one global batch (the message names the
// training files). Checked before anything is sized by the batch.
void check_batch_fits(const TrainConfig& cfg, int64_t rows);

// ConfigError naming train.precision when it asks for bf16 and this build or CPU cannot run
// the bf16 products (kernels::bf16_unsupported_reason says why).
void check_precision(const TrainSection& train);

// Number of optimizer steps a run of this config takes on `rows` training rows.
int64_t total_steps(const TrainSection& train, int64_t rows);

class Trainer {
 public:
  // metrics receives one JSON line per event (rank 0 writes it; other ranks pass nullptr).
  // validation may be null. The model arena must hold max(train, validation) batch rows, and be
  // built for train.precision.
  Trainer(const TrainConfig& cfg, Model& model, Communicator& comm, BatchSource& train,
          BatchSource* validation, std::function<void(const std::string&)> metrics,
          Progress& progress);

  // Collective. params must be identical on every rank (broadcast beforehand). start: where
  // a resumed run continues (the optimizer state must be restored to match).
  TrainSummary run(FlatBuffer& params, const TrainState& start = {});

  // Called (on every rank, collectively) after each step the checkpoint settings select
  // (checkpoint.every_steps, else each epoch's end) and after the last step, once that step's
  // training line and evaluations are written.
  void set_checkpoint_hook(std::function<void(const TrainState&)> hook) { checkpoint_ = std::move(hook); }
  Optimizer& optimizer() { return optimizer_; }
  // Whether steps take the fused SGD update (the constructor's rule, core/trainer.cpp).
  bool fused() const { return fused_; }
  // Another evaluation set, evaluated with the validation set and reported as split `name`.
  // The model arena must hold source->max_batch_rows() rows.
  void add_eval_set(std::string name, BatchSource* source) { eval_sets_.emplace_back(std::move(name), source); }

  // One optimizer step on global step `step` (epoch, step_in_epoch): read this rank's rows,
  // forward, loss, backward, allreduce, update. Collective. Returns the global loss sum and
  // correct count over the B rows. After warm-up it performs no heap allocation (tested).
  struct StepStats {
    double loss_sum = 0.0;
    double correct = 0.0;
    bool skipped = false;  // non-finite somewhere and train.non_finite = skip: weights unchanged
  };
  StepStats step(FlatBuffer& params, int64_t epoch, int64_t step_in_epoch, int64_t step);
  double lr(int64_t step) const { return optimizer_.lr(step); }
  void set_test_fault(TestFault fault) { fault_ = std::move(fault); }

 private:
  // Seconds this rank spent since the last log line: computing, waiting for its rows, and
  // waiting for collectives to finish (communication not hidden behind backward).
  struct Times {
    double compute = 0, data_wait = 0, comm_wait = 0;
  };
  void run_eval(const FlatBuffer& params, int64_t step, int64_t epoch, TrainSummary& summary);

  const TrainConfig& cfg_;
  Model& model_;
  Communicator& comm_;
  BatchSource& train_;
  BatchSource* validation_;
  std::vector<std::pair<std::string, BatchSource*>> eval_sets_;
  std::function<void(const std::string&)> metrics_;
  Progress& progress_;
  std::function<void(const TrainState&)> checkpoint_;
  // Adds per-rank timing, the input telemetry (data_wait_frac over the span seconds of the
  // interval, bytes_read of all ranks) and the slowest ranks to a training line; its one
  // allgather also compares the ranks' collective sequences (CommError if they differ). Collective.
  void add_rank_times(JsonObject& line, int64_t step, double span, int64_t bytes_read);
  StepStats non_finite(int64_t step, bool mine);
  void check_sequence(uint64_t sequence, int64_t step);

  FlatBuffer grads_;
  Optimizer optimizer_;
  // The fused SGD update (Optimizer::fused_update) and the buffer it writes the parameters into.
  bool fused_ = false;
  FlatBuffer params_next_;
  GradReducer reducer_;
  kernels::WarmStacks warm_stacks_;  // no step faults fresh stack pages on any thread
  std::function<void(int)> layer_done_;
  TestFault fault_;
  Times times_;
  int64_t skipped_ = 0;
};

}  // namespace tessera
