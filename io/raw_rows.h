// RawRows: direct pread() of whole rows of an uncompressed, little-endian numeric HDF5 dataset,
// at the file addresses HDF5 reports (H5Dget_offset, H5Dget_chunk_info_by_coord). Reading a
// batch's scattered rows through a hyperslab union costs HDF5 ~40 µs per row here; a pread per
// run of consecutive rows costs a few µs. Anything else (filters, big-endian, chunks that split
// rows, unallocated chunks) falls back to HDF5's own read path.
#pragma once

#include <hdf5.h>

#include <cstdint>
#include <string>
#include <vector>

namespace tessera {

class RawRows {
 public:
  // dataset: an open dataset of file `path` with `rows` rows of `cols` values each; fd: that
  // file opened read-only (not owned; shared by the datasets of one file), or -1.
  RawRows(hid_t dataset, const std::string& path, int64_t rows, int64_t cols, int fd);
  RawRows(const RawRows&) = delete;
  RawRows& operator=(const RawRows&) = delete;

  bool usable() const { return usable_; }
  // Rows [starts[i], starts[i] + lens[i]) for i < n (file-local indices), converted to T and
  // stored consecutively in out. False when a chunk is not allocated (use HDF5 instead).
  // DataError when the file is shorter than HDF5 says (truncated).
  template <class T>
  bool read(const hsize_t* starts, const hsize_t* lens, size_t n, T* out);

 private:
  enum class Kind { kF32, kF64, kI8, kI16, kI32, kI64, kU8, kU16, kU32, kU64 };
  std::string dataset_name() const;
  bool address(int64_t row, haddr_t* addr, int64_t* rows_left);
  template <class T>
  void convert(const unsigned char* src, int64_t count, T* out) const;

  hid_t dataset_;
  std::string path_;
  int fd_ = -1;
  bool usable_ = false;
  Kind kind_ = Kind::kF32;
  int64_t rows_, cols_, elem_ = 0, row_bytes_ = 0;
  haddr_t base_ = HADDR_UNDEF;      // contiguous layout
  int64_t chunk_rows_ = 0;          // chunked layout
  std::vector<haddr_t> chunk_addr_;  // 0 = not looked up yet
  std::vector<unsigned char> stage_;
};

}  // namespace tessera
