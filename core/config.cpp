// Names of the config enums, as they appear in TOML and in files we write.
#include "core/config.h"

namespace tessera {

const char* to_string(Task t) {
  switch (t) {
    case Task::kClassification: return "classification";
    case Task::kBinary: return "binary";
    case Task::kRegression: return "regression";
  }
  return "?";
}

const char* to_string(OptimizerKind k) {
  switch (k) {
    case OptimizerKind::kSgd: return "sgd";
    case OptimizerKind::kAdam: return "adam";
    case OptimizerKind::kAdamW: return "adamw";
  }
  return "?";
}

const char* to_string(Schedule s) {
  switch (s) {
    case Schedule::kConstant: return "constant";
    case Schedule::kCosine: return "cosine";
    case Schedule::kStep: return "step";
  }
  return "?";
}

const char* to_string(Precision p) {
  switch (p) {
    case Precision::kFp32: return "fp32";
    case Precision::kBf16: return "bf16";
  }
  return "?";
}

const char* to_string(kernels::Activation a) {
  switch (a) {
    case kernels::Activation::kRelu: return "relu";
    case kernels::Activation::kTanh: return "tanh";
    case kernels::Activation::kGelu: return "gelu";
    case kernels::Activation::kSigmoid: return "sigmoid";
  }
  return "?";
}

}  // namespace tessera
