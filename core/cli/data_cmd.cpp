// `tessera data synth | import | inspect`.
#include <algorithm>
#include <cstdio>

#include "core/cli/args.h"
#include "core/cli/commands.h"
#include "core/error.h"
#include "io/idx_import.h"
#include "io/inspect.h"
#include "io/synth.h"
#include "io/table_import.h"

namespace tessera::cli {

namespace {

constexpr const char* kDataUsage =
    "usage: tessera data <synth|import|inspect> ... (each takes --help)";
constexpr const char* kSynthUsage =
    "usage: tessera data synth --out FILE --rows N --features D [--classes K | --task binary|regression]\n"
    "                          [--seed S] [--first-row F] [--chunk-rows R] [--files K]\n"
    "  Writes X (N x D float32, N(0,1)) and y from a hidden random teacher network: class labels\n"
    "  0..K-1 (default K = 2), 0/1 (binary) or a float target (regression). Under mpirun the\n"
    "  ranks generate and write their own chunks at the same time; the bytes do not depend on\n"
    "  the number of ranks. --files K splits the rows into K files FILE-00000-of-0000K.h5, ...\n"
    "  (consecutive rows; train on them with a glob such as \"FILE-*.h5\").\n"
    "  --seed picks the teacher and an endless stream of rows; the file holds rows\n"
    "  F..F+N-1 of it, so e.g. --first-row 50000 makes a validation set disjoint from\n"
    "  a 50000-row training set of the same seed.";
constexpr const char* kImportUsage =
    "usage: tessera data import --from idx IMAGES LABELS --out FILE [--raw]\n"
    "       tessera data import --from csv TABLE --out FILE [--header] [--label COL] [--delimiter C]\n"
    "       tessera data import --from libsvm TABLE --out FILE --features D\n"
    "       tessera data import --from npy X.npy Y.npy --out FILE\n"
    "  Converts to the HDF5 layout (X float32 rows x features, y), chunked by 1024 rows. Inputs\n"
    "  may be gzip'd (.gz) and are streamed: any size imports in bounded memory.\n"
    "  idx     MNIST-style IDX files; X = pixel/255 (uint8 0..255 with --raw), y uint8.\n"
    "  csv     one row per line, all fields numeric; --header: the first line names the columns;\n"
    "          --label COL: the label column by header name or 0-based index (default: last);\n"
    "          the other columns, in order, are the features. y is float64.\n"
    "  libsvm  'label index:value ...' with 1-based increasing indices up to --features D\n"
    "          (absent features are 0). y is float64, as written (-1/+1 labels stay so).\n"
    "  npy     X: 2-D, y: 1-D or 2-D, C order, little-endian float/int/uint/bool; y keeps\n"
    "          integer labels as int64, floats as float64.\n"
    "  Malformed input: exit 3 naming the line (byte offset for idx/npy); the output file is\n"
    "  written to a temp file and renamed only when complete.";
constexpr const char* kInspectUsage =
    "usage: tessera data inspect FILE...\n"
    "  Datasets, shapes, dtypes, chunking and compression of each file, with warnings for\n"
    "  layouts that read slowly. Model files also get a checksum verdict. Exit status: 0 when\n"
    "  every file was read (and every model checksum matched), else the worst error's code.";

int synth(const std::vector<std::string>& argv, Communicator& comm) {
  const Args args(argv, {"--out", "--rows", "--features", "--classes", "--task", "--seed", "--first-row", "--chunk-rows", "--files"}, {}, kSynthUsage);
  if (args.help()) {
    say(comm, kSynthUsage);
    return 0;
  }
  SynthOptions o;
  o.out = args.require("--out");
  o.rows = args.get_int("--rows", 0);
  o.features = args.get_int("--features", 0);
  o.classes = args.get_int("--classes", 2);
  o.seed = static_cast<uint64_t>(args.get_int("--seed", 1));
  o.chunk_rows = args.get_int("--chunk-rows", 0);
  o.first_row = args.get_int("--first-row", 0);
  o.files = args.get_int("--files", 1);
  if (o.first_row < 0) throw ConfigError("--first-row must be 0 or more");
  const std::string task = args.get("--task", "classification");
  if (task == "classification") {
    o.task = Task::kClassification;
  } else if (task == "binary") {
    o.task = Task::kBinary;
  } else if (task == "regression") {
    o.task = Task::kRegression;
  } else {
    throw ConfigError("--task " + task + ": expected classification, binary or regression\n" + kSynthUsage);
  }
  if (args.has("--classes") && o.task != Task::kClassification) throw ConfigError("--classes only applies to classification");
  if (!args.has("--rows") || !args.has("--features")) throw ConfigError(std::string("--rows and --features are required\n") + kSynthUsage);
  synth_dataset(o, comm);
  const std::vector<std::string> names = synth_file_names(o.out, o.files);
  say(comm, "tessera: wrote " + std::to_string(o.rows) + " rows x " + std::to_string(o.features) + " features to " +
                (o.files == 1 ? o.out : names.front() + " ... " + names.back()));
  return 0;
}

int import(const std::vector<std::string>& argv, Communicator& comm) {
  const Args args(argv, {"--from", "--out", "--label", "--delimiter", "--features"}, {"--raw", "--header"}, kImportUsage);
  if (args.help()) {
    say(comm, kImportUsage);
    return 0;
  }
  const std::string from = args.require("--from");
  const auto& in = args.positional();
  auto inputs = [&](size_t n, const char* what) {
    if (in.size() != n) throw ConfigError("--from " + from + " needs " + what + "\n" + kImportUsage);
  };
  auto only = [&](const std::vector<const char*>& allowed) {
    for (const char* o : {"--raw", "--header", "--label", "--delimiter", "--features"}) {
      if (args.has(o) && std::find_if(allowed.begin(), allowed.end(), [&](const char* a) { return std::string(a) == o; }) == allowed.end()) {
        throw ConfigError(std::string(o) + " does not apply to --from " + from);
      }
    }
  };
  int64_t rows = 0;
  const std::string out = args.require("--out");
  if (from == "idx") {
    inputs(2, "IMAGES and LABELS files");
    only({"--raw"});
  } else if (from == "csv") {
    inputs(1, "one TABLE file");
    only({"--header", "--label", "--delimiter"});
    if (args.get("--delimiter", ",").size() != 1) throw ConfigError("--delimiter must be one character");
  } else if (from == "libsvm") {
    inputs(1, "one TABLE file");
    only({"--features"});
  } else if (from == "npy") {
    inputs(2, "X.npy and Y.npy files");
    only({});
  } else {
    throw ConfigError("--from " + from + ": expected idx, csv, libsvm or npy\n" + kImportUsage);
  }
  // One writer: the import is a sequential stream; other ranks wait.
  if (comm.rank() == 0) {
    if (from == "idx") {
      IdxImportOptions o;
      o.images = in[0];
      o.labels = in[1];
      o.out = out;
      o.raw = args.has("--raw");
      rows = import_idx(o);
    } else if (from == "csv") {
      CsvImportOptions o;
      o.input = in[0];
      o.out = out;
      o.header = args.has("--header");
      o.label = args.get("--label", "");
      o.delimiter = args.get("--delimiter", ",")[0];
      rows = import_csv(o);
    } else if (from == "libsvm") {
      LibsvmImportOptions o;
      o.input = in[0];
      o.out = out;
      o.features = args.get_int("--features", 0);
      rows = import_libsvm(o);
    } else {
      NpyImportOptions o;
      o.x = in[0];
      o.y = in[1];
      o.out = out;
      rows = import_npy(o);
    }
    say(comm, "tessera: imported " + std::to_string(rows) + " rows to " + out);
  }
  comm.barrier();
  return 0;
}

int inspect(const std::vector<std::string>& argv, Communicator& comm) {
  const Args args(argv, {}, {}, kInspectUsage);
  if (args.help()) {
    say(comm, kInspectUsage);
    return 0;
  }
  if (args.positional().empty()) throw ConfigError(std::string("no file given\n") + kInspectUsage);
  return report_each(comm, args.positional(), inspect_file);
}

}  // namespace

int data_command(const std::vector<std::string>& argv, Communicator& comm) {
  if (argv.empty() || argv[0] == "--help" || argv[0] == "-h") {
    say(comm, kDataUsage);
    return argv.empty() ? kExitUsage : 0;
  }
  const std::vector<std::string> rest(argv.begin() + 1, argv.end());
  if (argv[0] == "synth") return synth(rest, comm);
  if (argv[0] == "import") return import(rest, comm);
  if (argv[0] == "inspect") return inspect(rest, comm);
  throw ConfigError("unknown data command '" + argv[0] + "'\n" + kDataUsage);
}

}  // namespace tessera::cli
