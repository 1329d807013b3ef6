// inspect_file: walks the root group with H5Literate; thresholds for warnings follow
// LIMITS.md (chunks under 64 KiB cost a metadata lookup per tiny read; contiguous storage of
// large data cannot be read chunk-aligned by a streaming reader).
#include "io/inspect.h"

#include <sstream>
#include <vector>

#include "core/data_order.h"
#include "core/error.h"
#include "io/h5.h"
#include "io/model_file.h"

namespace tessera {

namespace {

struct Walk {
  std::vector<std::string> names;
};

herr_t collect(hid_t, const char* name, const H5L_info_t*, void* data) {
  static_cast<Walk*>(data)->names.emplace_back(name);
  return 0;
}

std::string dims_str(const std::vector<int64_t>& d) {
  std::string s;
  for (int64_t v : d) s += (s.empty() ? "" : " x ") + std::to_string(v);
  return s.empty() ? "scalar" : s;
}

}  // namespace

std::string inspect_file(const std::string& path, bool* verified) {
  if (verified != nullptr) *verified = true;
  h5::Handle f = h5::open_read(path);
  std::ostringstream os, warn;
  os << path << "\n";
  Walk w;
  H5Literate(f, H5_INDEX_NAME, H5_ITER_INC, nullptr, collect, &w);
  for (const std::string& name : w.names) {
    H5O_info_t info;
    if (H5Oget_info_by_name(f, name.c_str(), &info, H5P_DEFAULT) < 0 || info.type != H5O_TYPE_DATASET) {
      os << "  " << name << ": (group or other object)\n";
      continue;
    }
    h5::Handle d(H5Dopen2(f, name.c_str(), H5P_DEFAULT));
    const auto shape = h5::shape(d);
    h5::Handle dcpl(H5Dget_create_plist(d));
    const hsize_t bytes = H5Dget_storage_size(d);
    os << "  " << name << ": " << dims_str(shape) << "  " << h5::dtype_name(d) << "  ";
    if (H5Pget_layout(dcpl) == H5D_CHUNKED) {
      std::vector<hsize_t> chunk(shape.size());
      H5Pget_chunk(dcpl, static_cast<int>(chunk.size()), chunk.data());
      std::vector<int64_t> c(chunk.begin(), chunk.end());
      h5::Handle t(H5Dget_type(d));
      int64_t chunk_bytes = static_cast<int64_t>(H5Tget_size(t));
      for (int64_t v : c) chunk_bytes *= v;
      os << "chunked " << dims_str(c) << " (" << chunk_bytes / 1024 << " KiB/chunk)";
      const int nfilters = H5Pget_nfilters(dcpl);
      for (int i = 0; i < nfilters; ++i) {
        unsigned flags = 0, cd[8];
        size_t ncd = 8;
        char fname[64] = {};
        H5Pget_filter2(dcpl, static_cast<unsigned>(i), &flags, &ncd, cd, sizeof fname, fname, nullptr);
        os << (i == 0 ? "  compression: " : ", ") << fname;
      }
      // Hdf5Source reads compressed chunks through HDF5's chunk cache, which gets a quarter of
      // data.memory_budget_mb; a shuffle window (16 chunks, plus one) that does not fit is
      // decompressed again for every step that touches it.
      const int64_t window_mib = ((DataOrder::kWindowChunks + 1) * chunk_bytes) >> 20;
      if (nfilters > 0 && shape.size() == 2 && shape[0] > c[0] && 4 * window_mib > 256) {
        warn << "  warning: " << name << " is compressed in chunks of " << (chunk_bytes >> 10)
             << " KiB: a shuffle window needs " << window_mib << " MiB of chunk cache, so set data.memory_budget_mb >= "
             << 4 * window_mib << " or store it uncompressed (h5repack -f NONE) with smaller chunks\n";
      }
      if (shape.size() == 2 && c.size() == 2 && c[1] < shape[1]) {
        warn << "  warning: " << name << " chunks split rows (" << c[1] << " of " << shape[1]
             << " columns): every row read touches several chunks; rewrite with chunks of whole rows\n";
      }
      // Feature matrices only: a label column is read along with its rows and is small anyway.
      if (chunk_bytes < (64 << 10) && shape.size() == 2 && shape[0] > c[0]) {
        warn << "  warning: " << name << " chunks are tiny (" << chunk_bytes
             << " bytes): reads pay per-chunk overhead; use chunks of about 1 MiB of whole rows\n";
      }
    } else {
      os << "contiguous";
      if (bytes > (hsize_t{1} << 30)) {
        warn << "  warning: " << name << " is " << (bytes >> 20)
             << " MiB stored contiguously: streaming readers cannot read it chunk-aligned; "
                "rewrite it chunked (e.g. h5repack -l " << name << ":CHUNK=1024x<features>)\n";
      }
    }
    os << "  " << bytes << " bytes stored\n";
  }
  if (h5::exists(f, "X") && h5::exists(f, "y")) {
    h5::Handle x(H5Dopen2(f, "X", H5P_DEFAULT)), y(H5Dopen2(f, "y", H5P_DEFAULT));
    const auto xs = h5::shape(x), ys = h5::shape(y);
    if (!xs.empty() && !ys.empty() && xs[0] != ys[0]) {
      warn << "  warning: X has " << xs[0] << " rows but y has " << ys[0] << ": tessera will refuse this file\n";
    }
    if (xs.size() == 2) os << "  rows: " << xs[0] << "  features: " << xs[1] << "\n";
  }
  const std::string fmt = h5::read_string_attr(f, "tessera_format");
  if (!fmt.empty()) {
    os << "  tessera model file (" << fmt << "): " << h5::read_string_attr(f, "architecture") << "\n";
    try {
      read_model_file(path);
      os << "  weights checksum: OK (" << h5::read_string_attr(f, "weights_sha256") << ")\n";
    } catch (const Error& e) {
      os << "  weights checksum: FAILED: " << e.what() << "\n";
      if (verified != nullptr) *verified = false;
    }
  }
  return os.str() + warn.str();
}

}  // namespace tessera
