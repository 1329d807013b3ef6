// `tessera data import --from idx`: MNIST-style IDX files (gzip'd or not) to the HDF5 layout.
// Images become float32 features scaled to [0, 1] (pixel / 255) unless raw is set, labels
// uint8. Streams in blocks; writes a temp file renamed into place only when complete.
#pragma once

#include <string>

namespace tessera {

struct IdxImportOptions {
  std::string images, labels, out;
  bool raw = false;           // keep pixels as uint8 0..255
  int64_t chunk_rows = 1024;
};

// Returns the number of rows written. DataError names the file and byte offset of bad input.
int64_t import_idx(const IdxImportOptions& opt);

}  // namespace tessera
