// Loading and checking checkpoints. Order of checks: MANIFEST (present, intact), each part's
// presence, size and SHA-256 (the first damaged part in MANIFEST order is named), then contents
// (weights checksum and shapes, optimizer shapes, state fields, rank replicas). No part is
// parsed before its checksum matched, and nothing falls back to an older checkpoint: the caller
// is told which part of which checkpoint is wrong.
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "core/error.h"
#include "io/checkpoint.h"
#include "io/checkpoint_parts.h"
#include "io/config_parser.h"
#include "io/files.h"
#include "io/h5.h"

namespace tessera {

namespace fs = std::filesystem;

namespace {

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw CorruptionError(path + ": cannot read");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<float> read_moment(hid_t f, const std::string& name, int64_t count, const std::string& where) {
  if (!h5::exists(f, name)) return {};
  h5::Handle d(H5Dopen2(f, name.c_str(), H5P_DEFAULT));
  if (h5::shape(d) != std::vector<int64_t>{count} || h5::dtype_name(d) != "float32") {
    throw CorruptionError(where + ": dataset '" + name + "' is not float32 of " + std::to_string(count) +
                          " values (the model's parameter count)");
  }
  try {
    return h5::read_floats(d);
  } catch (const DataError&) {
    throw CorruptionError(where + ": cannot read dataset '" + name + "'");
  }
}

std::string rank_field(const std::string& text, const std::string& key) {
  std::istringstream in(text);
  std::string k, v;
  while (in >> k) {
    std::getline(in, v);
    if (k == key) return v.empty() ? v : v.substr(1);
  }
  return "";
}

}  // namespace

bool is_checkpoint_dir(const std::string& path) {
  return fs::is_directory(path) &&
         (fs::exists(fs::path(path) / "MANIFEST") || fs::path(path).filename().string().rfind(".tmp-", 0) == 0);
}

Checkpoint read_checkpoint(const std::string& dir_in) {
  const std::string dir = fs::path(dir_in).lexically_normal().string();
  if (!fs::is_directory(dir)) throw CorruptionError(dir + ": no such checkpoint directory");
  if (fs::path(dir).filename().string().rfind(".tmp-", 0) == 0) {
    throw CorruptionError(dir + ": incomplete checkpoint: a temporary directory that was never committed "
                          "(the write was interrupted); resume from a committed step- directory");
  }
  const std::string manifest = dir + "/MANIFEST";
  if (!fs::exists(manifest)) {
    throw CorruptionError(dir + ": incomplete checkpoint: part MANIFEST is missing (the write never "
                          "committed, or MANIFEST was deleted); resume from another checkpoint");
  }
  Checkpoint c;
  c.dir = dir;
  int64_t step = -1;
  const std::vector<ManifestPart> parts = parse_manifest(read_text(manifest), dir, &step);
  // Sizes first, then the parts of the right size hashed at once on oneTBB threads; the first
  // damaged part in MANIFEST order is named, whatever is wrong with it, as checking part after
  // part would.
  std::vector<std::string> wrong(parts.size()), paths;
  for (size_t i = 0; i < parts.size(); ++i) {
    const ManifestPart& p = parts[i];
    const std::string path = dir + "/" + p.name;
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
      wrong[i] = dir + ": part " + p.name + " is missing";
    } else if (st.st_size != p.bytes) {
      wrong[i] = dir + ": part " + p.name + " has " + std::to_string(st.st_size) + " bytes, MANIFEST says " +
                 std::to_string(p.bytes) + (st.st_size < p.bytes ? " (truncated)" : " (altered)");
    } else {
      paths.push_back(path);
    }
  }
  const std::vector<std::string> digests = sha256_files(paths);
  for (size_t i = 0, hashed = 0; i < parts.size(); ++i) {
    if (!wrong[i].empty()) throw CorruptionError(wrong[i]);
    if (digests[hashed++] != parts[i].sha256) {
      throw CorruptionError(dir + ": part " + parts[i].name + " checksum mismatch (altered or damaged)");
    }
    c.parts.push_back(parts[i].name);
  }
  auto listed = [&](const std::string& name) {
    if (std::find(c.parts.begin(), c.parts.end(), name) == c.parts.end()) {
      throw CorruptionError(dir + ": MANIFEST does not list part " + name);
    }
    return dir + "/" + name;
  };
  c.meta = parse_meta(read_text(listed("state.toml")), dir + "/state.toml");
  if (c.meta.state.step != step) {
    throw CorruptionError(dir + ": state.toml says step " + std::to_string(c.meta.state.step) + ", MANIFEST says " +
                          std::to_string(step));
  }
  c.config_toml = read_text(listed("config.toml"));
  c.provenance = read_text(listed("provenance.json"));
  c.model = read_model_file(listed("model.h5"));
  {
    const std::string opt = listed("optimizer.h5");
    const auto hdf5 = h5::lock();  // HDF5 here is not thread-safe; a read-ahead thread may run
    h5::Handle f = h5::open_read(opt);
    c.m = read_moment(f, "m", c.model.spec.param_count(), opt);
    c.v = read_moment(f, "v", c.model.spec.param_count(), opt);
  }
  const std::string& want_params = c.model.sha256;  // verified against the weights just read
  const std::string want_moments = moments_sha256(c.m, c.v);
  for (int64_t r = 0; r < c.meta.world_size; ++r) {
    const std::string name = rank_part_name(static_cast<int>(r));
    const std::string text = read_text(listed(name));
    if (rank_field(text, "params_sha256") != want_params || rank_field(text, "optimizer_sha256") != want_moments) {
      throw CorruptionError(dir + ": part " + name + ": rank " + std::to_string(r) +
                            "'s replica differs from the saved weights or optimizer state (the ranks had diverged)");
    }
  }
  return c;
}

