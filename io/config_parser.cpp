// Config parsing: one schema table maps each dotted key to a reader that checks type and range
// and stores the value, so "unknown", "wrong type" and "out of range" have a single home.
#include "io/config_parser.h"

#include <glob.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <toml++/toml.h>

#include "core/error.h"

namespace tessera {

namespace {

namespace fs = std::filesystem;

[[noreturn]] void bad(const std::string& key, const std::string& msg) {
  throw ConfigError("config key '" + key + "': " + msg);
}

int64_t get_int(const toml::node& n, const std::string& key, int64_t lo, int64_t hi = INT64_MAX) {
  const auto v = n.value_exact<int64_t>();
  if (!v) bad(key, "expected an integer");
  if (*v < lo || *v > hi) {
    bad(key, "value " + std::to_string(*v) + " out of range (expected " + std::to_string(lo) +
                 (hi == INT64_MAX ? " or more" : ".." + std::to_string(hi)) + ")");
  }
  return *v;
}

double get_float(const toml::node& n, const std::string& key, double lo, double hi,
                 bool lo_open = false, bool hi_open = false) {
  double v;
  if (auto d = n.value_exact<double>()) {
    v = *d;
  } else if (auto i = n.value_exact<int64_t>()) {
    v = static_cast<double>(*i);
  } else {
    bad(key, "expected a number");
  }
  const bool ok = std::isfinite(v) && (lo_open ? v > lo : v >= lo) && (hi_open ? v < hi : v <= hi);
  if (!ok) {
    std::ostringstream os;
    os << "value " << v << " out of range (expected " << (lo_open ? "(" : "[") << lo << ", " << hi
       << (hi_open ? ")" : "]") << ")";
    bad(key, os.str());
  }
  return v;
}

bool get_bool(const toml::node& n, const std::string& key) {
  const auto v = n.value_exact<bool>();
  if (!v) bad(key, "expected true or false");
  return *v;
}

std::string get_string(const toml::node& n, const std::string& key) {
  const auto v = n.value_exact<std::string>();
  if (!v) bad(key, "expected a string");
  return *v;
}

std::string get_choice(const toml::node& n, const std::string& key,
                       const std::vector<std::string>& choices) {
  const std::string v = get_string(n, key);
  for (const auto& c : choices) {
    if (c == v) return v;
  }
  std::string all;
  for (const auto& c : choices) all += (all.empty() ? "" : " | ") + c;
  bad(key, "'" + v + "' is not one of " + all);
}

std::vector<std::string> get_paths(const toml::node& n, const std::string& key,
                                   const std::string& base) {
  std::vector<std::string> raw;
  if (n.is_string()) {
    raw.push_back(get_string(n, key));
  } else if (const toml::array* a = n.as_array()) {
    for (const auto& e : *a) raw.push_back(get_string(e, key));
  } else {
    bad(key, "expected a file path, a glob, or a list of them");
  }
  std::vector<std::string> out;
  for (const std::string& r : raw) {
    if (r.empty()) bad(key, "empty path");
    const std::string p = fs::path(r).is_absolute() ? r : (fs::path(base) / r).lexically_normal().string();
    if (p.find_first_of("*?[") != std::string::npos) {
      glob_t g{};
      const int rc = glob(p.c_str(), 0, nullptr, &g);
      std::vector<std::string> matched(g.gl_pathv, g.gl_pathv + (rc == 0 ? g.gl_pathc : 0));
      globfree(&g);
      if (matched.empty()) throw DataError("config key '" + key + "': glob '" + p + "' matches no files");
      out.insert(out.end(), matched.begin(), matched.end());  // glob(3) sorts them
    } else {
      out.push_back(p);
    }
  }
  return out;
}

using Reader = std::function<void(const toml::node&, TrainConfig&, const std::string& key,
                                  const std::string& base)>;

const std::map<std::string, Reader>& schema() {
  static const std::map<std::string, Reader> s = {
      {"data.train", [](auto& n, auto& c, auto& k, auto& b) { c.data.train = get_paths(n, k, b); }},
      {"data.validation",
       [](auto& n, auto& c, auto& k, auto& b) {
         c.data.validation = (n.is_string() && get_string(n, k).empty()) ? std::vector<std::string>{}
                                                                          : get_paths(n, k, b);
       }},
      {"data.extra_validation",
       [](auto& n, auto& c, auto& k, auto& b) {
         const toml::table* t = n.as_table();
         if (t == nullptr) bad(k, "expected a table of name = file(s), e.g. { old = \"old_val.h5\" }");
         c.data.extra_validation.clear();
         for (auto&& [name, files] : *t) {
           const std::string nm(name.str());
           const bool plain = !nm.empty() && nm.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") == std::string::npos;
           if (!plain || nm == "validation") bad(k + "." + nm, "a set name is letters, digits, _ or - and not 'validation'");
           c.data.extra_validation.emplace_back(nm, get_paths(files, k + "." + nm, b));
         }
       }},
      {"data.features", [](auto& n, auto& c, auto& k, auto&) { c.data.features = get_string(n, k); }},
      {"data.labels", [](auto& n, auto& c, auto& k, auto&) { c.data.labels = get_string(n, k); }},
      {"data.shuffle", [](auto& n, auto& c, auto& k, auto&) { c.data.shuffle = get_bool(n, k); }},
      {"data.memory_budget_mb",
       [](auto& n, auto& c, auto& k, auto&) { c.data.memory_budget_mb = get_int(n, k, 1); }},
      {"model.kind",
       [](auto& n, auto& c, auto& k, auto&) { c.model.kind = get_choice(n, k, {"linear", "mlp"}); }},
      {"model.hidden",
       [](auto& n, auto& c, auto& k, auto&) {
         const toml::array* a = n.as_array();
         if (a == nullptr) bad(k, "expected a list of layer widths, e.g. [256, 128]");
         c.model.hidden.clear();
         for (const auto& e : *a) c.model.hidden.push_back(get_int(e, k, 1, 1 << 20));
       }},
      {"model.activation",
       [](auto& n, auto& c, auto& k, auto&) {
         const std::string v = get_choice(n, k, {"relu", "tanh", "gelu", "sigmoid"});
         using A = kernels::Activation;
         c.model.activation = v == "relu" ? A::kRelu : v == "tanh" ? A::kTanh : v == "gelu" ? A::kGelu : A::kSigmoid;
       }},
      {"model.classes",
       [](auto& n, auto& c, auto& k, auto&) { c.model.classes = get_int(n, k, 0, 1 << 24); }},
      {"model.task",
       [](auto& n, auto& c, auto& k, auto&) {
         const std::string v = get_choice(n, k, {"classification", "binary", "regression"});
         c.model.task = v == "classification" ? Task::kClassification
                        : v == "binary"       ? Task::kBinary
                                              : Task::kRegression;
       }},
      {"model.init",
       [](auto& n, auto& c, auto& k, auto& b) {
         const std::string v = get_string(n, k);
         c.model.init = v.empty() || fs::path(v).is_absolute() ? v : (fs::path(b) / v).lexically_normal().string();
       }},
      {"optimizer.kind",
       [](auto& n, auto& c, auto& k, auto&) {
         const std::string v = get_choice(n, k, {"sgd", "adam", "adamw"});
         c.optimizer.kind = v == "sgd" ? OptimizerKind::kSgd : v == "adam" ? OptimizerKind::kAdam : OptimizerKind::kAdamW;
       }},
      {"optimizer.lr", [](auto& n, auto& c, auto& k, auto&) { c.optimizer.lr = get_float(n, k, 0, 1e6, true); }},
      {"optimizer.momentum",
       [](auto& n, auto& c, auto& k, auto&) { c.optimizer.momentum = get_float(n, k, 0, 1, false, true); }},
      {"optimizer.betas",
       [](auto& n, auto& c, auto& k, auto&) {
         const toml::array* a = n.as_array();
         if (a == nullptr || a->size() != 2) bad(k, "expected two numbers, e.g. [0.9, 0.999]");
         c.optimizer.beta1 = get_float((*a)[0], k, 0, 1, false, true);
         c.optimizer.beta2 = get_float((*a)[1], k, 0, 1, false, true);
       }},
      {"optimizer.eps", [](auto& n, auto& c, auto& k, auto&) { c.optimizer.eps = get_float(n, k, 0, 1, true); }},
      {"optimizer.weight_decay",
       [](auto& n, auto& c, auto& k, auto&) { c.optimizer.weight_decay = get_float(n, k, 0, 1e3); }},
      {"optimizer.schedule",
       [](auto& n, auto& c, auto& k, auto&) {
         const std::string v = get_choice(n, k, {"constant", "cosine", "step"});
         c.optimizer.schedule = v == "constant" ? Schedule::kConstant : v == "cosine" ? Schedule::kCosine : Schedule::kStep;
       }},
      {"optimizer.warmup_steps",
       [](auto& n, auto& c, auto& k, auto&) { c.optimizer.warmup_steps = get_int(n, k, 0); }},
      {"optimizer.step_every",
       [](auto& n, auto& c, auto& k, auto&) { c.optimizer.step_every = get_int(n, k, 1); }},
      {"optimizer.gamma",
       [](auto& n, auto& c, auto& k, auto&) { c.optimizer.gamma = get_float(n, k, 0, 1, true); }},
      {"optimizer.grad_clip_norm",
       [](auto& n, auto& c, auto& k, auto&) { c.optimizer.grad_clip_norm = get_float(n, k, 0, 1e12); }},
      {"optimizer.fused", [](auto& n, auto& c, auto& k, auto&) { c.optimizer.fused = get_bool(n, k); }},
      {"train.batch_size",
       [](auto& n, auto& c, auto& k, auto&) { c.train.batch_size = get_int(n, k, 1, int64_t{1} << 31); }},
      {"train.epochs", [](auto& n, auto& c, auto& k, auto&) { c.train.epochs = get_int(n, k, 1); }},
      {"train.max_steps", [](auto& n, auto& c, auto& k, auto&) { c.train.max_steps = get_int(n, k, 0); }},
      {"train.seed",
       [](auto& n, auto& c, auto& k, auto&) { c.train.seed = static_cast<uint64_t>(get_int(n, k, 0)); }},
      {"train.log_every", [](auto& n, auto& c, auto& k, auto&) { c.train.log_every = get_int(n, k, 1); }},
      {"train.eval_every", [](auto& n, auto& c, auto& k, auto&) { c.train.eval_every = get_int(n, k, 0); }},
      {"train.threads", [](auto& n, auto& c, auto& k, auto&) { c.train.threads = get_int(n, k, 0, 4096); }},
      {"train.precision",
       [](auto& n, auto& c, auto& k, auto&) {
         // Whether this machine runs bf16 is checked by `train` (check_precision), not here:
         // evaluating a bf16-trained run's config runs in float32 anywhere.
         c.train.precision = get_choice(n, k, {"fp32", "bf16"}) == "bf16" ? Precision::kBf16 : Precision::kFp32;
       }},
      {"distributed.strategy",
       [](auto& n, auto& c, auto& k, auto&) {
         c.distributed.strategy = get_choice(n, k, {"ddp", "zero1", "zero2", "zero3"});
         if (c.distributed.strategy != "ddp") {
           bad(k, "'" + c.distributed.strategy + "' is not available in this version of tessera yet (use \"ddp\")");
         }
       }},
      {"distributed.bucket_mb",
       [](auto& n, auto& c, auto& k, auto&) { c.distributed.bucket_mb = get_float(n, k, 0, 4096, true); }},
      {"distributed.timeout_s",
       [](auto& n, auto& c, auto& k, auto&) { c.distributed.timeout_s = get_float(n, k, 0, 1e7, true); }},
      {"distributed.overlap", [](auto& n, auto& c, auto& k, auto&) { c.distributed.overlap = get_bool(n, k); }},
      {"train.non_finite",
       [](auto& n, auto& c, auto& k, auto&) { c.train.non_finite = get_choice(n, k, {"stop", "skip"}); }},
      {"checkpoint.dir",
       [](auto& n, auto& c, auto& k, auto& b) {
         const std::string v = get_string(n, k);
         if (v.empty()) bad(k, "empty run directory");
         c.checkpoint.dir = fs::path(v).is_absolute() ? v : (fs::path(b) / v).lexically_normal().string();
       }},
      {"checkpoint.every_steps",
       [](auto& n, auto& c, auto& k, auto&) { c.checkpoint.every_steps = get_int(n, k, 0); }},
      {"checkpoint.keep_last",
       [](auto& n, auto& c, auto& k, auto&) { c.checkpoint.keep_last = get_int(n, k, 1); }},
  };
  return s;
}

// Parses the value of --set key=value as TOML; bare words become strings.
toml::table parse_override_value(const std::string& value) {
  try {
    return toml::parse("v = " + value);
  } catch (const toml::parse_error&) {
    toml::table t;
    t.insert("v", value);
    return t;
  }
}

void apply_override(toml::table& root, const std::string& kv) {
  const size_t eq = kv.find('=');
  if (eq == std::string::npos || eq == 0) {
    throw ConfigError("--set '" + kv + "': expected key=value, e.g. --set optimizer.lr=0.05");
  }
  auto trim = [](std::string t) {
    const size_t a = t.find_first_not_of(" \t"), b = t.find_last_not_of(" \t");
    return a == std::string::npos ? std::string() : t.substr(a, b - a + 1);
  };
  const std::string key = trim(kv.substr(0, eq));
  const size_t dot = key.find('.');
  if (!schema().count(key) || dot == std::string::npos) {
    throw ConfigError("config key '" + key + "': unknown key (from --set " + kv + ")");
  }
  toml::table value = parse_override_value(trim(kv.substr(eq + 1)));
  const std::string section = key.substr(0, dot), name = key.substr(dot + 1);
  if (!root.contains(section)) root.insert(section, toml::table{});
  toml::table* t = root[section].as_table();
  if (t == nullptr) throw ConfigError("config key '" + section + "': expected a table");
  t->insert_or_assign(name, std::move(*value.get("v")));
}

}  // namespace

ParsedConfig parse_config_text(const std::string& text, const std::string& base_dir,
                               const std::string& source, const std::vector<std::string>& overrides) {
  toml::table root;
  try {
    root = toml::parse(text, source);
  } catch (const toml::parse_error& e) {
    std::ostringstream os;
    os << source << ":" << e.source().begin.line << ":" << e.source().begin.column
       << ": invalid TOML: " << e.description();
    throw ConfigError(os.str());
  }
  for (const std::string& kv : overrides) apply_override(root, kv);

  ParsedConfig out;
  out.source = source;
  for (auto&& [section_key, section] : root) {
    const std::string sec(section_key.str());
    const toml::table* t = section.as_table();
    if (t == nullptr) {
      throw ConfigError("config key '" + sec + "': unknown top-level key (expected one of the "
                        "tables [data] [model] [optimizer] [train] [distributed] [checkpoint])");
    }
    for (auto&& [k, node] : *t) {
      const std::string key = sec + "." + std::string(k.str());
      const auto it = schema().find(key);
      if (it == schema().end()) {
        throw ConfigError("config key '" + key + "': unknown key (see docs/config.md for the keys)");
      }
      it->second(node, out.config, key, base_dir);
    }
  }
  // The default run directory ("runs/example") is relative too: resolve it like a file value, so
  // the resolved config holds only absolute paths and re-running it targets the same directory.
  if (!fs::path(out.config.checkpoint.dir).is_absolute()) {
    out.config.checkpoint.dir = (fs::path(base_dir) / out.config.checkpoint.dir).lexically_normal().string();
  }
  const TrainConfig& c = out.config;
  if (c.data.train.empty()) throw ConfigError("config key 'data.train': required (the training files)");
  if (c.model.kind == "mlp" && c.model.hidden.empty()) {
    throw ConfigError("config key 'model.hidden': an mlp needs at least one hidden layer (or use model.kind = \"linear\")");
  }
  if (c.model.task != Task::kClassification && c.model.classes != 0) {
    throw ConfigError("config key 'model.classes': only used by task = \"classification\"");
  }
  if (c.model.task == Task::kClassification && c.model.classes == 1) {
    throw ConfigError("config key 'model.classes': value 1 out of range (need 2 or more, or 0 to infer)");
  }
  out.resolved_toml = to_toml(c);
  return out;
}

ParsedConfig parse_config_file(const std::string& path, const std::vector<std::string>& overrides) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError("cannot read config file " + path + " (no such file?)");
  std::stringstream ss;
  ss << in.rdbuf();
  const fs::path base = fs::absolute(fs::path(path)).parent_path();
  return parse_config_text(ss.str(), base.string(), path, overrides);
}

