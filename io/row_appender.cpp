// RowAppender: unlimited first dimension, H5Dset_extent before each block, then one
// hyperslab write per dataset (h5::write_rows).
#include "io/row_appender.h"

#include "core/error.h"

namespace tessera {

namespace {

h5::Handle create_growing(hid_t file, const char* name, hid_t type, int64_t cols, bool two_d, int64_t chunk_rows,
                          const std::string& what) {
  const hsize_t dims[2] = {0, static_cast<hsize_t>(cols)};
  const hsize_t maxdims[2] = {H5S_UNLIMITED, static_cast<hsize_t>(cols)};
  const hsize_t chunk[2] = {static_cast<hsize_t>(chunk_rows), static_cast<hsize_t>(cols)};
  h5::Handle space(H5Screate_simple(two_d ? 2 : 1, dims, maxdims));
  h5::Handle dcpl(H5Pcreate(H5P_DATASET_CREATE));
  H5Pset_obj_track_times(dcpl, 0);
  H5Pset_chunk(dcpl, two_d ? 2 : 1, chunk);
  h5::Handle d(H5Dcreate2(file, name, type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT));
  if (!d.valid()) throw Error("cannot create dataset '" + std::string(name) + "' in " + what);
  return d;
}

}  // namespace

RowAppender::RowAppender(hid_t file, const std::string& what, int64_t features, int64_t label_columns,
                         hid_t y_type, int64_t chunk_rows)
    : what_(what), features_(features), label_columns_(label_columns) {
  x_ = create_growing(file, "X", H5T_IEEE_F32LE, features, true, chunk_rows, what);
  y_ = create_growing(file, "y", y_type, label_columns, label_columns > 1, chunk_rows, what);
}

void RowAppender::append(const float* x, const double* y, int64_t n) {
  if (n == 0) return;
  const hsize_t xd[2] = {static_cast<hsize_t>(rows_ + n), static_cast<hsize_t>(features_)};
  const hsize_t yd[2] = {static_cast<hsize_t>(rows_ + n), static_cast<hsize_t>(label_columns_)};
  if (H5Dset_extent(x_, xd) < 0 || H5Dset_extent(y_, yd) < 0) throw Error("cannot grow the datasets of " + what_);
  h5::write_rows(x_, rows_, n, features_, true, H5T_NATIVE_FLOAT, x, what_);
  h5::write_rows(y_, rows_, n, label_columns_, label_columns_ > 1, H5T_NATIVE_DOUBLE, y, what_);
  rows_ += n;
}

}  // namespace tessera
