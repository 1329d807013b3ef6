// Where `tessera train` starts: fresh, resumed from a checkpoint (--resume auto|PATH), or
// warm-started from another run's weights (--warm-start). Rank 0 reads and verifies what it
// starts from; the other ranks receive it by broadcast, so only rank 0 needs the files.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/communicator.h"
#include "core/config.h"
#include "core/flat_buffer.h"
#include "core/model.h"
#include "core/trainer.h"
#include "io/checkpoint.h"

namespace tessera::cli {

struct StartRequest {
  std::string resume = "auto";   // auto | never | PATH
  std::string warm_start;        // "" or a run directory, checkpoint directory or model file
  bool warm_optimizer = false;   // --warm-start-optimizer
};

struct StartPoint {
  TrainState state;               // step 0 unless resumed
  bool resumed = false;
  bool in_place = false;          // resumed in the same run directory: metrics.jsonl continues
  bool have_optimizer = false;    // moments and update count below are to be restored
  int64_t optimizer_updates = 0;
  int64_t metrics_lines = 0;      // resumed in place: lines of metrics.jsonl to keep
  std::string from;               // checkpoint resumed from, or the warm-start source
  std::string warm_start;         // rank 0: where the run's initial weights came from ("" = init)
  std::vector<float> m, v;
};

// Rank 0 only. Decides the start and fills params (a fresh start leaves them untouched).
// --resume auto continues from LATEST when the run directory holds an unfinished run (no
// model.h5); never starts fresh; PATH continues from that checkpoint or run directory. A
// checkpoint that fails verification or does not match (check_resumable) throws
// CorruptionError: there is no silent fallback to a fresh start or an older checkpoint.
StartPoint find_start(const StartRequest& req, const TrainConfig& cfg, const ResumeTarget& target,
                      FlatBuffer& params);

// Collective: rank 0's start point (and params) to every rank. m_count, v_count: the sizes of
// this run's optimizer moments (0 when unused).
void share_start(StartPoint& start, FlatBuffer& params, int64_t m_count, int64_t v_count, Communicator& comm);

// Rank 0: keeps the first `lines` lines of metrics.jsonl (drops what a killed run wrote after
// its last checkpoint), atomically. Returns the lines kept.
int64_t keep_metrics_lines(const std::string& path, int64_t lines);

}  // namespace tessera::cli