std::string to_toml(const TrainConfig& c) {
  auto paths = [](const std::vector<std::string>& v) {
    toml::array a;
    for (const auto& p : v) a.push_back(p);
    return a;
  };
  toml::array hidden;
  for (int64_t h : c.model.hidden) hidden.push_back(h);
  toml::table extra;
  for (const auto& [name, files] : c.data.extra_validation) extra.insert(name, paths(files));
  toml::table root{
      {"data", toml::table{{"train", paths(c.data.train)},
                           {"validation", paths(c.data.validation)},
                           {"extra_validation", extra},
                           {"features", c.data.features},
                           {"labels", c.data.labels},
                           {"shuffle", c.data.shuffle},
                           {"memory_budget_mb", c.data.memory_budget_mb}}},
      {"model", toml::table{{"kind", c.model.kind},
                            {"hidden", hidden},
                            {"activation", to_string(c.model.activation)},
                            {"classes", c.model.classes},
                            {"task", to_string(c.model.task)},
                            {"init", c.model.init}}},
      {"optimizer", toml::table{{"kind", to_string(c.optimizer.kind)},
                                {"lr", c.optimizer.lr},
                                {"momentum", c.optimizer.momentum},
                                {"betas", toml::array{c.optimizer.beta1, c.optimizer.beta2}},
                                {"eps", c.optimizer.eps},
                                {"weight_decay", c.optimizer.weight_decay},
                                {"schedule", to_string(c.optimizer.schedule)},
                                {"warmup_steps", c.optimizer.warmup_steps},
                                {"step_every", c.optimizer.step_every},
                                {"gamma", c.optimizer.gamma},
                                {"grad_clip_norm", c.optimizer.grad_clip_norm},
                                {"fused", c.optimizer.fused}}},
      {"train", toml::table{{"batch_size", c.train.batch_size},
                            {"epochs", c.train.epochs},
                            {"max_steps", c.train.max_steps},
                            {"seed", static_cast<int64_t>(c.train.seed)},
                            {"log_every", c.train.log_every},
                            {"eval_every", c.train.eval_every},
                            {"threads", c.train.threads},
                            {"precision", to_string(c.train.precision)},
                            {"non_finite", c.train.non_finite}}},
      {"distributed", toml::table{{"strategy", c.distributed.strategy},
                                  {"bucket_mb", c.distributed.bucket_mb},
                                  {"timeout_s", c.distributed.timeout_s},
                                  {"overlap", c.distributed.overlap}}},
      {"checkpoint", toml::table{{"dir", c.checkpoint.dir},
                                 {"every_steps", c.checkpoint.every_steps},
                                 {"keep_last", c.checkpoint.keep_last}}},
  };
  std::ostringstream os;
  os << "# tessera resolved config (every key, final values, absolute paths)\n" << root << "\n";
  return os.str();
}

