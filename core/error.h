// Error types and the always-on TESSERA_CHECK. Every error maps to one process exit code
// (DESIGN §1), so the CLI can stop all ranks with the code of the rank that failed.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace tessera {

enum ExitCode : int {
  kExitOk = 0,
  kExitOther = 1,
  kExitUsage = 2,     // usage or config error
  kExitData = 3,      // bad data
  kExitCheckpoint = 4,  // corrupt or mismatched checkpoint / model file
  kExitComm = 5,      // communication failure or timeout
};

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what, int code = kExitOther)
      : std::runtime_error(what), code_(code) {}
  int code() const { return code_; }

 private:
  int code_;
};

class ConfigError : public Error {
 public:
  explicit ConfigError(const std::string& what) : Error(what, kExitUsage) {}
};
class DataError : public Error {
 public:
  explicit DataError(const std::string& what) : Error(what, kExitData) {}
};
class CorruptionError : public Error {
 public:
  explicit CorruptionError(const std::string& what) : Error(what, kExitCheckpoint) {}
};
class CommError : public Error {
 public:
  explicit CommError(const std::string& what) : Error(what, kExitComm) {}
};

namespace detail {
template <class... Args>
std::string concat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}
[[noreturn]] void check_failed(const char* cond, const char* file, int line, const std::string& msg);
}  // namespace detail

}  // namespace tessera

// Always on (also in Release): an invariant that does not hold is a bug worth a loud stop.
#define TESSERA_CHECK(cond, ...)                                                          \
  do {                                                                                    \
    if (!(cond))                                                                          \
      ::tessera::detail::check_failed(#cond, __FILE__, __LINE__,                          \
                                      ::tessera::detail::concat(__VA_ARGS__));            \
  } while (0)
