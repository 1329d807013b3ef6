// RawRows: the layout checks decide once per dataset whether direct reads are exact; the bytes
// then are the same HDF5 would return, converted with a plain static_cast (HDF5's conversion
// for in-range values).
#include "io/raw_rows.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <limits>
#include <type_traits>

#include "core/error.h"
#include "io/h5.h"

namespace tessera {

RawRows::RawRows(hid_t dataset, const std::string& path, int64_t rows, int64_t cols, int fd)
    : dataset_(dataset), path_(path), fd_(fd), rows_(rows), cols_(cols) {
  if (fd_ < 0) return;
  // HDF5 1.10 reports chunk addresses relative to the base address, which a userblock moves
  // away from byte 0; such files go through HDF5.
  {
    h5::Handle file(H5Iget_file_id(dataset));
    h5::Handle fcpl(H5Fget_create_plist(file));
    hsize_t userblock = 0;
    if (H5Pget_userblock(fcpl, &userblock) < 0 || userblock != 0) return;
  }
  h5::Handle type(H5Dget_type(dataset));
  const H5T_class_t cls = H5Tget_class(type);
  elem_ = static_cast<int64_t>(H5Tget_size(type));
  if (H5Tget_order(type) != H5T_ORDER_LE) return;
  // Padding bits or an offset inside the element would make the raw bytes differ from HDF5's.
  if (H5Tget_precision(type) != static_cast<size_t>(8 * elem_) || H5Tget_offset(type) != 0) return;
  if (cls == H5T_FLOAT) {
    if (H5Tequal(type, H5T_IEEE_F32LE) > 0) {
      kind_ = Kind::kF32;
    } else if (H5Tequal(type, H5T_IEEE_F64LE) > 0) {
      kind_ = Kind::kF64;
    } else {
      return;
    }
  } else if (cls == H5T_INTEGER) {
    const bool sign = H5Tget_sign(type) != H5T_SGN_NONE;
    switch (elem_) {
      case 1: kind_ = sign ? Kind::kI8 : Kind::kU8; break;
      case 2: kind_ = sign ? Kind::kI16 : Kind::kU16; break;
      case 4: kind_ = sign ? Kind::kI32 : Kind::kU32; break;
      case 8: kind_ = sign ? Kind::kI64 : Kind::kU64; break;
      default: return;
    }
  } else {
    return;
  }
  row_bytes_ = elem_ * cols_;
  h5::Handle dcpl(H5Dget_create_plist(dataset));
  const H5D_layout_t layout = H5Pget_layout(dcpl);
  if (layout == H5D_CONTIGUOUS) {
    base_ = H5Dget_offset(dataset);
    if (base_ == HADDR_UNDEF) return;
  } else if (layout == H5D_CHUNKED) {
    if (H5Pget_nfilters(dcpl) != 0) return;
    hsize_t chunk[2] = {0, 0};
    const int rank = H5Pget_chunk(dcpl, 2, chunk);
    if (rank == 2 && static_cast<int64_t>(chunk[1]) != cols_) return;  // chunks split rows
    chunk_rows_ = static_cast<int64_t>(chunk[0]);
    if (chunk_rows_ <= 0) return;
    chunk_addr_.assign(static_cast<size_t>((rows_ + chunk_rows_ - 1) / chunk_rows_), 0);
  } else {
    return;
  }
  usable_ = true;
}

std::string RawRows::dataset_name() const {
  char name[256] = {};
  H5Iget_name(dataset_, name, sizeof name);
  return name[0] == '/' ? name + 1 : name;
}

bool RawRows::address(int64_t row, haddr_t* addr, int64_t* rows_left) {
  if (chunk_rows_ == 0) {
    *addr = base_ + static_cast<haddr_t>(row * row_bytes_);
    *rows_left = rows_ - row;
    return true;
  }
  const int64_t c = row / chunk_rows_;
  haddr_t& a = chunk_addr_[static_cast<size_t>(c)];
  if (a == 0) {
    hsize_t offset[2] = {static_cast<hsize_t>(c * chunk_rows_), 0};
    unsigned mask = 0;
    hsize_t size = 0;
    if (H5Dget_chunk_info_by_coord(dataset_, offset, &mask, &a, &size) < 0 || a == HADDR_UNDEF) {
      a = 0;
      return false;
    }
  }
  *addr = a + static_cast<haddr_t>((row - c * chunk_rows_) * row_bytes_);
  *rows_left = (c + 1) * chunk_rows_ - row;
  return true;
}

template <class T>
void RawRows::convert(const unsigned char* src, int64_t count, T* out) const {
  auto cast = [&](auto tag) {
    using S = decltype(tag);
    for (int64_t i = 0; i < count; ++i) {
      S v;
      std::memcpy(&v, src + i * sizeof(S), sizeof(S));
      if constexpr (std::is_floating_point_v<S> && sizeof(S) > sizeof(T)) {
        // Out-of-range doubles become ±inf (as in HDF5's conversion), which validation rejects;
        // a plain cast would be undefined.
        if (v > std::numeric_limits<T>::max()) {
          out[i] = std::numeric_limits<T>::infinity();
          continue;
        }
        if (v < std::numeric_limits<T>::lowest()) {
          out[i] = -std::numeric_limits<T>::infinity();
          continue;
        }
      }
      out[i] = static_cast<T>(v);
    }
  };
  switch (kind_) {
    case Kind::kF32: cast(float{}); break;
    case Kind::kF64: cast(double{}); break;
    case Kind::kI8: cast(int8_t{}); break;
    case Kind::kI16: cast(int16_t{}); break;
    case Kind::kI32: cast(int32_t{}); break;
    case Kind::kI64: cast(int64_t{}); break;
    case Kind::kU8: cast(uint8_t{}); break;
    case Kind::kU16: cast(uint16_t{}); break;
    case Kind::kU32: cast(uint32_t{}); break;
    case Kind::kU64: cast(uint64_t{}); break;
  }
}

template <class T>
bool RawRows::read(const hsize_t* starts, const hsize_t* lens, size_t n, T* out) {
  const bool direct = (kind_ == Kind::kF32 && sizeof(T) == 4) || (kind_ == Kind::kF64 && sizeof(T) == 8);
  for (size_t i = 0; i < n; ++i) {
    int64_t row = static_cast<int64_t>(starts[i]);
    int64_t left = static_cast<int64_t>(lens[i]);
    while (left > 0) {
      haddr_t addr;
      int64_t in_piece;
      if (!address(row, &addr, &in_piece)) return false;
      const int64_t take = std::min(left, in_piece);
      const size_t bytes = static_cast<size_t>(take * row_bytes_);
      unsigned char* dst;
      if (direct) {
        dst = reinterpret_cast<unsigned char*>(out);
      } else {
        if (stage_.size() < bytes) stage_.resize(bytes);
        dst = stage_.data();
      }
      size_t done = 0;
      while (done < bytes) {
        const ssize_t got = ::pread(fd_, dst + done, bytes - done, static_cast<off_t>(addr + done));
        if (got <= 0) {
          throw DataError(path_ + ": cannot read rows " + std::to_string(row) + ".." + std::to_string(row + take - 1) +
                          " of dataset '" + dataset_name() + "' (file truncated or unreadable)");
        }
        done += static_cast<size_t>(got);
      }
      if (!direct) convert(dst, take * cols_, out);
      out += take * cols_;
      row += take;
      left -= take;
    }
  }
  return true;
}

template bool RawRows::read<float>(const hsize_t*, const hsize_t*, size_t, float*);
template bool RawRows::read<double>(const hsize_t*, const hsize_t*, size_t, double*);

}  // namespace tessera