std::string latest_checkpoint(const std::string& run_dir) {
  const fs::path latest = fs::path(run_dir) / "checkpoints" / "LATEST";
  if (!fs::exists(latest)) return "";
  std::string name = read_text(latest.string());
  while (!name.empty() && (name.back() == '\n' || name.back() == ' ')) name.pop_back();
  if (parse_step_name(name) < 0) throw CorruptionError(latest.string() + ": does not name a checkpoint ('" + name + "')");
  const fs::path dir = latest.parent_path() / name;
  if (!fs::is_directory(dir)) throw CorruptionError(latest.string() + ": names " + dir.string() + ", which is missing");
  return dir.string();
}

std::string resolve_checkpoint(const std::string& path) {
  if (is_checkpoint_dir(path)) return path;
  if (!fs::exists(path)) throw CorruptionError(path + ": no such checkpoint or run directory");
  if (fs::is_directory(path) && fs::path(path).filename().string().rfind("step-", 0) == 0) return path;
  const std::string latest = fs::is_directory(path) ? latest_checkpoint(path) : "";
  if (latest.empty()) {
    throw CorruptionError(path + ": not a checkpoint directory, and not a run directory with checkpoints/LATEST");
  }
  return latest;
}

void check_resumable(const Checkpoint& c, const ResumeTarget& now) {
  const std::string hint = " (to train this model further on changed data or settings, start a new run with "
                           "--warm-start " + c.dir + "; or --resume never to start over)";
  const ModelSpec& s = c.model.spec;
  if (s.sizes != now.spec->sizes || s.kind != now.spec->kind || s.activation != now.spec->activation ||
      s.task != now.spec->task) {
    throw CorruptionError(c.dir + ": part model.h5 is a checkpoint of another model: " + s.describe() +
                          "; the config builds " + now.spec->describe());
  }
  const std::string identity = "sha256:" + sha256_hex(now.identity_toml.data(), now.identity_toml.size());
  if (c.meta.identity_hash != identity) {
    std::string diff;
    try {
      const ParsedConfig old = parse_config_text(c.config_toml, "/", c.dir + "/config.toml", {});
      diff = identity_diff(resume_identity_toml(old.config), now.identity_toml);
    } catch (const Error&) {
      diff = "its config.toml cannot be compared";
    }
    throw CorruptionError(c.dir + ": part config.toml does not match the config: " + diff + hint);
  }
  if (c.meta.data_fingerprint != now.data_fingerprint || c.meta.steps_per_epoch != now.steps_per_epoch) {
    throw CorruptionError(c.dir + ": part state.toml: the training data changed since this checkpoint (fingerprint " +
                          c.meta.data_fingerprint + ", " + std::to_string(c.meta.steps_per_epoch) +
                          " steps per epoch; now " + now.data_fingerprint + ", " + std::to_string(now.steps_per_epoch) +
                          ")" + hint);
  }
}

