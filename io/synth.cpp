// Synthetic data: X ~ N(0, 1); teacher h = tanh(W1·x + b1), logits = W2·h (scaled to be
// confidently separable); label = argmax (classification/binary), or y = W2·h + 0.1·noise
// (regression, one target).
#include "io/synth.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstring>
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

namespace {

void pwrite_all(int fd, const void* data, size_t bytes, haddr_t at, const std::string& path) {
  const char* p = static_cast<const char*>(data);
  size_t done = 0;
  while (done < bytes) {
    const ssize_t n = ::pwrite(fd, p + done, bytes - done, static_cast<off_t>(at + done));
    if (n <= 0) throw Error("cannot write " + path + " (disk full?): " + std::strerror(errno));
    done += static_cast<size_t>(n);
  }
}

// File offsets of chunks [begin, end) of a chunked dataset allocated at creation.
std::vector<haddr_t> chunk_addresses(hid_t d, int64_t begin, int64_t end, int64_t chunk, const std::string& path) {
  std::vector<haddr_t> out;
  for (int64_t c = begin; c < end; ++c) {
    hsize_t offset[2] = {static_cast<hsize_t>(c * chunk), 0};
    unsigned mask = 0;
    haddr_t addr = HADDR_UNDEF;
    hsize_t size = 0;
    if (H5Dget_chunk_info_by_coord(d, offset, &mask, &addr, &size) < 0 || addr == HADDR_UNDEF) {
      throw Error(path + ": chunk " + std::to_string(c) + " was not allocated at creation");
    }
    out.push_back(addr);
  }
  return out;
}

struct SynthFile {
  std::string path;
  int64_t rows = 0, first_row = 0;  // file row i is row first_row + i of the seed's stream
};

}  // namespace

std::vector<std::string> synth_file_names(const std::string& out, int64_t files) {
  if (files == 1) return {out};
  const size_t dot = out.rfind('.'), slash = out.rfind('/');
  const bool ext = dot != std::string::npos && (slash == std::string::npos || dot > slash);
  const std::string stem = ext ? out.substr(0, dot) : out, suffix = ext ? out.substr(dot) : "";
  std::vector<std::string> names;
  char part[48];
  for (int64_t k = 0; k < files; ++k) {
    std::snprintf(part, sizeof part, "-%05lld-of-%05lld", static_cast<long long>(k), static_cast<long long>(files));
    names.push_back(stem + part + suffix);
  }
  return names;
}

