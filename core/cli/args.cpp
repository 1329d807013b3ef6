// Args: deliberately small; each subcommand declares its flags so typos fail loudly.
#include "core/cli/args.h"

#include <cstdlib>

#include "core/error.h"

namespace tessera::cli {

Args::Args(const std::vector<std::string>& argv, const std::set<std::string>& valued,
           const std::set<std::string>& switches, const std::string& usage)
    : usage_(usage) {
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& a = argv[i];
    if (a == "--help" || a == "-h") {
      help_ = true;
      continue;
    }
    if (a.rfind("--", 0) != 0 || a == "--") {
      positional_.push_back(a);
      continue;
    }
    std::string flag = a, value;
    bool has_value = false;
    if (const size_t eq = a.find('='); eq != std::string::npos) {
      flag = a.substr(0, eq);
      value = a.substr(eq + 1);
      has_value = true;
    }
    if (switches.count(flag)) {
      if (has_value) throw ConfigError("option " + flag + " takes no value\n" + usage_);
      values_[flag].push_back("1");
    } else if (valued.count(flag)) {
      if (!has_value) {
        if (i + 1 >= argv.size()) throw ConfigError("option " + flag + " needs a value\n" + usage_);
        value = argv[++i];
      }
      values_[flag].push_back(value);
    } else {
      throw ConfigError("unknown option " + flag + "\n" + usage_);
    }
  }
}

std::string Args::get(const std::string& flag, const std::string& fallback) const {
  const auto it = values_.find(flag);
  return it == values_.end() ? fallback : it->second.back();
}

std::string Args::require(const std::string& flag) const {
  if (!has(flag)) throw ConfigError("missing required option " + flag + "\n" + usage_);
  return get(flag);
}

std::vector<std::string> Args::all(const std::string& flag) const {
  const auto it = values_.find(flag);
  return it == values_.end() ? std::vector<std::string>{} : it->second;
}

int64_t Args::get_int(const std::string& flag, int64_t fallback) const {
  if (!has(flag)) return fallback;
  const std::string v = get(flag);
  char* end = nullptr;
  const long long n = std::strtoll(v.c_str(), &end, 10);
  if (v.empty() || *end != '\0') throw ConfigError("option " + flag + ": '" + v + "' is not an integer\n" + usage_);
  return n;
}

}  // namespace tessera::cli
