// TrainConfig: the resolved run configuration (DESIGN §2) as plain data. io/config_parser.h
// fills it from TOML; core validates nothing about files, only about numbers it relies on.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "kernels/activation.h"

namespace tessera {

enum class Task { kClassification, kBinary, kRegression };
enum class OptimizerKind { kSgd, kAdam, kAdamW };
enum class Schedule { kConstant, kCosine, kStep };
// Training GEMM precision: fp32, or bf16 products with float32 accumulation and master weights.
enum class Precision { kFp32, kBf16 };

struct DataConfig {
  std::vector<std::string> train;       // resolved paths (globs expanded), concatenated in order
  std::vector<std::string> validation;  // optional
  // More evaluation sets, each reported under its own name (e.g. the previous data of a
  // warm-started run, so forgetting shows in metrics.jsonl).
  std::vector<std::pair<std::string, std::vector<std::string>>> extra_validation;
  std::string features = "X";
  std::string labels = "y";
  bool shuffle = true;
  int64_t memory_budget_mb = 256;
};

struct ModelConfig {
  std::string kind = "mlp";  // linear | mlp
  std::vector<int64_t> hidden = {256, 128};
  kernels::Activation activation = kernels::Activation::kRelu;
  int64_t classes = 0;  // 0 = infer from labels
  Task task = Task::kClassification;
  std::string init;  // weights file, "" = nn.Linear default init
};

struct OptimizerConfig {
  OptimizerKind kind = OptimizerKind::kSgd;
  double lr = 0.1;
  double momentum = 0.0;
  double beta1 = 0.9, beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
  Schedule schedule = Schedule::kConstant;
  int64_t warmup_steps = 0;
  int64_t step_every = 1000;  // schedule = "step": multiply lr by gamma every step_every steps
  double gamma = 0.1;
  double grad_clip_norm = 0.0;
  // SGD on one rank: the update written by the weight-gradient products as they go (core/
  // trainer.cpp says when it applies). The same bits either way.
  bool fused = true;
};

struct TrainSection {
  int64_t batch_size = 256;
  int64_t epochs = 1;
  int64_t max_steps = 0;
  uint64_t seed = 1;
  int64_t log_every = 10;
  int64_t eval_every = 0;
  int64_t threads = 0;
  Precision precision = Precision::kFp32;
  std::string non_finite = "stop";  // a NaN/inf loss or gradient: stop the run, or skip the step
};

struct DistributedConfig {
  std::string strategy = "ddp";
  double bucket_mb = 0.5;  // least MiB per reduced piece (core/grad_reducer.h)
  double timeout_s = 300;
  bool overlap = true;  // start piece reductions during backward
};

struct CheckpointConfig {
  std::string dir = "runs/example";
  int64_t every_steps = 0;
  int64_t keep_last = 3;
};

struct TrainConfig {
  DataConfig data;
  ModelConfig model;
  OptimizerConfig optimizer;
  TrainSection train;
  DistributedConfig distributed;
  CheckpointConfig checkpoint;
};

const char* to_string(Task t);
const char* to_string(OptimizerKind k);
const char* to_string(Schedule s);
const char* to_string(Precision p);
const char* to_string(kernels::Activation a);

}  // namespace tessera