void synth_dataset(const SynthOptions& opt, Communicator& comm) {
  static_assert(std::endian::native == std::endian::little, "synth writes little-endian bytes directly");
  if (opt.rows <= 0) throw ConfigError("--rows must be positive");
  if (opt.features <= 0) throw ConfigError("--features must be positive");
  if (opt.files < 1 || opt.files > opt.rows) throw ConfigError("--files must be between 1 and --rows");
  if (opt.task == Task::kClassification && opt.classes < 2) throw ConfigError("--classes must be 2 or more");
  const int64_t chunk = opt.chunk_rows > 0 ? opt.chunk_rows
                                           : std::max<int64_t>(1, (int64_t{1} << 20) / (4 * opt.features));
  const bool regression = opt.task == Task::kRegression;
  const int64_t k = regression ? 1 : (opt.task == Task::kBinary ? 2 : opt.classes);
  const int64_t ybytes = regression ? 4 : 8;  // float32 target or int64 label
  const Teacher teacher(opt.seed, opt.features, k);
  const std::vector<std::string> names = synth_file_names(opt.out, opt.files);
  for (int64_t f = 0; f < opt.files; ++f) {
    const Range part = partition(opt.rows, static_cast<int>(f), static_cast<int>(opt.files));
    const SynthFile file{names[static_cast<size_t>(f)], part.size(), opt.first_row + part.begin};
    auto create = [&](const std::string& tmp) {
      h5::Handle h = h5::create(tmp);
      const std::vector<hsize_t> xd{static_cast<hsize_t>(file.rows), static_cast<hsize_t>(opt.features)};
      h5::Handle xs(H5Screate_simple(2, xd.data(), nullptr));
      h5::Handle xp = h5::dataset_plist({file.rows, opt.features}, chunk);
      h5::Handle ys(H5Screate_simple(1, xd.data(), nullptr));
      h5::Handle yp = h5::dataset_plist({file.rows}, chunk);
      // Every chunk gets its file offset now, and no fill value is written: the ranks then write
      // their chunks' bytes in parallel, outside HDF5.
      for (hid_t p : {xp.get(), yp.get()}) {
        H5Pset_alloc_time(p, H5D_ALLOC_TIME_EARLY);
        H5Pset_fill_time(p, H5D_FILL_TIME_NEVER);
      }
      h5::Handle x(H5Dcreate2(h, "X", H5T_IEEE_F32LE, xs, H5P_DEFAULT, xp, H5P_DEFAULT));
      h5::Handle y(H5Dcreate2(h, "y", regression ? H5T_IEEE_F32LE : H5T_STD_I64LE, ys, H5P_DEFAULT, yp, H5P_DEFAULT));
      if (!x.valid() || !y.valid()) throw Error("cannot create datasets in " + tmp + " (disk full?)");
      h5::write_string_attr(h, "generator", "tessera data synth");
    };
    auto write_part = [&](const std::string& tmp) {
      const Range mine = partition((file.rows + chunk - 1) / chunk, comm.rank(), comm.size());
      if (mine.size() == 0) return;
      std::vector<haddr_t> xa, ya;
      {
        h5::Handle h = h5::open_read(tmp);
        xa = chunk_addresses(h5::open_dataset(h, tmp, "X"), mine.begin, mine.end, chunk, tmp);
        ya = chunk_addresses(h5::open_dataset(h, tmp, "y"), mine.begin, mine.end, chunk, tmp);
      }
      const int fd = ::open(tmp.c_str(), O_WRONLY | O_CLOEXEC);
      if (fd < 0) throw Error("cannot open " + tmp + " for writing: " + std::strerror(errno));
      std::vector<float> xb(static_cast<size_t>(chunk * opt.features));
      std::vector<unsigned char> yb(static_cast<size_t>(chunk * ybytes));
      std::vector<double> logit(static_cast<size_t>(k));
      try {
        for (int64_t c = mine.begin; c < mine.end; ++c) {
          const int64_t b = c * chunk, n = std::min(chunk, file.rows - b);
          for (int64_t i = 0; i < n; ++i) {
            Rng rng(opt.seed, hash3(0x5a7d, static_cast<uint64_t>(file.first_row + b + i), 0));
            float* xi = xb.data() + i * opt.features;
            for (int64_t j = 0; j < opt.features; ++j) xi[j] = static_cast<float>(rng.normal());
            teacher.logits(xi, logit.data());
            if (regression) {
              const float t = static_cast<float>(logit[0] + 0.1 * rng.normal());
              std::memcpy(yb.data() + i * ybytes, &t, 4);
            } else {
              const int64_t label = std::max_element(logit.begin(), logit.end()) - logit.begin();
              std::memcpy(yb.data() + i * ybytes, &label, 8);
            }
          }
          const size_t at = static_cast<size_t>(c - mine.begin);
          pwrite_all(fd, xb.data(), static_cast<size_t>(n * opt.features * 4), xa[at], tmp);
          pwrite_all(fd, yb.data(), static_cast<size_t>(n * ybytes), ya[at], tmp);
        }
        // Each rank makes its own bytes durable (other nodes' writes on a shared file system).
        if (::fsync(fd) != 0) throw Error("fsync failed for " + tmp + ": " + std::strerror(errno));
      } catch (...) {
        ::close(fd);
        throw;
      }
      if (::close(fd) != 0) throw Error("cannot write " + tmp + ": " + std::strerror(errno));
    };
    write_in_parallel(file.path, comm, create, write_part);
  }
}

}  // namespace tessera
