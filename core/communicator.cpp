// check_agreement: one allgather of a hash, so a mismatch is reported instead of deadlocking
// a later collective whose sizes differ between ranks.
#include "core/communicator.h"

#include <algorithm>
#include <sstream>

#include "core/error.h"

namespace tessera {

void LocalCommunicator::allgather(std::span<const double> mine, std::span<double> all) {
  TESSERA_CHECK(all.size() == mine.size(), "allgather: output holds ", all.size(), " values, expected ", mine.size());
  std::copy(mine.begin(), mine.end(), all.begin());
}

std::string ranks_differing(const std::vector<uint64_t>& values) {
  std::ostringstream differ;
  int count = 0;
  for (size_t r = 0; r < values.size(); ++r) {
    if (values[r] != values[0]) differ << (count++ ? "," : "") << r;
  }
  return differ.str();
}

void check_agreement(Communicator& comm, uint64_t value, const std::string& what) {
  const std::string differ = ranks_differing(comm.allgather(value));
  if (!differ.empty()) {
    throw ConfigError("ranks disagree on " + what + ": rank(s) " + differ +
                      " differ from rank 0 (every rank must see the same config, files and "
                      "--set options; check paths on every host)");
  }
}

}  // namespace tessera
