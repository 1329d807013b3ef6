// Helpers for io tests: a per-test temporary directory under /tmp and writers for tiny HDF5
// files with known contents (X[i][j] = i*1000 + j for global row i, y[i] = i % classes).
#pragma once

#include <hdf5.h>

#include <cstdint>
#include <string>
#include <vector>

namespace tessera::testing {

// A fresh directory /tmp/tessera-io-test-XXXXXX, removed with its contents on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// An HDF5 file open for writing (truncated on open, closed on destruction).
class H5Writer {
 public:
  explicit H5Writer(const std::string& path);
  ~H5Writer();
  H5Writer(const H5Writer&) = delete;
  H5Writer& operator=(const H5Writer&) = delete;

  // Writes dataset `name` of shape dims, stored as file_type, from data in the memory type of T
  // (float, double, int32_t, int64_t, uint8_t). chunk_rows > 0 chunks by rows.
  template <class T>
  void write(const std::string& name, const std::vector<hsize_t>& dims, const std::vector<T>& data,
             hid_t file_type, hsize_t chunk_rows = 0);
  void string_attr(const std::string& name, const std::string& value);
  hid_t id() const { return file_; }

 private:
  hid_t file_;
};

enum class Dtype { kFloat32, kFloat64, kInt32, kInt64, kUInt8 };
hid_t file_type(Dtype t);

inline float x_value(int64_t global_row, int64_t col) {
  return static_cast<float>(global_row * 1000 + col);
}
inline int64_t label_value(int64_t global_row, int64_t classes) { return global_row % classes; }

struct TableSpec {
  int64_t rows = 10;
  int64_t features = 4;
  int64_t first_row = 0;  // global index of row 0 (for concatenated files)
  Dtype x = Dtype::kFloat32;
  Dtype y = Dtype::kInt32;
  int64_t classes = 5;
  hsize_t chunk_rows = 0;  // 0 = contiguous
  std::string x_name = "X", y_name = "y";
};

// Writes X (rows, features) = x_value(first_row + i, j) and y (rows) = label_value(...).
void write_table(const std::string& path, const TableSpec& spec);

// Writes X as given (rows x features, float32) and y as given (float64 unless integer_labels).
void write_xy(const std::string& path, const std::vector<float>& x, int64_t features,
              const std::vector<double>& y, bool integer_labels);

std::string read_bytes(const std::string& path);
void write_bytes(const std::string& path, const std::string& bytes);

}  // namespace tessera::testing
