// Config parsing (DESIGN §2): a full config gives the expected TrainConfig, relative paths
// resolve against the config's directory, every bad key/type/range is a ConfigError naming the
// key (also via --set), and the resolved TOML parses back to the same config.
#include "io/config_parser.h"

#include <gtest/gtest.h>

#include <fstream>

#include "core/error.h"
#include "core/trainer.h"
#include "kernels/dense.h"
#include "tests/io/error_matchers.h"
#include "tests/io/test_files.h"

namespace tessera {
namespace {

const char* kFull = R"(
[data]
train = "data/train.h5"
validation = "data/test.h5"
features = "feat"
labels = "lab"
shuffle = false
memory_budget_mb = 64

[model]
kind = "mlp"
hidden = [32, 16]
activation = "gelu"
classes = 10
task = "classification"
init = "init/w.h5"

[optimizer]
kind = "adamw"
lr = 0.003
momentum = 0.5
betas = [0.8, 0.95]
eps = 1e-7
weight_decay = 0.01
schedule = "cosine"
warmup_steps = 100
step_every = 50
gamma = 0.5
grad_clip_norm = 1.0

[train]
batch_size = 128
epochs = 3
max_steps = 1000
seed = 42
log_every = 5
eval_every = 200
threads = 2
precision = "fp32"

[distributed]
strategy = "ddp"
bucket_mb = 8
timeout_s = 60

[checkpoint]
dir = "runs/x"
every_steps = 250
keep_last = 2
)";

ParsedConfig parse(const std::string& text, const std::vector<std::string>& overrides = {}) {
  return parse_config_text(text, "/base/dir", "test.toml", overrides);
}

// Replaces `line` (an exact line of kFull) with `replacement`.
std::string full_with(const std::string& line, const std::string& replacement) {
  std::string s = kFull;
  const size_t at = s.find("\n" + line + "\n");
  EXPECT_NE(at, std::string::npos) << line;
  s.replace(at + 1, line.size(), replacement);
  return s;
}

void expect_same(const TrainConfig& a, const TrainConfig& b) {
  EXPECT_EQ(a.data.train, b.data.train);
  EXPECT_EQ(a.data.validation, b.data.validation);
  EXPECT_EQ(a.data.features, b.data.features);
  EXPECT_EQ(a.data.labels, b.data.labels);
  EXPECT_EQ(a.data.shuffle, b.data.shuffle);
  EXPECT_EQ(a.data.memory_budget_mb, b.data.memory_budget_mb);
  EXPECT_EQ(a.model.kind, b.model.kind);
  EXPECT_EQ(a.model.hidden, b.model.hidden);
  EXPECT_EQ(a.model.activation, b.model.activation);
  EXPECT_EQ(a.model.classes, b.model.classes);
  EXPECT_EQ(a.model.task, b.model.task);
  EXPECT_EQ(a.model.init, b.model.init);
  EXPECT_EQ(a.optimizer.kind, b.optimizer.kind);
  EXPECT_EQ(a.optimizer.lr, b.optimizer.lr);
  EXPECT_EQ(a.optimizer.momentum, b.optimizer.momentum);
  EXPECT_EQ(a.optimizer.beta1, b.optimizer.beta1);
  EXPECT_EQ(a.optimizer.beta2, b.optimizer.beta2);
  EXPECT_EQ(a.optimizer.eps, b.optimizer.eps);
  EXPECT_EQ(a.optimizer.weight_decay, b.optimizer.weight_decay);
  EXPECT_EQ(a.optimizer.schedule, b.optimizer.schedule);
  EXPECT_EQ(a.optimizer.warmup_steps, b.optimizer.warmup_steps);
  EXPECT_EQ(a.optimizer.step_every, b.optimizer.step_every);
  EXPECT_EQ(a.optimizer.gamma, b.optimizer.gamma);
  EXPECT_EQ(a.optimizer.grad_clip_norm, b.optimizer.grad_clip_norm);
  EXPECT_EQ(a.train.batch_size, b.train.batch_size);
  EXPECT_EQ(a.train.epochs, b.train.epochs);
  EXPECT_EQ(a.train.max_steps, b.train.max_steps);
  EXPECT_EQ(a.train.seed, b.train.seed);
  EXPECT_EQ(a.train.log_every, b.train.log_every);
  EXPECT_EQ(a.train.eval_every, b.train.eval_every);
  EXPECT_EQ(a.train.threads, b.train.threads);
  EXPECT_EQ(a.train.precision, b.train.precision);
  EXPECT_EQ(a.distributed.strategy, b.distributed.strategy);
  EXPECT_EQ(a.distributed.bucket_mb, b.distributed.bucket_mb);
  EXPECT_EQ(a.distributed.timeout_s, b.distributed.timeout_s);
  EXPECT_EQ(a.checkpoint.dir, b.checkpoint.dir);
  EXPECT_EQ(a.checkpoint.every_steps, b.checkpoint.every_steps);
  EXPECT_EQ(a.checkpoint.keep_last, b.checkpoint.keep_last);
}

TEST(Config, FullConfigGivesExpectedValues) {
  const TrainConfig c = parse(kFull).config;
  EXPECT_EQ(c.data.train, std::vector<std::string>{"/base/dir/data/train.h5"});
  EXPECT_EQ(c.data.validation, std::vector<std::string>{"/base/dir/data/test.h5"});
  EXPECT_EQ(c.data.features, "feat");
  EXPECT_EQ(c.data.labels, "lab");
  EXPECT_FALSE(c.data.shuffle);
  EXPECT_EQ(c.data.memory_budget_mb, 64);
  EXPECT_EQ(c.model.kind, "mlp");
  EXPECT_EQ(c.model.hidden, (std::vector<int64_t>{32, 16}));
  EXPECT_EQ(c.model.activation, kernels::Activation::kGelu);
  EXPECT_EQ(c.model.classes, 10);
  EXPECT_EQ(c.model.task, Task::kClassification);
  EXPECT_EQ(c.model.init, "/base/dir/init/w.h5");
  EXPECT_EQ(c.optimizer.kind, OptimizerKind::kAdamW);
  EXPECT_DOUBLE_EQ(c.optimizer.lr, 0.003);
  EXPECT_DOUBLE_EQ(c.optimizer.momentum, 0.5);
  EXPECT_DOUBLE_EQ(c.optimizer.beta1, 0.8);
  EXPECT_DOUBLE_EQ(c.optimizer.beta2, 0.95);
  EXPECT_DOUBLE_EQ(c.optimizer.eps, 1e-7);
  EXPECT_DOUBLE_EQ(c.optimizer.weight_decay, 0.01);
  EXPECT_EQ(c.optimizer.schedule, Schedule::kCosine);
  EXPECT_EQ(c.optimizer.warmup_steps, 100);
  EXPECT_EQ(c.optimizer.step_every, 50);
  EXPECT_DOUBLE_EQ(c.optimizer.gamma, 0.5);
  EXPECT_DOUBLE_EQ(c.optimizer.grad_clip_norm, 1.0);
  EXPECT_EQ(c.train.batch_size, 128);
  EXPECT_EQ(c.train.epochs, 3);
  EXPECT_EQ(c.train.max_steps, 1000);
  EXPECT_EQ(c.train.seed, 42u);
  EXPECT_EQ(c.train.log_every, 5);
  EXPECT_EQ(c.train.eval_every, 200);
  EXPECT_EQ(c.train.threads, 2);
  EXPECT_EQ(c.train.precision, Precision::kFp32);
  EXPECT_EQ(c.distributed.strategy, "ddp");
  EXPECT_DOUBLE_EQ(c.distributed.bucket_mb, 8);
  EXPECT_DOUBLE_EQ(c.distributed.timeout_s, 60);
  EXPECT_EQ(c.checkpoint.dir, "/base/dir/runs/x");
  EXPECT_EQ(c.checkpoint.every_steps, 250);
  EXPECT_EQ(c.checkpoint.keep_last, 2);
}

TEST(Config, MinimalConfigUsesDefaults) {
  const TrainConfig c = parse("[data]\ntrain = \"t.h5\"\n").config;
  const TrainConfig d;
  EXPECT_EQ(c.data.train, std::vector<std::string>{"/base/dir/t.h5"});
  EXPECT_TRUE(c.data.validation.empty());
  EXPECT_EQ(c.model.hidden, d.model.hidden);
  EXPECT_EQ(c.optimizer.lr, d.optimizer.lr);
  EXPECT_EQ(c.train.batch_size, d.train.batch_size);
  EXPECT_EQ(c.train.seed, d.train.seed);
  // The default run directory is resolved like any relative path (the resolved config is absolute).
  EXPECT_EQ(c.checkpoint.dir, "/base/dir/runs/example");
}

TEST(Config, PathsResolveAgainstBaseDir) {
  const TrainConfig c =
      parse("[data]\ntrain = [\"a.h5\", \"../b.h5\", \"/abs/c.h5\", \"./sub/d.h5\"]\n").config;
  EXPECT_EQ(c.data.train, (std::vector<std::string>{"/base/dir/a.h5", "/base/b.h5", "/abs/c.h5",
                                                    "/base/dir/sub/d.h5"}));
  // parse_config_file resolves against the file's own directory.
  testing::TempDir dir;
  {
    std::ofstream out(dir.file("cfg.toml"));
    out << "[data]\ntrain = \"train.h5\"\n[checkpoint]\ndir = \"run\"\n";
  }
  const TrainConfig f = parse_config_file(dir.file("cfg.toml"), {}).config;
  EXPECT_EQ(f.data.train, std::vector<std::string>{dir.file("train.h5")});
  EXPECT_EQ(f.checkpoint.dir, dir.file("run"));
}

TEST(Config, GlobExpandsSorted) {
  testing::TempDir dir;
  for (const char* n : {"p2.h5", "p0.h5", "p1.h5", "q.h5"}) testing::write_bytes(dir.file(n), "x");
  const TrainConfig c = parse_config_text("[data]\ntrain = \"p*.h5\"\n", dir.path(), "t", {}).config;
  EXPECT_EQ(c.data.train, (std::vector<std::string>{dir.file("p0.h5"), dir.file("p1.h5"), dir.file("p2.h5")}));
  EXPECT_ANY_THROW(parse_config_text("[data]\ntrain = \"zz*.h5\"\n", dir.path(), "t", {}));
}

TEST(Config, UnknownKeyNamesIt) {
  TESSERA_EXPECT_THROW_NAMING(ConfigError, parse(full_with("epochs = 3", "epoch = 3")), "train.epoch");
  TESSERA_EXPECT_THROW_NAMING(ConfigError, parse(std::string(kFull) + "\n[optimiser]\nlr = 0.1\n"),
                              "optimiser");
  TESSERA_EXPECT_THROW_NAMING(ConfigError, parse("seed = 3\n" + std::string(kFull)), "seed");
}

TEST(Config, WrongTypeNamesTheKey) {
  TESSERA_EXPECT_THROW_NAMING(ConfigError, parse(full_with("lr = 0.003", "lr = \"x\"")), "optimizer.lr");
  TESSERA_EXPECT_THROW_NAMING(ConfigError, parse(full_with("batch_size = 128", "batch_size = 1.5")),
                              "train.batch_size");
  TESSERA_EXPECT_THROW_NAMING(ConfigError, parse(full_with("shuffle = false", "shuffle = 1")), "data.shuffle");
  TESSERA_EXPECT_THROW_NAMING(ConfigError, parse(full_with("hidden = [32, 16]", "hidden = 32")),
                              "model.hidden");
  TESSERA_EXPECT_THROW_NAMING(ConfigError, parse(full_with("hidden = [32, 16]", "hidden = [32, \"a\"]")),
                              "model.hidden");
  TESSERA_EXPECT_THROW_NAMING(ConfigError, parse(full_with("betas = [0.8, 0.95]", "betas = [0.8]")),
                              "optimizer.betas");
  TESSERA_EXPECT_THROW_NAMING(ConfigError, parse(full_with("activation = \"gelu\"", "activation = \"swish\"")),
                              "model.activation", "swish");
  TESSERA_EXPECT_THROW_NAMING(ConfigError, parse(full_with("train = \"data/train.h5\"", "train = 5")),
                              "data.train");
}

TEST(Config, OutOfRangeNamesTheKey) {
  TESSERA_EXPECT_THROW_NAMING(ConfigError, parse(full_with("lr = 0.003", "lr = -1")), "optimizer.lr");
  TESSERA_EXPECT_THROW_NAMING(ConfigError, parse(full_with("lr = 0.003", "lr = 0")), "optimizer.lr");
  TESSERA_EXPECT_THROW_NAMING(ConfigError, parse(full_with("lr = 0.003", "lr = nan")), "optimizer.lr");
  TESSERA_EXPECT_THROW_NAMING(ConfigError, parse(full_with("batch_size = 128", "batch_size = 0")),
                              "train.batch_size");
  TESSERA_EXPECT_THROW_NAMING(ConfigError, parse(full_with("momentum = 0.5", "momentum = 1.0")),
                              "optimizer.momentum");
  TESSERA_EXPECT_THROW_NAMING(ConfigError, parse(full_with("epochs = 3", "epochs = 0")), "train.epochs");
  TESSERA_EXPECT_THROW_NAMING(ConfigError, parse(full_with("seed = 42", "seed = -1")), "train.seed");
  TESSERA_EXPECT_THROW_NAMING(ConfigError, parse(full_with("hidden = [32, 16]", "hidden = [32, 0]")),
                              "model.hidden");
  TESSERA_EXPECT_THROW_NAMING(ConfigError, parse(full_with("betas = [0.8, 0.95]", "betas = [0.8, 1.0]")),
                              "optimizer.betas");
  TESSERA_EXPECT_THROW_NAMING(ConfigError, parse(full_with("classes = 10", "classes = 1")), "model.classes");
  TESSERA_EXPECT_THROW_NAMING(ConfigError, parse(full_with("classes = 10", "classes = -2")), "model.classes");
  TESSERA_EXPECT_THROW_NAMING(ConfigError, parse(full_with("hidden = [32, 16]", "hidden = []")), "model.hidden");
}

TEST(Config, MissingTrainIsAnError) {
  TESSERA_EXPECT_THROW_NAMING(ConfigError, parse("[train]\nepochs = 2\n"), "data.train");
}

TEST(Config, SetOverridesApplyAndAreValidated) {
  const TrainConfig c = parse(kFull, {"optimizer.lr=0.05", "model.hidden=[8,4]", "data.train=other.h5",
                                      "train.seed=7", "model.activation=tanh", "data.shuffle=true"})
                            .config;
  EXPECT_DOUBLE_EQ(c.optimizer.lr, 0.05);
  EXPECT_EQ(c.model.hidden, (std::vector<int64_t>{8, 4}));
  EXPECT_EQ(c.data.train, std::vector<std::string>{"/base/dir/other.h5"});
  EXPECT_EQ(c.train.seed, 7u);
  EXPECT_EQ(c.model.activation, kernels::Activation::kTanh);
  EXPECT_TRUE(c.data.shuffle);
  // Later overrides win; a section missing from the file is created.
  const TrainConfig d = parse("[data]\ntrain = \"t.h5\"\n", {"train.epochs=2", "train.epochs=5"}).config;
  EXPECT_EQ(d.train.epochs, 5);

  TESSERA_EXPECT_THROW_NAMING(ConfigError, parse(kFull, {"nosuch.key=1"}), "nosuch.key");
  TESSERA_EXPECT_THROW_NAMING(ConfigError, parse(kFull, {"optimizer.nosuch=1"}), "optimizer.nosuch");
  TESSERA_EXPECT_THROW_NAMING(ConfigError, parse(kFull, {"optimizer.lr=-1"}), "optimizer.lr");
  TESSERA_EXPECT_THROW_NAMING(ConfigError, parse(kFull, {"optimizer.lr=x"}), "optimizer.lr");
  TESSERA_EXPECT_THROW_NAMING(ConfigError, parse(kFull, {"train.batch_size=1.5"}), "train.batch_size");
  TESSERA_EXPECT_THROW_NAMING(ConfigError, parse(kFull, {"optimizer.momentum=1.0"}), "optimizer.momentum");
  TESSERA_EXPECT_THROW_NAMING(ConfigError, parse(kFull, {"optimizer.lr"}), "optimizer.lr");
}

// "bf16" parses anywhere (eval of a bf16 run's config runs in float32 on any machine); train's
// check_precision refuses it, naming the key and the reason, exactly where the kernels cannot
// run it (a CPU without AVX512_BF16; cli_bf16 checks the refusal there).
TEST(Config, PrecisionParsesAndTrainChecksBf16) {
  const TrainConfig c = parse(kFull, {"train.precision=bf16"}).config;
  EXPECT_EQ(c.train.precision, Precision::kBf16);
  TESSERA_EXPECT_THROW_NAMING(ConfigError, parse(kFull, {"train.precision=fp16"}), "train.precision");
  EXPECT_NO_THROW(check_precision(parse(kFull).config.train));
  if (const char* why = kernels::bf16_unsupported_reason()) {
    TESSERA_EXPECT_THROW_NAMING(ConfigError, check_precision(c.train), "train.precision", why);
  } else {
    EXPECT_NO_THROW(check_precision(c.train));
  }
}

TEST(Config, InvalidTomlNamesTheLine) {
  TESSERA_EXPECT_THROW_NAMING(ConfigError, parse("[data]\ntrain = \"a.h5\"\nlr = = 3\n"), "test.toml", ":3:");
  TESSERA_EXPECT_THROW_NAMING(ConfigError, parse("[data]\ntrain = \"a.h5\"\n\n\n[model\n"), ":5:");
}

TEST(Config, ResolvedTomlRoundTrips) {
  for (const std::vector<std::string>& overrides :
       {std::vector<std::string>{}, std::vector<std::string>{"optimizer.lr=0.1", "optimizer.eps=1e-8",
                                                             "optimizer.weight_decay=0.3",
                                                             "data.validation=\"\"", "model.init=\"\"",
                                                             "train.precision=bf16"}}) {
    const ParsedConfig a = parse(kFull, overrides);
    const ParsedConfig b = parse_config_text(a.resolved_toml, "/elsewhere", "resolved.toml", {});
    expect_same(a.config, b.config);
    EXPECT_EQ(b.resolved_toml, a.resolved_toml);
    EXPECT_EQ(to_toml(a.config), a.resolved_toml);
  }
  const ParsedConfig m = parse("[data]\ntrain = \"t.h5\"\n[model]\nkind = \"linear\"\ntask = \"regression\"\n");
  expect_same(parse_config_text(m.resolved_toml, "/x", "r", {}).config, m.config);
}

TEST(Config, ExtraValidationSetsResolveAndRoundTrip) {
  const ParsedConfig a = parse("[data]\ntrain = \"t.h5\"\n", {"data.extra_validation={old = \"o.h5\", b-2 = [\"x.h5\", \"/abs/y.h5\"]}"});
  const auto& e = a.config.data.extra_validation;
  ASSERT_EQ(e.size(), 2u);
  EXPECT_EQ(e[0].first, "b-2");  // toml++ tables iterate in key order
  EXPECT_EQ(e[0].second, (std::vector<std::string>{"/base/dir/x.h5", "/abs/y.h5"}));
  EXPECT_EQ(e[1].first, "old");
  EXPECT_EQ(e[1].second, (std::vector<std::string>{"/base/dir/o.h5"}));
  const ParsedConfig b = parse_config_text(a.resolved_toml, "/elsewhere", "resolved.toml", {});
  EXPECT_EQ(b.config.data.extra_validation, e);
  TESSERA_EXPECT_THROW_NAMING(ConfigError, parse("[data]\ntrain = \"t.h5\"\nextra_validation = \"o.h5\"\n"),
                              "data.extra_validation", "expected a table");
  TESSERA_EXPECT_THROW_NAMING(ConfigError, parse("[data]\ntrain = \"t.h5\"\nextra_validation = { validation = \"o.h5\" }\n"),
                              "data.extra_validation.validation");
}

TEST(Config, ResumeIdentityIgnoresRunLengthAndPathsAndNamesWhatDiffers) {
  const ParsedConfig a = parse(kFull);
  const ParsedConfig same = parse(kFull, {"train.epochs=9", "train.max_steps=5", "train.threads=2", "train.log_every=3",
                                          "data.train=\"moved/t.h5\"", "checkpoint.every_steps=7", "model.init=\"\"",
                                          "optimizer.fused=false"});
  EXPECT_EQ(resume_identity_toml(a.config), resume_identity_toml(same.config));
  // optimizer.fused is not in the identity at all: checkpoints from before the key still resume.
  EXPECT_EQ(resume_identity_toml(same.config).find("fused"), std::string::npos);
  EXPECT_NE(a.resolved_toml.find("fused = true"), std::string::npos);
  const ParsedConfig other = parse(kFull, {"optimizer.lr=0.05", "train.seed=4"});
  EXPECT_NE(resume_identity_toml(a.config), resume_identity_toml(other.config));
  const std::string diff = identity_diff(resume_identity_toml(a.config), resume_identity_toml(other.config));
  EXPECT_NE(diff.find("optimizer.lr: 0.003 in the checkpoint, 0.05 now"), std::string::npos) << diff;
  EXPECT_NE(diff.find("train.seed: "), std::string::npos) << diff;
}

}  // namespace
}  // namespace tessera
