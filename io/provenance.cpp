// provenance_json: fingerprints are computed by rank 0 only (one cheap pass per file).
#include "io/provenance.h"

#include <ctime>

#include "core/build_info.h"
#include "core/json.h"
#include "io/files.h"
#include "kernels/dense.h"

namespace tessera {

std::string config_hash(const std::string& resolved_toml) {
  return "sha256:" + sha256_hex(resolved_toml.data(), resolved_toml.size());
}

std::string data_fingerprint(const Hdf5Dataset& data) {
  std::string facts = std::to_string(data.features()) + " " + std::to_string(data.label_columns()) + " " +
                      std::to_string(data.order_chunk_rows()) + "\n";
  for (const Hdf5FileInfo& f : data.files()) facts += std::to_string(f.rows) + " " + fingerprint_file(f.path) + "\n";
  return "sha256:" + sha256_hex(facts.data(), facts.size());
}

namespace {

std::string datasets_json(const Hdf5Dataset& d) {
  std::string out = "[";
  for (size_t i = 0; i < d.files().size(); ++i) {
    const Hdf5FileInfo& f = d.files()[i];
    JsonObject o;
    o.add("path", f.path).add("bytes", f.bytes).add("rows", f.rows).add("features", d.features());
    o.add("x_dtype", f.x_dtype).add("y_dtype", f.y_dtype).add("chunk_rows", f.x_chunk_rows);
    o.add("fingerprint", fingerprint_file(f.path));
    out += (i ? "," : "") + o.str();
  }
  return out + "]";
}

}  // namespace

std::string provenance_json(const std::string& resolved_toml, const Hdf5Dataset& train,
                            const Hdf5Dataset* validation, const RunFacts& facts) {
  char when[32];
  const std::time_t now = std::time(nullptr);
  std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  JsonObject build;
  build.add("version", kVersion).add("git_commit", kGitCommit).add("build_type", kBuildType).add("compiler", kCompiler);
  // The float GEMM engine decides the bits of every result (its kernels round differently).
  build.add("gemm_engine", kernels::gemm_engine_name());
  build.add("bf16_engine", kernels::bf16_engine_name());
  JsonObject o;
  o.add("tessera_version", kVersion).add_raw("build", build.str());
  o.add("config_hash", config_hash(resolved_toml)).add("model", facts.model);
  o.add_raw("train_data", datasets_json(train));
  if (validation != nullptr) o.add_raw("validation_data", datasets_json(*validation));
  if (!facts.extra_validation.empty()) {
    JsonObject extra;
    for (const auto& [name, d] : facts.extra_validation) extra.add_raw(name, datasets_json(*d));
    o.add_raw("extra_validation_data", extra.str());
  }
  o.add("world_size", facts.world_size).add("threads_per_rank", facts.threads_per_rank);
  o.add("hosts", facts.hosts).add("start_time", when).add("command", facts.command_line);
  o.add("train_data_fingerprint", facts.train_fingerprint.empty() ? data_fingerprint(train) : facts.train_fingerprint);
  if (!facts.warm_start.empty()) o.add("warm_start", facts.warm_start);
  o.add("fingerprint_method",
        "sha256 over file size + evenly spaced 64 KiB windows, one per 64 MiB, 16 to 256 (whole file if < 1 MiB)");
  return o.str() + "\n";
}

}  // namespace tessera
