// `tessera eval`, `predict` and `export`: everything that uses a trained model. PATH may be a
// model file or a run directory (its model.h5 is used).
#include <algorithm>
#include <filesystem>
#include <memory>

#include "core/cli/args.h"
#include "core/cli/commands.h"
#include "core/error.h"
#include "core/evaluate.h"
#include "core/json.h"
#include "io/checkpoint.h"
#include "io/config_parser.h"
#include "io/hdf5_source.h"
#include "io/model_file.h"
#include "io/predictions.h"

namespace tessera::cli {

namespace {

constexpr const char* kEvalUsage =
    "usage: tessera eval CONFIG.toml --checkpoint PATH [--data FILE]... [--set key=value]...\n"
    "  (--data and --checkpoint paths are relative to the working directory; paths inside the\n"
    "  config and in --set are relative to the config file)\n"
    "  Exact metrics (every row counted once, across all ranks) of the model at PATH (a model.h5,\n"
    "  a checkpoint directory or a run directory) on --data, or on data.validation of CONFIG.\n"
    "  Prints JSON on stdout.";
constexpr const char* kPredictUsage =
    "usage: tessera predict --checkpoint PATH --data FILE [--data FILE]... --out PRED.h5 [--features NAME]\n"
    "  Batch inference; rows are split across ranks and written in input order to one file:\n"
    "  classification: logits (rows x K) and class; binary: logit and class; regression: prediction.";
constexpr const char* kExportUsage =
    "usage: tessera export --checkpoint PATH --out MODEL.h5\n"
    "  Verifies the model at PATH and writes its weights with PyTorch state_dict names\n"
    "  (layers.N.weight, layers.N.bias); load them in PyTorch with h5py.";

// A model file, a checkpoint directory (verified in full, then its model.h5), or a run
// directory: its model.h5, or, for a run that has not finished, its latest checkpoint.
std::string model_path(const std::string& path) {
  namespace fs = std::filesystem;
  if (fs::is_directory(path)) {
    const std::string m = (fs::path(path) / "model.h5").string();
    if (is_checkpoint_dir(path) || (!fs::exists(m) && !latest_checkpoint(path).empty())) {
      const std::string dir = resolve_checkpoint(path);
      read_checkpoint(dir);
      return (fs::path(dir) / "model.h5").string();
    }
    if (!fs::exists(m)) throw CorruptionError(path + ": run directory has neither model.h5 nor checkpoints/LATEST");
    return m;
  }
  if (!fs::exists(path)) throw CorruptionError(path + ": no such model file or run directory");
  return path;
}

void check_features(const ModelFile& m, const Hdf5Dataset& d) {
  if (d.features() != m.spec.inputs()) {
    throw DataError(d.files()[0].path + ": dataset '" + d.features_name() + "' has " + std::to_string(d.features()) +
                    " features but the model (" + m.spec.describe() + ") takes " + std::to_string(m.spec.inputs()));
  }
}

}  // namespace

int eval_command(const std::vector<std::string>& argv, Communicator& comm) {
  const Args args(argv, {"--checkpoint", "--data", "--set"}, {}, kEvalUsage);
  if (args.help()) {
    say(comm, kEvalUsage);
    return 0;
  }
  if (args.positional().size() != 1) throw ConfigError(std::string("expected one CONFIG.toml\n") + kEvalUsage);
  const ParsedConfig parsed = parse_config_file(args.positional()[0], args.all("--set"));
  const TrainConfig& cfg = parsed.config;
  comm.set_timeout(cfg.distributed.timeout_s);
  set_threads(cfg.train.threads, comm);
  const ModelFile m = read_model_file(model_path(args.require("--checkpoint")));
  std::vector<std::string> files = args.all("--data");
  if (files.empty()) files = cfg.data.validation;
  if (files.empty()) throw ConfigError("nothing to evaluate: pass --data FILE or set data.validation");
  auto data = std::make_shared<Hdf5Dataset>(files, cfg.data.features, cfg.data.labels);
  check_features(m, *data);
  if (m.spec.task == Task::kRegression && data->label_columns() != m.spec.outputs()) {
    throw DataError(files[0] + ": " + std::to_string(data->label_columns()) + " target columns, the model predicts " +
                    std::to_string(m.spec.outputs()));
  }
  SourceOptions so;
  so.task = m.spec.task;
  so.classes = m.spec.outputs();
  so.rank = comm.rank();
  so.world = comm.size();
  so.range_rows = eval_batch_rows(cfg.train.batch_size, comm.size());
  Hdf5Source source(data, so);
  Model model(m.spec, source.max_batch_rows());
  const EvalResult r = evaluate(model, m.params.data(), source, comm);
  JsonObject out;
  out.add("model", m.spec.describe()).add("data", files).add("rows", r.rows).add("loss", r.loss);
  if (m.spec.task == Task::kRegression) {
    out.add("rmse", r.rmse);
  } else {
    out.add("accuracy", r.accuracy);
  }
  say(comm, out.str());
  return 0;
}

int predict_command(const std::vector<std::string>& argv, Communicator& comm) {
  const Args args(argv, {"--checkpoint", "--data", "--out", "--features", "--threads"}, {}, kPredictUsage);
  if (args.help()) {
    say(comm, kPredictUsage);
    return 0;
  }
  if (!args.positional().empty()) throw ConfigError("unexpected argument '" + args.positional()[0] + "'\n" + kPredictUsage);
  set_threads(args.get_int("--threads", 0), comm);
  const ModelFile m = read_model_file(model_path(args.require("--checkpoint")));
  const std::vector<std::string> files = args.all("--data");
  if (files.empty()) throw ConfigError(std::string("missing required option --data\n") + kPredictUsage);
  const std::string out = args.require("--out");
  auto data = std::make_shared<Hdf5Dataset>(files, args.get("--features", "X"), "");
  check_features(m, *data);
  SourceOptions so;
  so.task = m.spec.task;
  so.rank = comm.rank();
  so.world = comm.size();
  so.labels = false;
  so.range_rows = 1024;
  Hdf5Source source(data, so);
  Model model(m.spec, source.max_batch_rows());
  const Range mine = partition(data->rows(), comm.rank(), comm.size());
  PredictionPart part;
  part.first_row = mine.begin;
  part.rows = mine.size();
  part.outputs = m.spec.outputs();
  part.scores.resize(static_cast<size_t>(part.rows * part.outputs));
  for (int64_t b = mine.begin; b < mine.end; b += source.max_batch_rows()) {
    const Batch batch = source.read_range(b, std::min(mine.end, b + source.max_batch_rows()));
    const float* y = model.forward(m.params.data(), batch.x, batch.rows);
    std::copy_n(y, batch.rows * part.outputs, part.scores.data() + (b - mine.begin) * part.outputs);
  }
  write_predictions(out, m.spec.task, data->rows(), part, comm);
  say(comm, "tessera: wrote predictions for " + std::to_string(data->rows()) + " rows to " + out);
  return 0;
}

int export_command(const std::vector<std::string>& argv, Communicator& comm) {
  const Args args(argv, {"--checkpoint", "--out"}, {}, kExportUsage);
  if (args.help()) {
    say(comm, kExportUsage);
    return 0;
  }
  const std::string in = model_path(args.require("--checkpoint"));
  const std::string out = args.require("--out");
  if (comm.rank() == 0) {
    const ModelFile m = read_model_file(in);
    write_model_file(out, m.spec, m.params.data());
    say(comm, "tessera: exported " + m.spec.describe() + " to " + out);
  }
  comm.barrier();
  return 0;
}

}  // namespace tessera::cli
