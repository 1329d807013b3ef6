// write_predictions: rank 0 creates the datasets, then ranks append their row ranges in rank
// order (a plain HDF5 file takes one writer at a time).
#include "io/predictions.h"

#include <algorithm>
#include <filesystem>
#include <cstdio>

#include "core/error.h"
#include "io/files.h"
#include "io/h5.h"

namespace tessera {

namespace {

void write_rows(hid_t d, int64_t first, int64_t rows, int64_t cols, bool two_d, hid_t mem_type, const void* data) {
  h5::Handle fs(H5Dget_space(d));
  hsize_t start[2] = {static_cast<hsize_t>(first), 0}, count[2] = {static_cast<hsize_t>(rows), static_cast<hsize_t>(cols)};
  H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, nullptr, count, nullptr);
  h5::Handle ms(H5Screate_simple(two_d ? 2 : 1, count, nullptr));
  if (H5Dwrite(d, mem_type, ms, fs, H5P_DEFAULT, data) < 0) throw Error("prediction write failed (disk full?)");
}

}  // namespace

void write_predictions(const std::string& path, Task task, int64_t total_rows, const PredictionPart& mine,
                       Communicator& comm) {
  const std::string tmp = path + ".tmp-predict";
  const int64_t k = mine.outputs;
  const char* score_name = task == Task::kClassification ? "logits" : task == Task::kBinary ? "logit" : "prediction";
  const bool two_d = task != Task::kBinary;
  if (comm.rank() == 0) {
    h5::Handle f = h5::create(tmp);
    const hsize_t dims[2] = {static_cast<hsize_t>(total_rows), static_cast<hsize_t>(k)};
    h5::Handle s(H5Screate_simple(two_d ? 2 : 1, dims, nullptr));
    h5::Handle p = h5::dataset_plist(two_d ? std::vector<int64_t>{total_rows, k} : std::vector<int64_t>{total_rows}, 0);
    h5::Handle d(H5Dcreate2(f, score_name, H5T_IEEE_F32LE, s, H5P_DEFAULT, p, H5P_DEFAULT));
    if (!d.valid()) throw Error("cannot create " + tmp);
    if (task != Task::kRegression) {
      h5::Handle cs(H5Screate_simple(1, dims, nullptr));
      h5::Handle c(H5Dcreate2(f, "class", H5T_STD_I64LE, cs, H5P_DEFAULT, p, H5P_DEFAULT));
      if (!c.valid()) throw Error("cannot create " + tmp);
    }
  }
  comm.barrier();
  for (int r = 0; r < comm.size(); ++r) {
    if (r == comm.rank() && mine.rows > 0) {
      h5::Handle f(H5Fopen(tmp.c_str(), H5F_ACC_RDWR, H5P_DEFAULT));
      if (!f.valid()) throw Error("cannot reopen " + tmp);
      h5::Handle d(H5Dopen2(f, score_name, H5P_DEFAULT));
      write_rows(d, mine.first_row, mine.rows, k, two_d, H5T_NATIVE_FLOAT, mine.scores.data());
      if (task != Task::kRegression) {
        std::vector<int64_t> cls(static_cast<size_t>(mine.rows));
        for (int64_t i = 0; i < mine.rows; ++i) {
          const float* s = mine.scores.data() + i * k;
          cls[i] = task == Task::kBinary ? (s[0] > 0 ? 1 : 0) : std::max_element(s, s + k) - s;
        }
        h5::Handle c(H5Dopen2(f, "class", H5P_DEFAULT));
        write_rows(c, mine.first_row, mine.rows, 1, false, H5T_NATIVE_INT64, cls.data());
      }
    }
    comm.barrier();
  }
  if (comm.rank() == 0) {
    fsync_path(tmp);
    if (std::rename(tmp.c_str(), path.c_str()) != 0) throw Error("cannot rename " + tmp + " to " + path);
    fsync_path(std::filesystem::path(path).parent_path().empty() ? "." : std::filesystem::path(path).parent_path().string());
  }
  comm.barrier();
}

}  // namespace tessera
