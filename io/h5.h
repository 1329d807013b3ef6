// RAII for HDF5 handles and small helpers shared by io/. Private to io/: the only includer of
// <hdf5.h>. Every HDF5 failure becomes an exception naming the file and object.
#pragma once

#include <hdf5.h>

#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

namespace tessera::h5 {

// Owns one hid_t and closes it with the matching H5*close.
class Handle {
 public:
  Handle() = default;
  explicit Handle(hid_t id) : id_(id) {}
  Handle(Handle&& o) noexcept : id_(o.id_) { o.id_ = H5I_INVALID_HID; }
  Handle& operator=(Handle&& o) noexcept;
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  ~Handle() { reset(); }
  hid_t get() const { return id_; }
  operator hid_t() const { return id_; }
  bool valid() const { return id_ >= 0; }
  void reset();

 private:
  hid_t id_ = H5I_INVALID_HID;
};

// The HDF5 library here is not thread-safe (Debian builds it without --enable-threadsafe), and
// Hdf5Source reads on its own I/O thread. Any HDF5 call made while a training Hdf5Source is
// alive, on any thread, must hold this lock (model files, checkpoints, validation reads).
// Recursive: Hdf5Dataset's reads take it themselves, also when a caller already holds it.
std::unique_lock<std::recursive_mutex> lock();

// Silences HDF5's default error stack printing; tessera reports errors itself.
void quiet_errors();

// True when path is an HDF5 file (signature check, never throws for a missing file).
bool is_hdf5(const std::string& path);

// Opens read-only; DataError naming the file when it is missing or not HDF5.
Handle open_read(const std::string& path);
// Creates (truncating) a file for writing with object timestamps off, so the same content
// gives the same bytes.
Handle create(const std::string& path);
Handle open_dataset(hid_t file, const std::string& file_name, const std::string& name);
bool exists(hid_t loc, const std::string& name);

// Shape of a dataset.
std::vector<int64_t> shape(hid_t dataset);
// "float32", "int64", "uint8", ...; "other" for non-numeric types.
std::string dtype_name(hid_t dataset);
bool is_integer(hid_t dataset);
// Stored bytes of one value of a dataset.
int64_t element_size(hid_t dataset);

// Writes a whole float32 dataset of the given shape (creation plist: no timestamps).
void write_floats(hid_t file, const std::string& name, const std::vector<int64_t>& shape,
                  const float* data, int64_t chunk_rows = 0);
// Writes rows [first, first + rows) of dataset d (cols columns; 1-D when !two_d) from data in
// mem_type. Error names `what` (the file) on failure.
void write_rows(hid_t d, int64_t first, int64_t rows, int64_t cols, bool two_d, hid_t mem_type,
                const void* data, const std::string& what);
// Reads a whole float32 dataset (converting from its stored type).
std::vector<float> read_floats(hid_t dataset);

void write_string_attr(hid_t obj, const std::string& name, const std::string& value);
// Empty string when the attribute is absent.
std::string read_string_attr(hid_t obj, const std::string& name);

// Dataset creation properties with timestamps off (reproducible bytes) and optional chunking.
Handle dataset_plist(const std::vector<int64_t>& shape, int64_t chunk_rows);

}  // namespace tessera::h5
