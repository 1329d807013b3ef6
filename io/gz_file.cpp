#include "io/gz_file.h"

#include <algorithm>

#include "core/error.h"

namespace tessera {

GzFile::GzFile(const std::string& path) : path_(path), f_(gzopen(path.c_str(), "rb")) {
  if (!f_) throw DataError("cannot open " + path + ": no such file or not readable");
  gzbuffer(f_.get(), 1 << 18);
}

void GzFile::read_exact(void* out, int64_t n, const char* what) {
  const int got = gzread(f_.get(), out, static_cast<unsigned>(n));
  if (got != n) {
    throw DataError(path_ + " byte " + std::to_string(offset_ + std::max(got, 0)) + ": file ends early while reading " +
                    what + " (truncated or corrupt download?)");
  }
  offset_ += n;
}

}  // namespace tessera
