// find_start / share_start: the resume and warm-start decisions in one place, so train_cmd only
// asks "where do we start" and gets weights, optimizer state and the training position.
#include "core/cli/run_start.h"

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/build_info.h"
#include "core/error.h"
#include "io/files.h"
#include "io/model_file.h"

namespace tessera::cli {

namespace fs = std::filesystem;

namespace {

void check_same_model(const ModelSpec& have, const ModelSpec& want, const std::string& where) {
  if (have.sizes != want.sizes || have.kind != want.kind) {
    throw CorruptionError(where + " holds another model: " + have.describe() + "; the config builds " +
                          want.describe() + " (the shapes must match; only activation and task may differ)");
  }
}

// --warm-start: weights (and optionally the optimizer state) of another run, at step 0.
void warm_start(const StartRequest& req, const TrainConfig& cfg, const ModelSpec& spec, FlatBuffer& params,
                StartPoint& sp) {
  const std::string& w = req.warm_start;
  if (!fs::exists(w)) throw ConfigError("--warm-start " + w + ": no such run directory, checkpoint or model file");
  const bool checkpoint = fs::is_directory(w) && (is_checkpoint_dir(w) || !latest_checkpoint(w).empty() ||
                                                  fs::path(w).filename().string().rfind("step-", 0) == 0);
  sp.from = fs::absolute(w).lexically_normal().string();
  if (!checkpoint) {
    if (req.warm_optimizer) {
      throw ConfigError("--warm-start-optimizer: " + w + " holds no checkpoint (only weights); drop the option "
                        "or pass a run directory with checkpoints/ or a checkpoint directory");
    }
    const std::string file = fs::is_directory(w) ? (fs::path(w) / "model.h5").string() : w;
    if (!fs::exists(file)) throw CorruptionError(w + ": run directory with neither checkpoints/LATEST nor model.h5");
    const ModelFile m = read_model_file(file);
    check_same_model(m.spec, spec, file);
    std::memcpy(params.data(), m.params.data(), m.params.size() * sizeof(float));
    return;
  }
  const Checkpoint c = read_checkpoint(resolve_checkpoint(w));
  sp.from = fs::absolute(c.dir).lexically_normal().string();
  check_same_model(c.model.spec, spec, c.dir + " (part model.h5)");
  std::memcpy(params.data(), c.model.params.data(), c.model.params.size() * sizeof(float));
  if (!req.warm_optimizer) return;
  if (c.meta.optimizer != to_string(cfg.optimizer.kind)) {
    throw ConfigError("--warm-start-optimizer: " + c.dir + " holds " + c.meta.optimizer +
                      " state, the config uses optimizer.kind = " + to_string(cfg.optimizer.kind));
  }
  sp.have_optimizer = true;
  sp.optimizer_updates = c.meta.optimizer_updates;
  sp.m = c.m;
  sp.v = c.v;
}

}  // namespace

StartPoint find_start(const StartRequest& req, const TrainConfig& cfg, const ResumeTarget& target,
                      FlatBuffer& params) {
  StartPoint sp;
  const std::string& dir = cfg.checkpoint.dir;
  std::string from;
  if (req.resume == "auto") {
    // A finished run (model.h5 written) is not continued: a new run starts and keeps it aside.
    if (!fs::exists(fs::path(dir) / "model.h5")) from = latest_checkpoint(dir);
  } else if (req.resume != "never") {
    from = resolve_checkpoint(req.resume);
  }
  if (from.empty()) {
    if (!req.warm_start.empty()) warm_start(req, cfg, *target.spec, params, sp);
    sp.warm_start = sp.from;
    return sp;
  }
  const Checkpoint c = read_checkpoint(from);
  check_resumable(c, target);
  if (c.meta.tessera_version != kVersion) {
    std::fprintf(stderr, "tessera: note: %s was written by tessera %s, this is %s: the run continues, but "
                 "bitwise equality with an uninterrupted run holds only within one version and build\n",
                 c.dir.c_str(), c.meta.tessera_version.c_str(), kVersion);
  }
  std::memcpy(params.data(), c.model.params.data(), c.model.params.size() * sizeof(float));
  sp.resumed = true;
  sp.from = c.dir;
  sp.warm_start = c.meta.warm_start;  // a resumed warm-started run still says where it began
  sp.state = c.meta.state;
  sp.have_optimizer = true;
  sp.optimizer_updates = c.meta.optimizer_updates;
  sp.m = c.m;
  sp.v = c.v;
  std::error_code ec;
  fs::path ck = fs::path(c.dir).lexically_normal();
  if (!ck.has_filename()) ck = ck.parent_path();  // "run/checkpoints/step-000005/"
  sp.in_place = fs::equivalent(ck.parent_path().parent_path(), dir, ec);
  sp.metrics_lines = sp.in_place ? c.meta.metrics_lines : 0;
  return sp;
}

void share_start(StartPoint& sp, FlatBuffer& params, int64_t m_count, int64_t v_count, Communicator& comm) {
  struct Header {
    int64_t step, evaluated_at, resumed, in_place, have_optimizer, updates, metrics_lines, skipped_steps;
    double interval[3], last_loss, elapsed_s;
  } h{};
  if (comm.rank() == 0) {
    if (sp.have_optimizer && (static_cast<int64_t>(sp.m.size()) != m_count || static_cast<int64_t>(sp.v.size()) != v_count)) {
      throw ConfigError(sp.from + ": its optimizer state has " + std::to_string(sp.m.size()) + " + " +
                        std::to_string(sp.v.size()) + " moment values; this optimizer keeps " + std::to_string(m_count) +
                        " + " + std::to_string(v_count) + " (optimizer.kind or momentum differ)");
    }
    h = {sp.state.step, sp.state.evaluated_at, sp.resumed, sp.in_place, sp.have_optimizer, sp.optimizer_updates,
         sp.metrics_lines, sp.state.skipped_steps, {sp.state.interval[0], sp.state.interval[1], sp.state.interval[2]}, sp.state.last_loss,
         sp.state.elapsed_s};
  }
  comm.broadcast(std::as_writable_bytes(std::span<Header>(&h, 1)), 0);
  sp.state.step = h.step;
  sp.state.evaluated_at = h.evaluated_at;
  std::copy_n(h.interval, 3, sp.state.interval);
  sp.state.last_loss = h.last_loss;
  sp.state.elapsed_s = h.elapsed_s;
  sp.state.skipped_steps = h.skipped_steps;
  sp.resumed = h.resumed != 0;
  sp.in_place = h.in_place != 0;
  sp.have_optimizer = h.have_optimizer != 0;
  sp.optimizer_updates = h.updates;
  sp.metrics_lines = h.metrics_lines;
  comm.broadcast(params.span(), 0);
  if (!sp.have_optimizer) return;
  sp.m.resize(static_cast<size_t>(m_count));
  sp.v.resize(static_cast<size_t>(v_count));
  comm.broadcast(std::span<float>(sp.m), 0);
  comm.broadcast(std::span<float>(sp.v), 0);
}

int64_t keep_metrics_lines(const std::string& path, int64_t lines) {
  std::ifstream in(path);
  std::string kept, line;
  int64_t n = 0;
  while (n < lines && std::getline(in, line)) {
    kept += line + "\n";
    ++n;
  }
  atomic_write_text(path, kept);
  return n;
}

}  // namespace tessera::cli
