// The direct row reader (io/raw_rows.h) must return exactly what HDF5 returns, and layouts it
// cannot read directly (compression, chunks that split rows, big-endian types, unallocated
// chunks) must fall back to HDF5 and still be right.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <hdf5.h>
#include <unistd.h>

#include <vector>

#include "io/hdf5_dataset.h"
#include "io/raw_rows.h"
#include "tests/io/test_files.h"

namespace tessera {
namespace {

using testing::TempDir;

struct Layout {
  const char* name;
  hid_t type;           // file type of X
  hsize_t chunk[2];     // {0,0} = contiguous
  bool deflate;
  bool expect_direct;   // RawRows::usable()
  int64_t mult = 1000;  // X[r][c] = (r * mult + c) % modulus: distinct per row and in range
  int64_t modulus = 1 << 30;
  bool userblock = false;  // chunk addresses are then relative to byte 512
};

double value(const Layout& l, int64_t r, int64_t c) { return static_cast<double>((r * l.mult + c) % l.modulus); }

// Writes X (rows, cols) = value(l, r, c) in the given layout and y (rows) = r % 7 (int64).
void write_layout(const std::string& path, const Layout& l, hsize_t rows, hsize_t cols) {
  hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
  if (l.userblock) H5Pset_userblock(fcpl, 512);
  hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, fcpl, H5P_DEFAULT);
  H5Pclose(fcpl);
  std::vector<double> x(rows * cols);
  std::vector<int64_t> y(rows);
  for (hsize_t r = 0; r < rows; ++r) {
    for (hsize_t c = 0; c < cols; ++c) x[r * cols + c] = value(l, static_cast<int64_t>(r), static_cast<int64_t>(c));
    y[r] = static_cast<int64_t>(r % 7);
  }
  hsize_t dims[2] = {rows, cols};
  hid_t space = H5Screate_simple(2, dims, nullptr);
  hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
  if (l.chunk[0] > 0) H5Pset_chunk(dcpl, 2, l.chunk);
  if (l.deflate) H5Pset_deflate(dcpl, 4);
  hid_t d = H5Dcreate2(f, "X", l.type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
  H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, x.data());
  hid_t yspace = H5Screate_simple(1, dims, nullptr);
  hid_t yd = H5Dcreate2(f, "y", H5T_STD_I64BE, yspace, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  H5Dwrite(yd, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, y.data());
  H5Dclose(yd);
  H5Sclose(yspace);
  H5Dclose(d);
  H5Pclose(dcpl);
  H5Sclose(space);
  H5Fclose(f);
}

class RawLayouts : public ::testing::TestWithParam<Layout> {};

TEST_P(RawLayouts, ScatteredRowsMatchTheirValues) {
  const Layout l = GetParam();
  TempDir dir;
  const std::string path = dir.file("x.h5");
  const hsize_t rows = 300, cols = 6;
  write_layout(path, l, rows, cols);
  {
    hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t d = H5Dopen2(f, "X", H5P_DEFAULT);
    const int fd = ::open(path.c_str(), O_RDONLY);
    RawRows raw(d, path, rows, cols, fd);
    EXPECT_EQ(raw.usable(), l.expect_direct) << l.name;
    ::close(fd);
    H5Dclose(d);
    H5Fclose(f);
  }
  Hdf5Dataset data({path}, "X", "y");
  // Runs that cross chunk boundaries (chunks of 64 rows) and single rows.
  const std::vector<int64_t> want = {0, 1, 2, 3, 62, 63, 64, 65, 127, 128, 200, 250, 251, 299};
  std::vector<float> x(want.size() * cols);
  std::vector<double> y(want.size());
  data.read_rows(want.data(), static_cast<int64_t>(want.size()), x.data(), y.data());
  for (size_t i = 0; i < want.size(); ++i) {
    for (hsize_t c = 0; c < cols; ++c) {
      ASSERT_EQ(x[i * cols + c], static_cast<float>(value(l, want[i], static_cast<int64_t>(c))))
          << l.name << " row " << want[i];
    }
    ASSERT_EQ(y[i], static_cast<double>(want[i] % 7)) << l.name << " big-endian labels, row " << want[i];
  }
  std::vector<float> xr(100 * cols);
  std::vector<double> yr(100);
  data.read_range(150, 250, xr.data(), yr.data());
  for (int64_t r = 0; r < 100; ++r) {
    ASSERT_EQ(xr[r * cols + 5], static_cast<float>(value(l, 150 + r, 5))) << l.name;
  }
}

INSTANTIATE_TEST_SUITE_P(
    AllLayouts, RawLayouts,
    ::testing::Values(Layout{"f32_contiguous", H5T_IEEE_F32LE, {0, 0}, false, true},
                      Layout{"f32_chunked", H5T_IEEE_F32LE, {64, 6}, false, true},
                      Layout{"f64_chunked", H5T_IEEE_F64LE, {64, 6}, false, true},
                      Layout{"u8_chunked", H5T_STD_U8LE, {64, 6}, false, true, 1, 256},
                      Layout{"i16_contiguous", H5T_STD_I16LE, {0, 0}, false, true, 100},
                      Layout{"f32_deflate", H5T_IEEE_F32LE, {64, 6}, true, false},
                      Layout{"f32_split_rows", H5T_IEEE_F32LE, {64, 3}, false, false},
                      Layout{"f32_big_endian", H5T_IEEE_F32BE, {64, 6}, false, false},
                      Layout{"f32_userblock", H5T_IEEE_F32LE, {64, 6}, false, false, 1000, 1 << 30, true}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(RawRows, UnallocatedChunksFallBackToFillValues) {
  TempDir dir;
  const std::string path = dir.file("sparse.h5");
  hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  hsize_t dims[2] = {128, 4}, chunk[2] = {32, 4};
  hid_t space = H5Screate_simple(2, dims, nullptr);
  hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
  H5Pset_chunk(dcpl, 2, chunk);
  hid_t d = H5Dcreate2(f, "X", H5T_IEEE_F32LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
  std::vector<float> first(32 * 4, 5.0f);  // only chunk 0 is written
  hsize_t start[2] = {0, 0}, count[2] = {32, 4};
  H5Sselect_hyperslab(space, H5S_SELECT_SET, start, nullptr, count, nullptr);
  hid_t mem = H5Screate_simple(2, count, nullptr);
  H5Dwrite(d, H5T_NATIVE_FLOAT, mem, space, H5P_DEFAULT, first.data());
  std::vector<int32_t> y(128, 1);
  hid_t yspace = H5Screate_simple(1, dims, nullptr);
  hid_t yd = H5Dcreate2(f, "y", H5T_STD_I32LE, yspace, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  H5Dwrite(yd, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, y.data());
  H5Dclose(yd), H5Sclose(yspace), H5Sclose(mem), H5Dclose(d), H5Pclose(dcpl), H5Sclose(space), H5Fclose(f);

  Hdf5Dataset data({path}, "X", "y");
  const std::vector<int64_t> rows = {3, 40, 100};
  std::vector<float> x(rows.size() * 4);
  std::vector<double> yy(rows.size());
  data.read_rows(rows.data(), 3, x.data(), yy.data());
  EXPECT_EQ(x[0], 5.0f);
  EXPECT_EQ(x[4], 0.0f);   // unallocated chunk: HDF5's fill value
  EXPECT_EQ(x[8], 0.0f);
}

}  // namespace
}  // namespace tessera
