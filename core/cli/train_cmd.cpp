// `tessera train`: parse and agree on the config, open the data, build the model, broadcast
// the initial weights, train, and write the run directory (DESIGN §5).
#include <sched.h>
#include <tbb/global_control.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <memory>
#include <thread>

#include "core/build_info.h"
#include "core/cli/args.h"
#include "core/cli/commands.h"
#include "core/cli/run_start.h"
#include "core/error.h"
#include "core/json.h"
#include "core/model.h"
#include "core/progress.h"
#include "core/rng.h"
#include "core/trainer.h"
#include "io/checkpoint.h"
#include "io/config_parser.h"
#include "io/files.h"
#include "io/hdf5_source.h"
#include "io/model_file.h"
#include "io/provenance.h"

namespace tessera::cli {

namespace {

constexpr const char* kUsage =
    "usage: tessera train CONFIG.toml [--set key=value]... [--resume auto|never|PATH]\n"
    "                     [--warm-start RUN_DIR_OR_CHECKPOINT [--warm-start-optimizer]] [--quiet]\n"
    "  Trains the model described by CONFIG.toml (see docs/config.md) and writes the run\n"
    "  directory checkpoint.dir: config.toml, provenance.json, metrics.jsonl, checkpoints/, model.h5.\n"
    "  --set key=value  override any config key, e.g. --set optimizer.lr=0.05\n"
    "  --resume         auto (default): continue an unfinished run in checkpoint.dir from its\n"
    "                   checkpoints/LATEST (a finished run, with model.h5, is kept aside and a new\n"
    "                   run starts); never: start a new run; PATH: continue from that checkpoint\n"
    "                   or run directory. Any rank count; exit 4 if it is corrupt or mismatched\n"
    "  --warm-start     start a new run from the weights of another run (its latest checkpoint\n"
    "                   or model.h5), a checkpoint directory or a model file, e.g. on new data\n"
    "  --warm-start-optimizer  also take the optimizer state (moments, update count) from it\n"
    "  --quiet          no progress output\n"
    "  Run under `mpirun -np N` for N data-parallel ranks; train.batch_size is the global batch.";

constexpr int64_t kMaxClasses = int64_t{1} << 24;

uint64_t hash_string(const std::string& s) {
  uint64_t h = 0x1234;
  for (unsigned char c : s) h = mix64(h ^ c);
  return h;
}

// A new run in a directory that holds an earlier run's files moves them into
// previous-<UTC time>/ first: nothing is lost, and a stale model.h5 never sits beside new metrics.
void keep_previous_run(const std::string& dir) {
  namespace fs = std::filesystem;
  const char* names[] = {"config.toml", "provenance.json", "metrics.jsonl", "model.h5", "metrics.png", "checkpoints"};
  bool any = false;
  for (const char* n : names) any = any || fs::exists(fs::path(dir) / n);
  if (!any) return;
  char stamp[32];
  const std::time_t now = std::time(nullptr);
  std::strftime(stamp, sizeof stamp, "previous-%Y%m%dT%H%M%SZ", std::gmtime(&now));
  fs::path keep = fs::path(dir) / stamp;
  for (int i = 1; fs::exists(keep); ++i) keep = fs::path(dir) / (std::string(stamp) + "-" + std::to_string(i));
  fs::create_directory(keep);
  for (const char* n : names) {
    if (fs::exists(fs::path(dir) / n)) fs::rename(fs::path(dir) / n, keep / n);
  }
  std::fprintf(stderr, "tessera: note: %s held an earlier run; its files were moved to %s\n", dir.c_str(),
               keep.string().c_str());
}

// This process's peak resident set (VmHWM of /proc/self/status), 0 where there is none.
int64_t peak_rss_bytes() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stoll(line.substr(6)) << 10;  // "VmHWM:  1234 kB"
  }
  return 0;
}

// TESSERA_TEST_FAULT=KIND:RANK:STEP (tests only, see TestFault); unset in normal runs.
TestFault test_fault_from_env() {
  TestFault f;
  const char* env = std::getenv("TESSERA_TEST_FAULT");
  if (env == nullptr || *env == 0) return f;
  char kind[32] = {};
  long long step = -1;
  if (std::sscanf(env, "%31[a-z_]:%d:%lld", kind, &f.rank, &step) != 3 ||
      (std::string(kind) != "nan" && std::string(kind) != "extra_collective" && std::string(kind) != "other_op" &&
       std::string(kind) != "stall")) {
    throw ConfigError(std::string("TESSERA_TEST_FAULT='") + env +
                      "': expected nan|extra_collective|other_op|stall:RANK:STEP (a test-only hook)");
  }
  f.kind = kind;
  f.step = step;
  return f;
}

}  // namespace

