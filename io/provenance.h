// provenance.json: where a run's data and config came from, so someone else can repeat it.
#pragma once

#include <string>
#include <vector>

#include "core/config.h"
#include "io/hdf5_dataset.h"

namespace tessera {

struct RunFacts {
  int world_size = 1;
  int threads_per_rank = 1;
  std::vector<std::string> hosts;
  std::string model;        // ModelSpec::describe()
  std::string command_line;
};

// JSON with dataset fingerprints (io/files.h), config hash, version, build, N, hosts, time.
std::string provenance_json(const std::string& resolved_toml, const Hdf5Dataset& train,
                            const Hdf5Dataset* validation, const RunFacts& facts);

// "sha256:<hex>" of the resolved config text.
std::string config_hash(const std::string& resolved_toml);

}  // namespace tessera
