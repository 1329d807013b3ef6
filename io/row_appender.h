// RowAppender: writes X (rows x features, float32) and y of a new HDF5 file block by block,
// growing both datasets as rows arrive, for importers that learn the row count only at the end
// of a stream. Chunked by whole rows, like every file tessera writes.
#pragma once

#include <hdf5.h>

#include <cstdint>
#include <string>

#include "io/h5.h"

namespace tessera {

class RowAppender {
 public:
  // y_type: the stored label type (e.g. H5T_STD_I64LE, H5T_IEEE_F64LE); label_columns 1 makes
  // y 1-D. what names the file in errors.
  RowAppender(hid_t file, const std::string& what, int64_t features, int64_t label_columns, hid_t y_type,
              int64_t chunk_rows);
  // Appends n rows: x (n, features), y (n, label_columns) as double.
  void append(const float* x, const double* y, int64_t n);
  int64_t rows() const { return rows_; }

 private:
  std::string what_;
  int64_t features_, label_columns_, rows_ = 0;
  h5::Handle x_, y_;
};

}  // namespace tessera