int set_threads(int64_t requested, const Communicator& comm) {
  int threads = static_cast<int>(requested);
  if (threads <= 0) {
    const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    threads = std::max(1, cores / std::max(1, comm.local_size()));
    // mpirun binds each rank to one core by default for np <= 2: never start more threads
    // than the CPUs this process may run on.
    cpu_set_t allowed;
    if (sched_getaffinity(0, sizeof allowed, &allowed) == 0) threads = std::min(threads, std::max(1, CPU_COUNT(&allowed)));
  }
  static std::unique_ptr<tbb::global_control> control;
  control = std::make_unique<tbb::global_control>(tbb::global_control::max_allowed_parallelism,
                                                  static_cast<size_t>(threads));
  return threads;
}

int report_each(Communicator& comm, const std::vector<std::string>& paths,
                const std::function<std::string(const std::string&, bool*)>& report) {
  int code = 0;
  if (comm.rank() == 0) {
    for (const std::string& p : paths) {
      try {
        bool ok = true;
        std::printf("%s", report(p, &ok).c_str());
        if (!ok) code = std::max(code, static_cast<int>(kExitCheckpoint));
      } catch (const Error& e) {
        std::printf("%s\n  error: %s\n", p.c_str(), e.what());
        code = std::max(code, e.code());
      }
    }
    std::fflush(stdout);
  }
  comm.barrier();
  return code;
}

void say(const Communicator& comm, const std::string& line) {
  if (comm.rank() == 0) {
    std::printf("%s\n", line.c_str());
    std::fflush(stdout);
  }
}

