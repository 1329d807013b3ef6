// An input file read front to back through zlib, which reads gzip'd and plain files alike (the
// importers accept both). Errors name the file and the byte offset.
#pragma once

#include <zlib.h>

#include <cstdint>
#include <memory>
#include <string>

namespace tessera {

class GzFile {
 public:
  // DataError if the file cannot be opened.
  explicit GzFile(const std::string& path);
  // Exactly n bytes, or DataError naming the offset where the file ended while reading `what`.
  void read_exact(void* out, int64_t n, const char* what);
  gzFile get() const { return f_.get(); }
  const std::string& path() const { return path_; }

 private:
  struct Close {
    void operator()(gzFile_s* f) const { gzclose(f); }
  };
  std::string path_;
  std::unique_ptr<gzFile_s, Close> f_;
  int64_t offset_ = 0;
};

}  // namespace tessera
