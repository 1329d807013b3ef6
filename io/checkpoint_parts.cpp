// Checkpoint text parts. Everything read back is distrusted: a field that is missing, of the
// wrong type or out of range is a CorruptionError naming the part and the field.
#include "io/checkpoint_parts.h"

#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <toml++/toml.h>

#include "core/error.h"
#include "core/json.h"
#include "io/files.h"
#include "io/model_file.h"
#include "kernels/parallel.h"

namespace tessera {

std::string step_name(int64_t step) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "step-%06lld", static_cast<long long>(step));
  return buf;
}

int64_t parse_step_name(const std::string& name) {
  if (name.rfind("step-", 0) != 0 || name.size() < 6 || name.size() > 24) return -1;
  int64_t v = 0;
  for (size_t i = 5; i < name.size(); ++i) {
    if (name[i] < '0' || name[i] > '9') return -1;
    v = v * 10 + (name[i] - '0');
  }
  return v;
}

std::string rank_part_name(int rank) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "rank-%05d.txt", rank);
  return buf;
}

std::string moments_sha256(std::span<const float> m, std::span<const float> v) {
  std::string h[2];
  kernels::for_chunks(2, 1, [&](int64_t b, int64_t) {
    const std::span<const float> s = b == 0 ? m : v;
    h[b] = sha256_hex(s.data(), s.size_bytes());
  });
  const std::string both = h[0] + h[1];
  return sha256_hex(both.data(), both.size());
}

ReplicaDigests replica_digests(const ModelSpec& spec, const float* params, std::span<const float> m,
                               std::span<const float> v) {
  ReplicaDigests d;
  kernels::for_chunks(2, 1, [&](int64_t b, int64_t) {
    if (b == 0) {
      d.params = weights_sha256(spec, params);
    } else {
      d.optimizer = moments_sha256(m, v);
    }
  });
  return d;
}

std::string rank_part_text(int rank, int world, int64_t step, const ReplicaDigests& d) {
  std::ostringstream os;
  os << "rank " << rank << " of " << world << "\nstep " << step << "\nparams_sha256 " << d.params
     << "\noptimizer_sha256 " << d.optimizer << "\n";
  return os.str();
}

namespace {

std::string hex_double(double v) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%a", v);
  return json_quote(buf);
}

}  // namespace

std::string meta_toml(const CheckpointMeta& m) {
  std::ostringstream os;
  os << "# tessera checkpoint state (doubles as exact hex floats)\n"
     << "format = " << json_quote(kCheckpointFormat) << "\n"
     << "step = " << m.state.step << "\n"
     << "epoch = " << (m.steps_per_epoch > 0 ? m.state.step / m.steps_per_epoch : 0) << "\n"
     << "step_in_epoch = " << (m.steps_per_epoch > 0 ? m.state.step % m.steps_per_epoch : 0) << "\n"
     << "steps_per_epoch = " << m.steps_per_epoch << "\n"
     << "evaluated_at = " << m.state.evaluated_at << "\n"
     << "interval_loss_sum = " << hex_double(m.state.interval[0]) << "\n"
     << "interval_correct = " << hex_double(m.state.interval[1]) << "\n"
     << "interval_rows = " << hex_double(m.state.interval[2]) << "\n"
     << "last_loss = " << hex_double(m.state.last_loss) << "\n"
     << "elapsed_s = " << hex_double(m.state.elapsed_s) << "\n"
     << "skipped_steps = " << m.state.skipped_steps << "\n"
     << "optimizer = " << json_quote(m.optimizer) << "\n"
     << "optimizer_updates = " << m.optimizer_updates << "\n"
     << "metrics_lines = " << m.metrics_lines << "\n"
     << "world_size = " << m.world_size << "\n"
     << "model = " << json_quote(m.model) << "\n"
     << "config_hash = " << json_quote(m.config_hash) << "\n"
     << "identity_hash = " << json_quote(m.identity_hash) << "\n"
     << "data_fingerprint = " << json_quote(m.data_fingerprint) << "\n"
     << "tessera_version = " << json_quote(m.tessera_version) << "\n"
     << "warm_start = " << json_quote(m.warm_start) << "\n"
     << "# no random state: the data order and the initial weights are counter-based functions of\n"
     << "# train.seed, epoch and step (core/rng.h), and no layer draws random numbers\n"
     << "rng = \"none\"\n";
  return os.str();
}

