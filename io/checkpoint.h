// Checkpoints (DESIGN §5): one directory per committed checkpoint, <run>/checkpoints/step-NNNNNN/,
// holding the weights (a tessera model file), the optimizer moments, the training state, the
// resolved config, provenance, one part per rank and a MANIFEST with the SHA-256 of every part.
// A checkpoint is written into .tmp-step-NNNNNN/, committed by rename, and LATEST names the newest.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/communicator.h"
#include "core/model.h"
#include "core/trainer.h"
#include "io/model_file.h"

namespace tessera {

inline constexpr const char* kCheckpointFormat = "tessera-checkpoint/1";

// Everything a checkpoint records besides tensors (its state.toml).
struct CheckpointMeta {
  TrainState state;
  int64_t steps_per_epoch = 0;
  int64_t optimizer_updates = 0;
  int64_t metrics_lines = 0;      // lines of metrics.jsonl when it was taken (resume truncates to it)
  int64_t world_size = 1;         // N of the run that wrote it (one rank part each)
  std::string model;              // ModelSpec::describe()
  std::string optimizer;          // optimizer.kind
  std::string config_hash;        // config_hash() of the resolved config (record)
  std::string identity_hash;      // hash of the keys that must match to resume (io/config_parser.h)
  std::string data_fingerprint;   // data_fingerprint() of the training files
  std::string tessera_version;
  std::string warm_start;         // where the initial weights came from, "" for a fresh start
};

struct CheckpointWrite {
  const ModelSpec* spec = nullptr;
  const float* params = nullptr;        // spec->param_count(), identical on every rank
  std::span<const float> m, v;          // optimizer moments (empty when unused)
  CheckpointMeta meta;                  // rank 0's is written
  std::string config_toml, provenance;  // rank 0's are written
};

// Collective: all ranks must call. Every rank writes its part (rank-R.txt: the checksums of its
// replica) into the temp directory, rank 0 the shared parts; the ranks agree that every write
// succeeded (else all throw, naming the ranks that failed, and nothing is committed); rank 0
// writes and fsyncs MANIFEST, renames the directory into place, replaces LATEST by rename and
// keeps the keep_last newest checkpoints (checkpoints newer than this one — an abandoned
// continuation after resuming from an older one — are removed). Returns the committed directory.
std::string write_checkpoint(const std::string& run_dir, const CheckpointWrite& w, int64_t keep_last,
                             Communicator& comm);

struct Checkpoint {
  std::string dir;
  CheckpointMeta meta;
  ModelFile model;             // verified weights and architecture
  std::vector<float> m, v;     // optimizer moments (empty when the checkpoint holds none)
  std::string config_toml, provenance;
  std::vector<std::string> parts;  // names listed in MANIFEST
};

// Reads and verifies a checkpoint directory: MANIFEST present and intact, every part present
// with the recorded size and SHA-256, the weights' own checksum, tensor shapes, and every rank's
// replica checksums. CorruptionError (exit 4) naming the directory and the part otherwise.
Checkpoint read_checkpoint(const std::string& dir);

// The committed checkpoint LATEST names in run_dir; "" when run_dir has no LATEST.
// CorruptionError when LATEST exists but is unreadable or names a missing directory.
std::string latest_checkpoint(const std::string& run_dir);

// A checkpoint directory, or a run directory (its LATEST): the checkpoint directory it names.
// CorruptionError when it names none.
std::string resolve_checkpoint(const std::string& path);

// True when path looks like a checkpoint directory (has a MANIFEST or is a .tmp- one).
bool is_checkpoint_dir(const std::string& path);

// What a resumed run must match: the same architecture, the same identity config keys and the
// same training data. CorruptionError (exit 4) naming what differs, with the way out.
struct ResumeTarget {
  const ModelSpec* spec = nullptr;
  std::string identity_toml;      // of the current config
  std::string data_fingerprint;   // of the current training files
  int64_t steps_per_epoch = 0;
};
void check_resumable(const Checkpoint& c, const ResumeTarget& now);

// `tessera checkpoint inspect`: a checkpoint directory, or a run directory (each checkpoint and
// LATEST). Contents, provenance and a verdict per checkpoint; *ok false when any fails.
std::string inspect_checkpoint(const std::string& path, bool* ok);

}  // namespace tessera
