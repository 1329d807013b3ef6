// io/h5.cpp: HDF5 plumbing. Reads always request a native memory type so HDF5 converts any
// stored integer or float type for us.
#include "io/h5.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/error.h"

namespace tessera::h5 {

std::unique_lock<std::recursive_mutex> lock() {
  static std::recursive_mutex m;
  return std::unique_lock<std::recursive_mutex>(m);
}


Handle& Handle::operator=(Handle&& o) noexcept {
  if (this != &o) {
    reset();
    id_ = o.id_;
    o.id_ = H5I_INVALID_HID;
  }
  return *this;
}

void Handle::reset() {
  if (id_ < 0) return;
  switch (H5Iget_type(id_)) {
    case H5I_FILE: H5Fclose(id_); break;
    case H5I_DATASET: H5Dclose(id_); break;
    case H5I_DATASPACE: H5Sclose(id_); break;
    case H5I_DATATYPE: H5Tclose(id_); break;
    case H5I_GROUP: H5Gclose(id_); break;
    case H5I_ATTR: H5Aclose(id_); break;
    case H5I_GENPROP_LST: H5Pclose(id_); break;
    default: break;
  }
  id_ = H5I_INVALID_HID;
}

void quiet_errors() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }

bool is_hdf5(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return false;
  return H5Fis_hdf5(path.c_str()) > 0;
}

Handle open_read(const std::string& path) {
  quiet_errors();
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) {
    throw DataError("cannot open " + path + ": no such file (check the path; relative paths "
                    "inside a config or --set are relative to the config file)");
  }
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    if (err == EMFILE || err == ENFILE) {
      throw DataError("cannot open " + path + ": too many open files (each data file holds two "
                      "descriptors; raise `ulimit -n` or merge small files)");
    }
    throw DataError("cannot open " + path + ": " + std::strerror(err));
  }
  ::close(fd);
  if (!is_hdf5(path)) {
    throw DataError(path + " is not an HDF5 file (convert it with `tessera data import`)");
  }
  Handle f(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
  if (!f.valid()) throw DataError("cannot open HDF5 file " + path + " (damaged or unreadable)");
  return f;
}

Handle create(const std::string& path) {
  quiet_errors();
  Handle fcpl(H5Pcreate(H5P_FILE_CREATE));
  H5Pset_obj_track_times(fcpl, 0);
  Handle f(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, fcpl, H5P_DEFAULT));
  if (!f.valid()) throw Error("cannot create HDF5 file " + path + " (check the directory exists and is writable)");
  return f;
}

bool exists(hid_t loc, const std::string& name) {
  return H5Lexists(loc, name.c_str(), H5P_DEFAULT) > 0;
}

Handle open_dataset(hid_t file, const std::string& file_name, const std::string& name) {
  if (!exists(file, name)) {
    throw DataError(file_name + ": no dataset '" + name + "' (set data.features / data.labels "
                    "to the dataset names; `tessera data inspect " + file_name + "` lists them)");
  }
  Handle d(H5Dopen2(file, name.c_str(), H5P_DEFAULT));
  if (!d.valid()) throw DataError(file_name + ": cannot open dataset '" + name + "'");
  return d;
}

std::vector<int64_t> shape(hid_t dataset) {
  Handle space(H5Dget_space(dataset));
  const int rank = H5Sget_simple_extent_ndims(space);
  std::vector<hsize_t> dims(static_cast<size_t>(std::max(rank, 0)));
  if (rank > 0) H5Sget_simple_extent_dims(space, dims.data(), nullptr);
  return {dims.begin(), dims.end()};
}

std::string dtype_name(hid_t dataset) {
  Handle t(H5Dget_type(dataset));
  const H5T_class_t cls = H5Tget_class(t);
  const size_t bits = H5Tget_size(t) * 8;
  if (cls == H5T_FLOAT) return "float" + std::to_string(bits);
  if (cls == H5T_INTEGER) {
    return std::string(H5Tget_sign(t) == H5T_SGN_NONE ? "uint" : "int") + std::to_string(bits);
  }
  return "other";
}

bool is_integer(hid_t dataset) {
  Handle t(H5Dget_type(dataset));
  return H5Tget_class(t) == H5T_INTEGER;
}

Handle dataset_plist(const std::vector<int64_t>& shape, int64_t chunk_rows) {
  Handle dcpl(H5Pcreate(H5P_DATASET_CREATE));
  H5Pset_obj_track_times(dcpl, 0);
  if (chunk_rows > 0 && !shape.empty() && shape[0] > 0) {
    std::vector<hsize_t> chunk(shape.begin(), shape.end());
    chunk[0] = static_cast<hsize_t>(std::min(chunk_rows, shape[0]));
    H5Pset_chunk(dcpl, static_cast<int>(chunk.size()), chunk.data());
  }
  return dcpl;
}

void write_floats(hid_t file, const std::string& name, const std::vector<int64_t>& shape,
                  const float* data, int64_t chunk_rows) {
  std::vector<hsize_t> dims(shape.begin(), shape.end());
  Handle space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr));
  Handle dcpl = dataset_plist(shape, chunk_rows);
  Handle d(H5Dcreate2(file, name.c_str(), H5T_IEEE_F32LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT));
  if (!d.valid() || H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0) {
    throw Error("cannot write dataset '" + name + "'");
  }
}

void write_rows(hid_t d, int64_t first, int64_t rows, int64_t cols, bool two_d, hid_t mem_type,
                const void* data, const std::string& what) {
  Handle fs(H5Dget_space(d));
  hsize_t start[2] = {static_cast<hsize_t>(first), 0};
  hsize_t count[2] = {static_cast<hsize_t>(rows), static_cast<hsize_t>(cols)};
  H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, nullptr, count, nullptr);
  Handle ms(H5Screate_simple(two_d ? 2 : 1, count, nullptr));
  if (H5Dwrite(d, mem_type, ms, fs, H5P_DEFAULT, data) < 0) {
    throw Error("write to " + what + " failed (disk full?)");
  }
}

std::vector<float> read_floats(hid_t dataset) {
  int64_t n = 1;
  for (int64_t d : shape(dataset)) n *= d;
  std::vector<float> out(static_cast<size_t>(n));
  if (n > 0 && H5Dread(dataset, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()) < 0) {
    throw DataError("cannot read dataset as float32");
  }
  return out;
}

void write_string_attr(hid_t obj, const std::string& name, const std::string& value) {
  Handle type(H5Tcopy(H5T_C_S1));
  H5Tset_size(type, value.empty() ? 1 : value.size());
  Handle space(H5Screate(H5S_SCALAR));
  Handle a(H5Acreate2(obj, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT));
  if (!a.valid() || H5Awrite(a, type, value.empty() ? "" : value.data()) < 0) {
    throw Error("cannot write attribute '" + name + "'");
  }
}

std::string read_string_attr(hid_t obj, const std::string& name) {
  if (H5Aexists(obj, name.c_str()) <= 0) return "";
  Handle a(H5Aopen(obj, name.c_str(), H5P_DEFAULT));
  Handle type(H5Aget_type(a));
  if (H5Tget_class(type) != H5T_STRING || H5Tis_variable_str(type) > 0) return "";
  const size_t size = H5Tget_size(type);
  std::string out(size, '\0');
  if (H5Aread(a, type, out.data()) < 0) return "";
  while (!out.empty() && out.back() == '\0') out.pop_back();
  return out;
}

int64_t element_size(hid_t dataset) {
  Handle t(H5Dget_type(dataset));
  return static_cast<int64_t>(H5Tget_size(t));
}

}  // namespace tessera::h5
