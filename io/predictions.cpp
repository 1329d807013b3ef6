// write_predictions: rank 0 creates the datasets, then ranks append their row ranges in rank
// order (a plain HDF5 file takes one writer at a time).
#include "io/predictions.h"

#include <algorithm>

#include "core/error.h"
#include "io/files.h"
#include "io/h5.h"

namespace tessera {

void write_predictions(const std::string& path, Task task, int64_t total_rows, const PredictionPart& mine,
                       Communicator& comm) {
  const int64_t k = mine.outputs;
  const char* score_name = task == Task::kClassification ? "logits" : task == Task::kBinary ? "logit" : "prediction";
  const bool two_d = task != Task::kBinary;
  auto create = [&](const std::string& tmp) {
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
  };
  auto write_part = [&](const std::string& tmp) {
    if (mine.rows == 0) return;
    h5::Handle f(H5Fopen(tmp.c_str(), H5F_ACC_RDWR, H5P_DEFAULT));
    if (!f.valid()) throw Error("cannot reopen " + tmp);
    h5::Handle d(H5Dopen2(f, score_name, H5P_DEFAULT));
    h5::write_rows(d, mine.first_row, mine.rows, k, two_d, H5T_NATIVE_FLOAT, mine.scores.data(), tmp);
    if (task != Task::kRegression) {
      std::vector<int64_t> cls(static_cast<size_t>(mine.rows));
      for (int64_t i = 0; i < mine.rows; ++i) {
        const float* sc = mine.scores.data() + i * k;
        cls[i] = task == Task::kBinary ? (sc[0] > 0 ? 1 : 0) : std::max_element(sc, sc + k) - sc;
      }
      h5::Handle c(H5Dopen2(f, "class", H5P_DEFAULT));
      h5::write_rows(c, mine.first_row, mine.rows, 1, false, H5T_NATIVE_INT64, cls.data(), tmp);
    }
  };
  write_in_rank_order(path, comm, create, write_part);
}

}  // namespace tessera
