// TOML -> TrainConfig (DESIGN §2), strictly: an unknown key, a wrong type or an out-of-range
// value is a ConfigError naming the key. `--set key=value` overrides are applied before
// validation, so they are checked exactly like the file.
#pragma once

#include <string>
#include <vector>

#include "core/config.h"

namespace tessera {

struct ParsedConfig {
  TrainConfig config;
  std::string resolved_toml;  // every key with its final value; paths absolute
  std::string source;         // the config file path
};

// path: the TOML file; relative paths inside it resolve against its directory.
ParsedConfig parse_config_file(const std::string& path, const std::vector<std::string>& overrides);
// text: TOML; base_dir resolves relative paths; source names the text in errors.
ParsedConfig parse_config_text(const std::string& text, const std::string& base_dir,
                               const std::string& source, const std::vector<std::string>& overrides);

// Writes `cfg` back as TOML (the resolved config stored in the run directory).
std::string to_toml(const TrainConfig& cfg);

// The keys a resumed run must share with its checkpoint, as TOML: everything that decides the
// weights of step s+1 from those of step s. Left out (free to change on resume): file paths
// (the data are compared by fingerprint instead), validation sets, model.init, the run length
// (train.epochs, train.max_steps), logging and evaluation intervals, threads, checkpoint.*,
// distributed.timeout_s and bucket_mb, data.memory_budget_mb.
std::string resume_identity_toml(const TrainConfig& cfg);
// "optimizer.lr: 0.1 in the checkpoint, 0.05 now; ..." for two resume_identity_toml texts.
std::string identity_diff(const std::string& before, const std::string& now);

}  // namespace tessera