CheckpointMeta parse_meta(const std::string& text, const std::string& where) {
  toml::table t;
  try {
    t = toml::parse(text, where);
  } catch (const toml::parse_error& e) {
    throw CorruptionError(where + ": not valid TOML (" + std::string(e.description()) + ")");
  }
  auto bad = [&](const char* key, const char* want) {
    throw CorruptionError(where + ": field '" + std::string(key) + "' missing or not " + want);
  };
  auto integer = [&](const char* key) {
    const auto v = t[key].value_exact<int64_t>();
    if (!v) bad(key, "an integer");
    return *v;
  };
  auto text_of = [&](const char* key) {
    const auto v = t[key].value_exact<std::string>();
    if (!v) bad(key, "a string");
    return *v;
  };
  auto real = [&](const char* key) {
    const std::string s = text_of(key);
    char* end = nullptr;
    const double d = std::strtod(s.c_str(), &end);
    if (s.empty() || *end != '\0') bad(key, "a hex float");
    return d;
  };
  if (text_of("format") != kCheckpointFormat) {
    throw CorruptionError(where + ": format '" + text_of("format") + "' is not " + kCheckpointFormat);
  }
  CheckpointMeta m;
  m.state.step = integer("step");
  m.steps_per_epoch = integer("steps_per_epoch");
  m.state.evaluated_at = integer("evaluated_at");
  m.state.interval[0] = real("interval_loss_sum");
  m.state.interval[1] = real("interval_correct");
  m.state.interval[2] = real("interval_rows");
  m.state.last_loss = real("last_loss");
  m.state.elapsed_s = real("elapsed_s");
  m.state.skipped_steps = integer("skipped_steps");
  m.optimizer = text_of("optimizer");
  m.optimizer_updates = integer("optimizer_updates");
  m.metrics_lines = integer("metrics_lines");
  m.world_size = integer("world_size");
  m.model = text_of("model");
  m.config_hash = text_of("config_hash");
  m.identity_hash = text_of("identity_hash");
  m.data_fingerprint = text_of("data_fingerprint");
  m.tessera_version = text_of("tessera_version");
  m.warm_start = text_of("warm_start");
  if (m.state.step < 0 || m.steps_per_epoch < 1 || m.world_size < 1 || m.world_size > (1 << 24) ||
      m.optimizer_updates < 0 || m.metrics_lines < 0) {
    throw CorruptionError(where + ": step, steps_per_epoch, world_size or counters out of range");
  }
  return m;
}

std::string manifest_text(const std::string& dir, int64_t step, const std::vector<std::string>& parts) {
  std::ostringstream os;
  os << kCheckpointFormat << "\nstep " << step << "\n";
  std::vector<std::string> paths;
  std::vector<long> bytes;
  for (const std::string& p : parts) {
    paths.push_back(dir + "/" + p);
    std::FILE* f = std::fopen(paths.back().c_str(), "rb");
    if (f == nullptr) throw Error("checkpoint part " + paths.back() + " was not written");
    std::fseek(f, 0, SEEK_END);
    bytes.push_back(std::ftell(f));
    std::fclose(f);
  }
  const std::vector<std::string> digests = sha256_files(paths);
  for (size_t i = 0; i < parts.size(); ++i) {
    os << "part " << digests[i] << " " << bytes[i] << " " << parts[i] << "\n";
  }
  const std::string body = os.str();
  return body + "end " + sha256_hex(body.data(), body.size()) + "\n";
}

std::vector<ManifestPart> parse_manifest(const std::string& text, const std::string& where, int64_t* step) {
  const size_t end = text.rfind("end ");
  if (end == std::string::npos || (end > 0 && text[end - 1] != '\n')) {
    throw CorruptionError(where + ": MANIFEST has no end line (truncated)");
  }
  const std::string body = text.substr(0, end);
  if (text.substr(end) != "end " + sha256_hex(body.data(), body.size()) + "\n") {
    throw CorruptionError(where + ": MANIFEST checksum mismatch (altered or damaged)");
  }
  std::istringstream in(body);
  std::string line, word;
  std::getline(in, line);
  if (line != kCheckpointFormat) throw CorruptionError(where + ": MANIFEST format '" + line + "' is not " + kCheckpointFormat);
  if (!(in >> word >> *step) || word != "step") throw CorruptionError(where + ": MANIFEST has no step line");
  std::vector<ManifestPart> parts;
  ManifestPart p;
  while (in >> word >> p.sha256 >> p.bytes >> p.name) {
    // Part names come from a file: only plain names inside the checkpoint directory.
    if (word != "part" || p.name.find('/') != std::string::npos || p.name.empty() || p.name[0] == '.') {
      throw CorruptionError(where + ": MANIFEST line for '" + p.name + "' is malformed");
    }
    parts.push_back(p);
  }
  return parts;
}

}  // namespace tessera
