// The training reader (Hdf5Source::next over one epoch: data order, sorted row runs, pread,
// conversion, validation, batch order, read-ahead thread) against a plain HDF5 hyperslab read
// of the same file (H5Dread of consecutive 1024-row slabs of X and y), one process, warm page
// cache (arg cold = 0) and cold (1: posix_fadvise(DONTNEED) on the file before each pass).
// The file is written once with `data synth` into TESSERA_BENCH_DIR (default /tmp), of
// TESSERA_BENCH_MB MiB of X (default 512), 784 features. Before timing, the reader's first
// batch is checked against the plain read of the same rows.
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <hdf5.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "core/communicator.h"
#include "io/hdf5_source.h"
#include "io/synth.h"

namespace {

constexpr int64_t kFeatures = 784, kBatch = 1024;

const std::string& bench_file() {
  static const std::string path = [] {
    const char* dir = std::getenv("TESSERA_BENCH_DIR");
    const char* mb = std::getenv("TESSERA_BENCH_MB");
    const int64_t mib = mb != nullptr ? std::atoll(mb) : 512;
    const std::string p = std::string(dir != nullptr ? dir : "/tmp") + "/tessera-reader-bench-" + std::to_string(mib) + ".h5";
    if (!std::filesystem::exists(p)) {
      tessera::SynthOptions o;
      o.out = p;
      o.rows = (mib << 20) / (4 * kFeatures);
      o.features = kFeatures;
      o.classes = 10;
      tessera::LocalCommunicator comm;
      tessera::synth_dataset(o, comm);
    }
    return p;
  }();
  return path;
}

void drop_cache(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) std::abort();
  ::fdatasync(fd);
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  ::close(fd);
}

// Reads rows [begin, end) with plain hyperslabs of kBatch rows; returns rows read.
int64_t plain_read(const std::string& path, int64_t begin, int64_t end, std::vector<float>& x, std::vector<double>& y) {
  const hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  const hid_t dx = H5Dopen2(f, "X", H5P_DEFAULT), dy = H5Dopen2(f, "y", H5P_DEFAULT);
  const hid_t sx = H5Dget_space(dx), sy = H5Dget_space(dy);
  for (int64_t r = begin; r < end; r += kBatch) {
    const hsize_t n = static_cast<hsize_t>(std::min(kBatch, end - r));
    hsize_t start[2] = {static_cast<hsize_t>(r), 0}, count[2] = {n, kFeatures};
    H5Sselect_hyperslab(sx, H5S_SELECT_SET, start, nullptr, count, nullptr);
    H5Sselect_hyperslab(sy, H5S_SELECT_SET, start, nullptr, count, nullptr);
    const hid_t mx = H5Screate_simple(2, count, nullptr), my = H5Screate_simple(1, count, nullptr);
    if (H5Dread(dx, H5T_NATIVE_FLOAT, mx, sx, H5P_DEFAULT, x.data()) < 0 ||
        H5Dread(dy, H5T_NATIVE_DOUBLE, my, sy, H5P_DEFAULT, y.data()) < 0) {
      std::abort();
    }
    H5Sclose(mx);
    H5Sclose(my);
  }
  H5Sclose(sx);
  H5Sclose(sy);
  H5Dclose(dx);
  H5Dclose(dy);
  H5Fclose(f);
  return end - begin;
}

int64_t file_rows() {
  auto ds = std::make_shared<tessera::Hdf5Dataset>(std::vector<std::string>{bench_file()}, "X", "y");
  return ds->rows();
}

void BM_PlainHyperslab(benchmark::State& state) {
  const std::string& path = bench_file();
  const int64_t rows = file_rows() / kBatch * kBatch;  // the rows one reader epoch covers
  std::vector<float> x(kBatch * kFeatures);
  std::vector<double> y(kBatch);
  for (auto _ : state) {
    if (state.range(0) != 0) {
      state.PauseTiming();
      drop_cache(path);
      state.ResumeTiming();
    }
    benchmark::DoNotOptimize(plain_read(path, 0, rows, x, y));
  }
  state.SetBytesProcessed(state.iterations() * rows * (kFeatures * 4 + 8));
}

// arg 0: cold; arg 1: shuffle (0 = file order, 1 = the training order).
void BM_Reader(benchmark::State& state) {
  const std::string& path = bench_file();
  const int64_t rows = file_rows();
  tessera::SourceOptions o;
  o.classes = 10;
  o.global_batch = kBatch;
  o.shuffle = state.range(1) != 0;
  {  // validate once: the reader's first batch equals a plain read of the same rows
    auto ds = std::make_shared<tessera::Hdf5Dataset>(std::vector<std::string>{path}, "X", "y");
    tessera::Hdf5Source src(ds, o);
    const std::vector<int64_t> want = src.step_rows(0, 0);
    const tessera::Batch b = src.next(0, 0);
    std::vector<float> x(kFeatures);
    std::vector<double> y(1);
    for (size_t i = 0; i < want.size(); i += 97) {
      plain_read(path, want[i], want[i] + 1, x, y);
      if (std::memcmp(x.data(), b.x + i * kFeatures, 4 * kFeatures) != 0 || b.labels[i] != static_cast<int32_t>(y[0])) {
        std::fprintf(stderr, "reader_bench: reader row %zu differs from the plain read\n", i);
        std::abort();
      }
    }
  }
  // One source for the whole run, as in training: its ring is allocated and touched once.
  // Each pass is one epoch (a new order when shuffled); the read-ahead of the next epoch's
  // first steps overlaps the cache drop between passes.
  auto ds = std::make_shared<tessera::Hdf5Dataset>(std::vector<std::string>{path}, "X", "y");
  tessera::Hdf5Source src(ds, o);
  int64_t epoch = 0;
  for (auto _ : state) {
    if (state.range(0) != 0) {
      state.PauseTiming();
      drop_cache(path);
      state.ResumeTiming();
    }
    for (int64_t s = 0; s < rows / kBatch; ++s) benchmark::DoNotOptimize(src.next(epoch, s).x);
    ++epoch;
  }
  state.SetBytesProcessed(state.iterations() * (rows / kBatch * kBatch) * (kFeatures * 4 + 8));
}

BENCHMARK(BM_PlainHyperslab)->ArgName("cold")->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_Reader)->ArgNames({"cold", "shuffle"})->Args({0, 0})->Args({0, 1})->Args({1, 0})->Args({1, 1})
    ->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
