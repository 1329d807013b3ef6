// Synthetic data: X ~ N(0, 1); teacher h = tanh(W1·x + b1), logits = W2·h (scaled to be
// confidently separable); label = argmax (classification/binary), or y = W2·h + 0.1·noise
// (regression, one target).
#include "io/synth.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/data_order.h"
#include "core/error.h"
#include "core/rng.h"
#include "io/files.h"
#include "io/h5.h"

namespace tessera {

namespace {

constexpr int64_t kTeacherHidden = 32;

struct Teacher {
  int64_t d, k;
  std::vector<double> w1, b1, w2;
  Teacher(uint64_t seed, int64_t d_, int64_t k_) : d(d_), k(k_) {
    Rng rng(seed, 0x7eac4e5);
    w1.resize(static_cast<size_t>(kTeacherHidden * d));
    for (double& w : w1) w = rng.normal() / std::sqrt(static_cast<double>(d));
    b1.resize(kTeacherHidden);
    for (double& b : b1) b = 0.1 * rng.normal();
    w2.resize(static_cast<size_t>(k * kTeacherHidden));
    for (double& w : w2) w = 3.0 * rng.normal() / std::sqrt(static_cast<double>(kTeacherHidden));
  }
  void logits(const float* x, double* out) const {
    double h[kTeacherHidden];
    for (int64_t j = 0; j < kTeacherHidden; ++j) {
      double s = b1[j];
      for (int64_t i = 0; i < d; ++i) s += w1[j * d + i] * x[i];
      h[j] = std::tanh(s);
    }
    for (int64_t c = 0; c < k; ++c) {
      double s = 0;
      for (int64_t j = 0; j < kTeacherHidden; ++j) s += w2[c * kTeacherHidden + j] * h[j];
      out[c] = s;
    }
  }
};

}  // namespace

void synth_dataset(const SynthOptions& opt, Communicator& comm) {
  if (opt.rows <= 0) throw ConfigError("--rows must be positive");
  if (opt.features <= 0) throw ConfigError("--features must be positive");
  if (opt.task == Task::kClassification && opt.classes < 2) throw ConfigError("--classes must be 2 or more");
  const int64_t chunk = opt.chunk_rows > 0 ? opt.chunk_rows
                                           : std::max<int64_t>(1, (int64_t{1} << 20) / (4 * opt.features));
  const bool regression = opt.task == Task::kRegression;
  const int64_t k = regression ? 1 : (opt.task == Task::kBinary ? 2 : opt.classes);
  const int64_t chunks = (opt.rows + chunk - 1) / chunk;
  const Range mine = partition(chunks, comm.rank(), comm.size());
  const int64_t begin = mine.begin * chunk, end = std::min(opt.rows, mine.end * chunk);
  const Teacher teacher(opt.seed, opt.features, k);
  auto create = [&](const std::string& tmp) {
    h5::Handle f = h5::create(tmp);
    const std::vector<hsize_t> xd{static_cast<hsize_t>(opt.rows), static_cast<hsize_t>(opt.features)};
    h5::Handle xs(H5Screate_simple(2, xd.data(), nullptr));
    h5::Handle xp = h5::dataset_plist({opt.rows, opt.features}, chunk);
    h5::Handle x(H5Dcreate2(f, "X", H5T_IEEE_F32LE, xs, H5P_DEFAULT, xp, H5P_DEFAULT));
    h5::Handle ys(H5Screate_simple(1, xd.data(), nullptr));
    h5::Handle yp = h5::dataset_plist({opt.rows}, chunk);
    h5::Handle y(H5Dcreate2(f, "y", regression ? H5T_IEEE_F32LE : H5T_STD_I64LE, ys, H5P_DEFAULT, yp, H5P_DEFAULT));
    if (!x.valid() || !y.valid()) throw Error("cannot create datasets in " + tmp);
    h5::write_string_attr(f, "generator", "tessera data synth");
  };
  auto write_part = [&](const std::string& tmp) {
    if (end <= begin) return;
    h5::Handle f(H5Fopen(tmp.c_str(), H5F_ACC_RDWR, H5P_DEFAULT));
    if (!f.valid()) throw Error("cannot reopen " + tmp + " for writing");
    h5::Handle x(H5Dopen2(f, "X", H5P_DEFAULT)), y(H5Dopen2(f, "y", H5P_DEFAULT));
    const int64_t block = std::max<int64_t>(chunk, (int64_t{16} << 20) / (4 * opt.features) / chunk * chunk);
    std::vector<float> xb(static_cast<size_t>(block * opt.features));
    std::vector<double> yb(static_cast<size_t>(block));
    std::vector<double> logit(static_cast<size_t>(k));
    for (int64_t b = begin; b < end; b += block) {
      const int64_t n = std::min(block, end - b);
      for (int64_t i = 0; i < n; ++i) {
        Rng rng(opt.seed, hash3(0x5a7d, static_cast<uint64_t>(opt.first_row + b + i), 0));
        float* xi = xb.data() + i * opt.features;
        for (int64_t j = 0; j < opt.features; ++j) xi[j] = static_cast<float>(rng.normal());
        teacher.logits(xi, logit.data());
        if (regression) {
          yb[i] = logit[0] + 0.1 * rng.normal();
        } else {
          yb[i] = static_cast<double>(std::max_element(logit.begin(), logit.end()) - logit.begin());
        }
      }
      h5::write_rows(x, b, n, opt.features, true, H5T_NATIVE_FLOAT, xb.data(), tmp);
      h5::write_rows(y, b, n, 1, false, H5T_NATIVE_DOUBLE, yb.data(), tmp);
    }
  };
  // Each rank generates its own chunks; the file's bytes of data do not depend on N.
  write_in_rank_order(opt.out, comm, create, write_part);
}

}  // namespace tessera
