// `tessera data import --from csv|libsvm|npy`: text tables and NumPy arrays to the HDF5 layout
// of DESIGN §4 (X float32, y float64 or the array's integer type). Every importer streams (a
// block of rows in memory at a time), reads gzip'd input as well as plain, names the line (or
// byte offset) and what was expected on malformed input, and writes a temp file renamed over
// the output only when complete.
#pragma once

#include <cstdint>
#include <string>

namespace tessera {

struct CsvImportOptions {
  std::string input, out;
  bool header = false;     // first line names the columns
  std::string label;       // label column: a header name or a 0-based index; "" = last column
  char delimiter = ',';
  int64_t chunk_rows = 1024;
};

struct LibsvmImportOptions {
  std::string input, out;
  int64_t features = 0;    // D: indices run 1..D
  int64_t chunk_rows = 1024;
};

struct NpyImportOptions {
  std::string x, y, out;   // X: 2-D, y: 1-D or 2-D, same rows; C order, little-endian
  int64_t chunk_rows = 1024;
};

// Each returns the number of rows written. DataError names the input and the line (text) or
// byte offset (npy) of bad input; ConfigError for bad options.
int64_t import_csv(const CsvImportOptions& opt);
int64_t import_libsvm(const LibsvmImportOptions& opt);
int64_t import_npy(const NpyImportOptions& opt);

}  // namespace tessera