namespace {

std::string describe_one(const std::string& dir, bool* ok) {
  std::ostringstream os;
  os << dir << "\n";
  try {
    const Checkpoint c = read_checkpoint(dir);
    const CheckpointMeta& m = c.meta;
    os << "  step " << m.state.step << " (epoch " << m.state.step / m.steps_per_epoch << ", step "
       << m.state.step % m.steps_per_epoch << " of " << m.steps_per_epoch << "), written by " << m.world_size
       << " rank(s)\n"
       << "  model: " << c.model.spec.describe() << " (" << c.model.spec.param_count() << " parameters)\n"
       << "  optimizer: " << m.optimizer << ", " << m.optimizer_updates << " updates, moments:"
       << (c.m.empty() ? "" : " m") << (c.v.empty() ? "" : " v") << (c.m.empty() && c.v.empty() ? " none" : "") << "\n"
       << "  last training loss " << m.state.last_loss << ", " << m.metrics_lines << " metrics lines, "
       << m.state.elapsed_s << " s of training\n"
       << "  tessera " << m.tessera_version << "; config " << m.config_hash << "\n"
       << "  data fingerprint " << m.data_fingerprint << "\n";
    if (!m.warm_start.empty()) os << "  warm-started from " << m.warm_start << "\n";
    os << "  parts:";
    for (const std::string& p : c.parts) os << " " << p;
    os << "\n  provenance: " << c.provenance;
    if (c.provenance.empty() || c.provenance.back() != '\n') os << "\n";
    os << "  verdict: OK (every part matches MANIFEST's SHA-256; weights checksum OK; " << m.world_size
       << " rank replica(s) agree)\n";
  } catch (const Error& e) {
    os << "  verdict: FAILED: " << e.what() << "\n";
    *ok = false;
  }
  return os.str();
}

}  // namespace

std::string inspect_checkpoint(const std::string& path, bool* ok) {
  *ok = true;
  if (is_checkpoint_dir(path) || parse_step_name(fs::path(path).filename().string()) >= 0) return describe_one(path, ok);
  const fs::path ckdir = fs::path(path) / "checkpoints";
  if (!fs::is_directory(ckdir)) throw CorruptionError(path + ": not a checkpoint directory, and has no checkpoints/");
  std::map<int64_t, std::string> found;
  std::ostringstream os;
  for (const auto& e : fs::directory_iterator(ckdir)) {
    const std::string name = e.path().filename().string();
    if (parse_step_name(name) >= 0) found[parse_step_name(name)] = e.path().string();
    if (name.rfind(".tmp-", 0) == 0) os << e.path().string() << "\n  incomplete write (no commit); ignored, removed by the next checkpoint\n";
  }
  std::string latest;
  try {
    latest = latest_checkpoint(path);
    os << "LATEST: " << (latest.empty() ? "(none)" : latest) << "\n";
  } catch (const Error& e) {
    os << "LATEST: FAILED: " << e.what() << "\n";
    *ok = false;
  }
  for (const auto& [step, dir] : found) os << describe_one(dir, ok);
  if (found.empty()) os << "no committed checkpoints\n";
  return os.str();
}

}  // namespace tessera
