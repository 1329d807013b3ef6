// Slow path of TESSERA_CHECK, out of line so the check itself stays cheap.
#include "core/error.h"

namespace tessera::detail {

void check_failed(const char* cond, const char* file, int line, const std::string& msg) {
  throw Error(concat("internal check failed: ", cond, " (", file, ":", line, ")",
                     msg.empty() ? "" : ": ", msg));
}

}  // namespace tessera::detail