int train_command(const std::vector<std::string>& argv, Communicator& comm) {
  const Args args(argv, {"--set", "--resume", "--warm-start"}, {"--quiet", "--warm-start-optimizer"}, kUsage);
  if (args.help()) {
    say(comm, kUsage);
    return 0;
  }
  if (args.positional().size() != 1) throw ConfigError(std::string("expected one CONFIG.toml\n") + kUsage);
  StartRequest req;
  req.resume = args.get("--resume", "auto");
  req.warm_start = args.get("--warm-start", "");
  req.warm_optimizer = args.has("--warm-start-optimizer");
  if (req.resume.empty()) throw ConfigError(std::string("--resume needs auto, never or a path\n") + kUsage);
  if (req.warm_optimizer && req.warm_start.empty()) throw ConfigError("--warm-start-optimizer needs --warm-start PATH");
  const ParsedConfig parsed = parse_config_file(args.positional()[0], args.all("--set"));
  const TrainConfig& cfg = parsed.config;
  if (!req.warm_start.empty() && !cfg.model.init.empty()) {
    throw ConfigError("--warm-start and model.init both give initial weights: use one of them");
  }
  check_agreement(comm, hash_string(parsed.resolved_toml), "the resolved config");
  check_precision(cfg.train);
  comm.set_timeout(cfg.distributed.timeout_s);
  if (cfg.train.batch_size < comm.size()) {
    throw ConfigError("config key 'train.batch_size': " + std::to_string(cfg.train.batch_size) +
                      " is smaller than the " + std::to_string(comm.size()) +
                      " ranks (it is the global batch; every rank needs at least one row)");
  }
  const int threads = set_threads(cfg.train.threads, comm);

  // data.memory_budget_mb bounds all resident data of this rank: a quarter for HDF5's chunk
  // caches (only compressed or odd layouts use them), the rest for batches and read-ahead.
  const int64_t budget = cfg.data.memory_budget_mb << 20;
  // The cache quarter is shared equally by the training, validation and extra evaluation sets.
  const size_t cache = static_cast<size_t>(budget / 4) /
                       (1 + (cfg.data.validation.empty() ? 0 : 1) + cfg.data.extra_validation.size());
  auto train_data = std::make_shared<Hdf5Dataset>(cfg.data.train, cfg.data.features, cfg.data.labels, cache);
  std::shared_ptr<Hdf5Dataset> val_data;
  if (!cfg.data.validation.empty()) {
    val_data = std::make_shared<Hdf5Dataset>(cfg.data.validation, cfg.data.features, cfg.data.labels, cache);
    if (val_data->features() != train_data->features() ||
        val_data->label_columns() != train_data->label_columns()) {
      throw DataError(cfg.data.validation[0] + ": validation data has " + std::to_string(val_data->features()) +
                      " features and " + std::to_string(val_data->label_columns()) +
                      " label columns; training data has " + std::to_string(train_data->features()) + " and " +
                      std::to_string(train_data->label_columns()));
    }
  }
  std::vector<std::pair<std::string, std::shared_ptr<Hdf5Dataset>>> extra_data;
  for (const auto& [name, files] : cfg.data.extra_validation) {
    auto d = std::make_shared<Hdf5Dataset>(files, cfg.data.features, cfg.data.labels, cache);
    if (d->features() != train_data->features() || d->label_columns() != train_data->label_columns()) {
      throw DataError(files[0] + ": evaluation set '" + name + "' has " + std::to_string(d->features()) +
                      " features and " + std::to_string(d->label_columns()) + " label columns; training data has " +
                      std::to_string(train_data->features()) + " and " + std::to_string(train_data->label_columns()));
    }
    extra_data.emplace_back(name, std::move(d));
  }
  // Everything the data order and the model shape depend on must match on every rank.
  uint64_t shape = hash3(static_cast<uint64_t>(train_data->features()), static_cast<uint64_t>(train_data->label_columns()),
                         static_cast<uint64_t>(train_data->order_chunk_rows()));
  for (const Hdf5FileInfo& f : train_data->files()) shape = hash3(shape, static_cast<uint64_t>(f.rows), 1);
  if (val_data) {
    for (const Hdf5FileInfo& f : val_data->files()) shape = hash3(shape, static_cast<uint64_t>(f.rows), 2);
  }
  for (const auto& [name, d] : extra_data) {
    for (const Hdf5FileInfo& f : d->files()) shape = hash3(shape, static_cast<uint64_t>(f.rows), 3);
  }
  check_agreement(comm, shape, "the dataset layout (rows per file, features, label columns, chunk rows)");

  // Before anything is sized by the batch: a huge batch would otherwise run out of memory first.
  check_batch_fits(cfg, train_data->rows());
  int64_t outputs = train_data->label_columns();  // regression: one output per target column
  if (cfg.model.task != Task::kRegression) {
    // Labels are scanned up front, split across ranks, so a bad label (also in the validation
    // set) stops the run now rather than hours in. Binary labels must be 0/1; classification
    // labels below model.classes, or they infer it (max + 1).
    const int64_t limit = cfg.model.task == Task::kBinary ? 2 : cfg.model.classes;
    int64_t k[2] = {scan_classes(*train_data, partition(train_data->rows(), comm.rank(), comm.size()), limit),
                    val_data ? scan_classes(*val_data, partition(val_data->rows(), comm.rank(), comm.size()), limit) : 0};
    outputs = 1;  // binary: one logit
    if (cfg.model.task == Task::kClassification) {
      comm.allreduce_max(std::span<int64_t>(k, 2));
      outputs = cfg.model.classes;
      if (outputs == 0) {
        if (k[0] < 2) {
          throw DataError(cfg.data.train[0] + ": training labels hold " + std::to_string(k[0]) +
                          " class(es); classification needs 2 or more (or set model.task)");
        }
        if (k[0] > kMaxClasses) {
          throw DataError(cfg.data.train[0] + ": the largest training label is " + std::to_string(k[0] - 1) +
                          "; more than " + std::to_string(kMaxClasses) +
                          " classes is surely a bad label (set model.classes to check)");
        }
        outputs = std::max(k[0], k[1]);  // scan_classes already refused labels >= a given K
      }
    }
  }
  if (cfg.model.task != Task::kRegression) {
    for (const auto& [name, d] : extra_data) scan_classes(*d, partition(d->rows(), comm.rank(), comm.size()), cfg.model.task == Task::kBinary ? 2 : outputs);
  }
  const ModelSpec spec = make_model_spec(cfg.model, train_data->features(), outputs);

  SourceOptions so;
  so.task = cfg.model.task;
  so.classes = outputs;
  so.global_batch = cfg.train.batch_size;
  so.rank = comm.rank();
  so.world = comm.size();
  so.seed = cfg.train.seed;
  so.shuffle = cfg.data.shuffle;
  so.steps = total_steps(cfg.train, train_data->rows());
  std::unique_ptr<Hdf5Source> validation;
  SourceOptions vo = so;
  vo.steps = 0;
  vo.memory_budget_bytes = 0;  // evaluation reads ranges on the calling thread: no read-ahead ring
  vo.range_rows = eval_batch_rows(cfg.train.batch_size, comm.size());
  if (val_data) validation = std::make_unique<Hdf5Source>(val_data, vo);
  std::vector<std::unique_ptr<Hdf5Source>> extra;
  int64_t eval_resident = validation ? validation->resident_bytes() : 0;
  for (const auto& [name, d] : extra_data) {
    extra.push_back(std::make_unique<Hdf5Source>(d, vo));
    eval_resident += extra.back()->resident_bytes();
  }
  so.memory_budget_bytes = budget - eval_resident;
  Hdf5Source train(train_data, so);
  int64_t arena_rows = std::max(train.max_batch_rows(), validation ? validation->max_batch_rows() : int64_t{1});
  for (const auto& e : extra) arena_rows = std::max(arena_rows, e->max_batch_rows());
  Model model(spec, arena_rows, cfg.train.precision);

  FlatBuffer params(spec.param_count());
  const int64_t per_epoch = train.rows() / cfg.train.batch_size;
  StartPoint start;
  std::string fingerprint;
  if (comm.rank() == 0) {
    if (cfg.model.init.empty()) {
      init_params(spec, cfg.train.seed, params.data());
    } else {
      load_init_weights(cfg.model.init, spec, params.data());
    }
    fingerprint = data_fingerprint(*train_data);
    ResumeTarget target;
    target.spec = &spec;
    target.identity_toml = resume_identity_toml(cfg);
    target.data_fingerprint = fingerprint;
    target.steps_per_epoch = per_epoch;
    start = find_start(req, cfg, target, params);
  }
  const bool needs_m = cfg.optimizer.kind != OptimizerKind::kSgd || cfg.optimizer.momentum != 0.0;
  const int64_t moments = spec.param_count();
  share_start(start, params, needs_m ? moments : 0, cfg.optimizer.kind != OptimizerKind::kSgd ? moments : 0, comm);
  // The first batches load while the run directory and provenance are written.
  train.start_read_ahead(start.state.step / per_epoch, start.state.step % per_epoch);

  const std::string& dir = cfg.checkpoint.dir;
  std::ofstream metrics;
  int64_t metrics_lines = 0;
  std::string provenance;
  if (comm.rank() == 0) {
    make_dirs(dir);
    if (start.in_place) {
      // Files of the interrupted run stay; a model.h5 (an explicit resume of a finished run)
      // is stale until this run ends, so it is removed rather than left beside new metrics.
      std::filesystem::remove(std::filesystem::path(dir) / "model.h5");
      metrics_lines = keep_metrics_lines(dir + "/metrics.jsonl", start.metrics_lines);
      if (metrics_lines < start.metrics_lines) {
        std::fprintf(stderr, "tessera: warning: %s/metrics.jsonl holds %lld lines, the checkpoint recorded %lld\n",
                     dir.c_str(), static_cast<long long>(metrics_lines), static_cast<long long>(start.metrics_lines));
      }
    } else {
      keep_previous_run(dir);
    }
    atomic_write_text(dir + "/config.toml", parsed.resolved_toml);
    RunFacts facts;
    facts.train_fingerprint = fingerprint;
    facts.warm_start = start.warm_start;
    for (const auto& [name, d] : extra_data) facts.extra_validation.emplace_back(name, d.get());
    facts.world_size = comm.size();
    facts.threads_per_rank = threads;
    facts.model = spec.describe();
    for (const auto& a : argv) facts.command_line += (facts.command_line.empty() ? "tessera train " : " ") + a;
    facts.hosts = comm.host_names();
    provenance = provenance_json(parsed.resolved_toml, *train_data, val_data.get(), facts);
    atomic_write_text(dir + "/provenance.json", provenance);
    metrics.open(dir + "/metrics.jsonl", start.in_place ? std::ios::app : std::ios::trunc);
    if (!metrics) throw Error("cannot write " + dir + "/metrics.jsonl");
  } else {
    comm.host_names();  // collective: matches rank 0's call above
  }

  const int64_t total = total_steps(cfg.train, train.rows());
  say(comm, "tessera: training " + spec.describe() + " (" + std::to_string(spec.param_count()) + " parameters) on " +
                std::to_string(train.rows()) + " rows; " + std::to_string(comm.size()) + " rank(s) x " +
                std::to_string(threads) + " thread(s); " + std::to_string(total) + " steps of " +
                std::to_string(cfg.train.batch_size) + " rows; run directory " + dir);
  Progress progress(total, comm.rank() == 0 && !args.has("--quiet"));
  if (start.resumed) {
    say(comm, "tessera: resuming from " + start.from + " at step " + std::to_string(start.state.step) +
                  (start.in_place ? "" : " (a new run directory: metrics.jsonl starts at this step)"));
  } else if (!start.from.empty()) {
    say(comm, "tessera: warm start from " + start.from + (start.have_optimizer ? " (weights and optimizer state)" : " (weights)"));
  }
  auto sink = [&](const std::string& line) {
    ++metrics_lines;
    metrics << line << '\n';
    metrics.flush();
    if (!metrics) throw Error("cannot write " + dir + "/metrics.jsonl (disk full?)");
  };
  Trainer trainer(cfg, model, comm, train, validation.get(),
                  comm.rank() == 0 ? std::function<void(const std::string&)>(sink) : nullptr, progress);
  for (size_t i = 0; i < extra.size(); ++i) trainer.add_eval_set(extra_data[i].first, extra[i].get());
  if (start.have_optimizer) {
    Optimizer& opt = trainer.optimizer();
    std::copy(start.m.begin(), start.m.end(), opt.momentum().begin());
    std::copy(start.v.begin(), start.v.end(), opt.second_moment().begin());
    opt.set_updates(start.optimizer_updates);
  }
  const std::string identity_toml = resume_identity_toml(cfg);
  trainer.set_checkpoint_hook([&](const TrainState& st) {
    CheckpointWrite w;
    w.spec = &spec;
    w.params = params.data();
    w.m = trainer.optimizer().momentum();
    w.v = trainer.optimizer().second_moment();
    if (comm.rank() == 0) {
      CheckpointMeta& m = w.meta;
      m.state = st;
      m.steps_per_epoch = per_epoch;
      m.optimizer_updates = trainer.optimizer().updates();
      m.metrics_lines = metrics_lines;
      m.world_size = comm.size();
      m.model = spec.describe();
      m.optimizer = to_string(cfg.optimizer.kind);
      m.config_hash = config_hash(parsed.resolved_toml);
      m.identity_hash = "sha256:" + sha256_hex(identity_toml.data(), identity_toml.size());
      m.data_fingerprint = fingerprint;
      m.tessera_version = kVersion;
      m.warm_start = start.warm_start;
      w.config_toml = parsed.resolved_toml;
      w.provenance = provenance;
    } else {
      w.meta.state = st;
    }
    write_checkpoint(dir, w, cfg.checkpoint.keep_last, comm);
  });
  trainer.set_test_fault(test_fault_from_env());
  const TrainSummary summary = trainer.run(params, start.state);

  int64_t peak_rss[1] = {peak_rss_bytes()};
  comm.allreduce_max(std::span<int64_t>(peak_rss, 1));
  if (comm.rank() == 0) {
    write_model_file(dir + "/model.h5", spec, params.data());
    JsonObject done;
    done.add("event", "done").add("steps", summary.steps).add("loss", summary.last_loss);
    done.add("samples_per_s", summary.samples_per_s).add("time_s", summary.seconds);
    done.add("peak_rss_mb", static_cast<double>(peak_rss[0]) / (1 << 20));
    sink(done.str());
  }
  char line[256];
  std::snprintf(line, sizeof line, "tessera: done: %lld steps in %.1f s (%.0f samples/s), final loss %.5f",
                static_cast<long long>(summary.steps), summary.seconds, summary.samples_per_s, summary.last_loss);
  std::string msg = line;
  if (summary.evaluated) {
    std::snprintf(line, sizeof line, "; validation %s %.4f", spec.task == Task::kRegression ? "rmse" : "accuracy",
                  spec.task == Task::kRegression ? summary.last_eval.rmse : summary.last_eval.accuracy);
    msg += line;
  }
  say(comm, msg + "; model " + dir + "/model.h5");
  comm.barrier();  // model.h5 is complete before any rank exits
  return 0;
}

}  // namespace tessera::cli
