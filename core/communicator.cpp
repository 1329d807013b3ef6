// check_agreement: one allgather of a hash, so a mismatch is reported instead of deadlocking
// a later collective whose sizes differ between ranks.
#include "core/communicator.h"

#include <sstream>

#include "core/error.h"

namespace tessera {

void check_agreement(Communicator& comm, uint64_t value, const std::string& what) {
  const std::vector<uint64_t> all = comm.allgather(value);
  std::ostringstream differ;
  int count = 0;
  for (size_t r = 0; r < all.size(); ++r) {
    if (all[r] != all[0]) {
      differ << (count++ ? "," : "") << r;
    }
  }
  if (count > 0) {
    throw ConfigError("ranks disagree on " + what + ": rank(s) " + differ.str() +
                      " differ from rank 0 (every rank must see the same config, files and "
                      "--set options; check paths on every host)");
  }
}

}  // namespace tessera
