// Tiny HDF5 files for io tests, written with the raw HDF5 C API (independent of io/h5.h, so
// the files are what an outside tool such as h5py would produce).
#include "tests/io/test_files.h"

#include <stdlib.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace tessera::testing {

TempDir::TempDir() {
  char tmpl[] = "/tmp/tessera-io-test-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

H5Writer::H5Writer(const std::string& path) {
  file_ = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (file_ < 0) throw std::runtime_error("cannot create " + path);
}

H5Writer::~H5Writer() { H5Fclose(file_); }

namespace {
template <class T>
hid_t mem_type();
template <>
hid_t mem_type<float>() { return H5T_NATIVE_FLOAT; }
template <>
hid_t mem_type<double>() { return H5T_NATIVE_DOUBLE; }
template <>
hid_t mem_type<int32_t>() { return H5T_NATIVE_INT32; }
template <>
hid_t mem_type<int64_t>() { return H5T_NATIVE_INT64; }
template <>
hid_t mem_type<uint8_t>() { return H5T_NATIVE_UINT8; }
}  // namespace

template <class T>
void H5Writer::write(const std::string& name, const std::vector<hsize_t>& dims,
                     const std::vector<T>& data, hid_t type, hsize_t chunk_rows) {
  hsize_t count = 1;
  for (hsize_t d : dims) count *= d;
  if (count != data.size()) throw std::runtime_error("write " + name + ": size mismatch");
  const hid_t space = H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr);
  const hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
  if (chunk_rows > 0) {
    std::vector<hsize_t> chunk = dims;
    chunk[0] = std::min(chunk_rows, dims[0]);
    H5Pset_chunk(dcpl, static_cast<int>(chunk.size()), chunk.data());
  }
  const hid_t d = H5Dcreate2(file_, name.c_str(), type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
  if (d < 0) throw std::runtime_error("cannot create dataset " + name);
  if (count > 0 && H5Dwrite(d, mem_type<T>(), H5S_ALL, H5S_ALL, H5P_DEFAULT, data.data()) < 0) {
    throw std::runtime_error("cannot write dataset " + name);
  }
  H5Dclose(d);
  H5Pclose(dcpl);
  H5Sclose(space);
}

template void H5Writer::write<float>(const std::string&, const std::vector<hsize_t>&,
                                     const std::vector<float>&, hid_t, hsize_t);
template void H5Writer::write<double>(const std::string&, const std::vector<hsize_t>&,
                                      const std::vector<double>&, hid_t, hsize_t);
template void H5Writer::write<int32_t>(const std::string&, const std::vector<hsize_t>&,
                                       const std::vector<int32_t>&, hid_t, hsize_t);
template void H5Writer::write<int64_t>(const std::string&, const std::vector<hsize_t>&,
                                       const std::vector<int64_t>&, hid_t, hsize_t);
template void H5Writer::write<uint8_t>(const std::string&, const std::vector<hsize_t>&,
                                       const std::vector<uint8_t>&, hid_t, hsize_t);

void H5Writer::string_attr(const std::string& name, const std::string& value) {
  const hid_t type = H5Tcopy(H5T_C_S1);
  H5Tset_size(type, value.empty() ? 1 : value.size());
  const hid_t space = H5Screate(H5S_SCALAR);
  const hid_t a = H5Acreate2(file_, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT);
  H5Awrite(a, type, value.c_str());
  H5Aclose(a);
  H5Sclose(space);
  H5Tclose(type);
}

hid_t file_type(Dtype t) {
  switch (t) {
    case Dtype::kFloat32: return H5T_IEEE_F32LE;
    case Dtype::kFloat64: return H5T_IEEE_F64LE;
    case Dtype::kInt32: return H5T_STD_I32LE;
    case Dtype::kInt64: return H5T_STD_I64LE;
    case Dtype::kUInt8: return H5T_STD_U8LE;
  }
  return H5T_IEEE_F32LE;
}

void write_table(const std::string& path, const TableSpec& s) {
  H5Writer w(path);
  const hsize_t rows = static_cast<hsize_t>(s.rows), f = static_cast<hsize_t>(s.features);
  // Values are written from double memory; HDF5 converts to the stored type.
  std::vector<double> x(rows * f);
  for (int64_t i = 0; i < s.rows; ++i) {
    for (int64_t j = 0; j < s.features; ++j) x[i * s.features + j] = x_value(s.first_row + i, j);
  }
  std::vector<double> y(rows);
  for (int64_t i = 0; i < s.rows; ++i) y[i] = static_cast<double>(label_value(s.first_row + i, s.classes));
  w.write(s.x_name, {rows, f}, x, file_type(s.x), s.chunk_rows);
  w.write(s.y_name, {rows}, y, file_type(s.y), s.chunk_rows);
}

void write_xy(const std::string& path, const std::vector<float>& x, int64_t features,
              const std::vector<double>& y, bool integer_labels) {
  H5Writer w(path);
  const hsize_t rows = static_cast<hsize_t>(y.size());
  w.write("X", {rows, static_cast<hsize_t>(features)}, x, H5T_IEEE_F32LE);
  w.write("y", {rows}, y, integer_labels ? H5T_STD_I64LE : H5T_IEEE_F64LE);
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + path);
}

}  // namespace tessera::testing
