// Command-line parsing for the tessera subcommands: positionals, `--flag value`,
// `--flag=value`, repeatable flags (--set) and switches. Mistakes are ConfigErrors (exit 2).
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

namespace tessera::cli {

class Args {
 public:
  // valued: flags that take a value; switches: flags without one. Anything else is an error.
  Args(const std::vector<std::string>& argv, const std::set<std::string>& valued,
       const std::set<std::string>& switches, const std::string& usage);

  const std::vector<std::string>& positional() const { return positional_; }
  bool has(const std::string& flag) const { return values_.count(flag) > 0; }
  // Last value of flag, or fallback.
  std::string get(const std::string& flag, const std::string& fallback = "") const;
  // The value, or a usage error naming the missing flag.
  std::string require(const std::string& flag) const;
  std::vector<std::string> all(const std::string& flag) const;
  int64_t get_int(const std::string& flag, int64_t fallback) const;
  bool help() const { return help_; }

 private:
  std::string usage_;
  std::vector<std::string> positional_;
  std::map<std::string, std::vector<std::string>> values_;
  bool help_ = false;
};

}  // namespace tessera::cli