std::string resume_identity_toml(const TrainConfig& cfg) {
  TrainConfig c = cfg;
  const TrainConfig defaults;
  c.data.train.clear();
  c.data.validation.clear();
  c.data.extra_validation.clear();
  c.data.memory_budget_mb = defaults.data.memory_budget_mb;
  c.model.init.clear();
  c.train.epochs = defaults.train.epochs;
  c.train.max_steps = defaults.train.max_steps;
  c.train.log_every = defaults.train.log_every;
  c.train.eval_every = defaults.train.eval_every;
  c.train.threads = defaults.train.threads;
  c.distributed.timeout_s = defaults.distributed.timeout_s;
  c.distributed.bucket_mb = defaults.distributed.bucket_mb;
  c.checkpoint = defaults.checkpoint;
  // optimizer.fused gives the same bits either way, and checkpoints written before the key
  // existed hashed an identity without it: left out, so that they still resume.
  std::string t = to_toml(c);
  const std::string fused = "fused = " + std::string(c.optimizer.fused ? "true" : "false") + "\n";
  if (const size_t at = t.find(fused); at != std::string::npos) t.erase(at, fused.size());
  return t;
}

namespace {

// "section.key" -> value for the `key = value` lines of a to_toml text.
std::map<std::string, std::string> toml_lines(const std::string& text) {
  std::map<std::string, std::string> out;
  std::istringstream in(text);
  std::string line, section;
  while (std::getline(in, line)) {
    line.erase(0, line.find_first_not_of(" \t"));
    if (line.size() > 2 && line.front() == '[' && line.back() == ']') section = line.substr(1, line.size() - 2);
    const size_t eq = line.find(" = ");
    if (eq != std::string::npos) out[section + "." + line.substr(0, eq)] = line.substr(eq + 3);
  }
  return out;
}

}  // namespace

std::string identity_diff(const std::string& before, const std::string& now) {
  const auto a = toml_lines(before), b = toml_lines(now);
  // Numbers as a person wrote them (0.1, not 0.10000000000000001) unless that hides the change.
  auto shown = [](const std::string& v, const std::string& other) {
    char* end = nullptr;
    const double d = std::strtod(v.c_str(), &end), e = std::strtod(other.c_str(), nullptr);
    if (v.empty() || *end != '\0') return v;
    char buf[2][40];
    std::snprintf(buf[0], sizeof buf[0], "%.15g", d);
    std::snprintf(buf[1], sizeof buf[1], "%.15g", e);
    return std::string(buf[0]) == buf[1] ? v : std::string(buf[0]);
  };
  std::string out;
  for (const auto& [key, value] : b) {
    const auto it = a.find(key);
    const std::string old = it == a.end() ? "(absent)" : it->second;
    if (old != value) {
      out += (out.empty() ? "" : "; ") + key + ": " + shown(old, value) + " in the checkpoint, " + shown(value, old) + " now";
    }
  }
  return out.empty() ? "the config differs in a way no single key shows" : out;
}

}  // namespace tessera
