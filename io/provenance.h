// provenance.json: where a run's data and config came from, so someone else can repeat it.
#pragma once

#include <string>
#include <utility>
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
  std::string warm_start;   // --warm-start source, "" when none
  std::string train_fingerprint;  // data_fingerprint(train) when already computed
  std::vector<std::pair<std::string, const Hdf5Dataset*>> extra_validation;  // data.extra_validation
};

// JSON with dataset fingerprints (io/files.h), config hash, version, build, N, hosts, time.
std::string provenance_json(const std::string& resolved_toml, const Hdf5Dataset& train,
                            const Hdf5Dataset* validation, const RunFacts& facts);

// The training data's identity, independent of where the files live: "sha256:<hex>" over each
// file's rows, the features, label columns and data-order chunk rows, and each file's
// fingerprint_file() in order. Equal fingerprints: the same rows in the same order (up to the
// sampling of fingerprint_file). Reads O(16 MiB) per file at most.
std::string data_fingerprint(const Hdf5Dataset& data);

// "sha256:<hex>" of the resolved config text.
std::string config_hash(const std::string& resolved_toml);

}  // namespace tessera
