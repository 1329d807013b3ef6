// NPY importer: the format is a magic string, a version, a header length, a Python dict
// literal {'descr': '<f4', 'fortran_order': False, 'shape': (R, C), } and the raw C-order
// values. Read through zlib's gzread, so .npy.gz works too; rows are converted block by block.
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <vector>

#include "core/error.h"
#include "io/files.h"
#include "io/h5.h"
#include "io/gz_file.h"
#include "io/row_appender.h"
#include "io/table_import.h"

namespace tessera {

namespace {

class NpyReader {
 public:
  explicit NpyReader(const std::string& path) : path_(path), f_(path) {
    unsigned char pre[10];
    read(pre, 8, "the NPY magic and version");
    if (std::memcmp(pre, "\x93NUMPY", 6) != 0) throw DataError(path + " byte 0: not an NPY file (magic \\x93NUMPY expected)");
    const int major = pre[6];
    if (major < 1 || major > 3) throw DataError(path + " byte 6: NPY version " + std::to_string(major) + " (1 to 3 expected)");
    size_t len = 0;
    if (major == 1) {
      read(pre, 2, "the header length");
      len = pre[0] | (size_t{pre[1]} << 8);
    } else {
      read(pre, 4, "the header length");
      len = pre[0] | (size_t{pre[1]} << 8) | (size_t{pre[2]} << 16) | (size_t{pre[3]} << 24);
    }
    if (len > (1 << 20)) throw DataError(path + " byte 8: header of " + std::to_string(len) + " bytes (corrupt?)");
    std::string header(len, '\0');
    read(reinterpret_cast<unsigned char*>(header.data()), static_cast<int64_t>(len), "the header");
    parse(header);
  }
  const std::vector<int64_t>& shape() const { return shape_; }
  bool integer() const { return kind_ == 'i' || kind_ == 'u' || kind_ == 'b'; }
  int64_t values_per_row() const {
    int64_t n = 1;
    for (size_t i = 1; i < shape_.size(); ++i) n *= shape_[i];
    return n;
  }
  // The next `rows` rows, converted to T.
  template <class T>
  void read_rows(int64_t rows, T* out) {
    const int64_t n = rows * values_per_row();
    raw_.resize(static_cast<size_t>(n * size_));
    read(raw_.data(), n * size_, "array values");
    const unsigned char* p = raw_.data();
    for (int64_t i = 0; i < n; ++i, p += size_) out[i] = static_cast<T>(value(p));
  }

 private:
  void read(unsigned char* out, int64_t n, const char* what) { f_.read_exact(out, n, what); }
  std::string field(const std::string& h, const std::string& key) {
    const size_t k = h.find("'" + key + "'");
    if (k == std::string::npos) throw DataError(path_ + ": NPY header lacks '" + key + "': " + h);
    return h.substr(h.find(':', k) + 1);
  }
  void parse(const std::string& h) {
    const std::string descr = field(h, "descr");
    const size_t q = descr.find('\'');
    const std::string d = descr.substr(q + 1, descr.find('\'', q + 1) - q - 1);
    if (d.size() < 3 || (d[0] != '<' && d[0] != '|') || std::string("fiub").find(d[1]) == std::string::npos) {
      throw DataError(path_ + ": dtype '" + d + "' not supported (little-endian float, int, uint or bool expected)");
    }
    kind_ = d[1];
    size_ = std::stoi(d.substr(2));
    const bool ok = (kind_ == 'f' && (size_ == 4 || size_ == 8)) || (kind_ == 'b' && size_ == 1) ||
                    ((kind_ == 'i' || kind_ == 'u') && (size_ == 1 || size_ == 2 || size_ == 4 || size_ == 8));
    if (!ok) throw DataError(path_ + ": dtype '" + d + "' not supported");
    if (field(h, "fortran_order").find("True") < field(h, "fortran_order").find(',')) {
      throw DataError(path_ + ": Fortran-order array; save it with np.ascontiguousarray first");
    }
    std::string s = field(h, "shape");
    s = s.substr(s.find('(') + 1, s.find(')') - s.find('(') - 1);
    for (size_t i = 0; i < s.size();) {
      const size_t comma = std::min(s.find(',', i), s.size());
      const std::string num = s.substr(i, comma - i);
      if (num.find_first_not_of(' ') != std::string::npos) shape_.push_back(std::stoll(num));
      i = comma + 1;
    }
  }
  double value(const unsigned char* p) const {
    auto get = [&](auto v) {
      std::memcpy(&v, p, sizeof v);
      return static_cast<double>(v);
    };
    switch (kind_) {
      case 'f': return size_ == 4 ? get(float{}) : get(double{});
      case 'b': return *p != 0;
      case 'i': return size_ == 1 ? get(int8_t{}) : size_ == 2 ? get(int16_t{}) : size_ == 4 ? get(int32_t{}) : get(int64_t{});
      default: return size_ == 1 ? get(uint8_t{}) : size_ == 2 ? get(uint16_t{}) : size_ == 4 ? get(uint32_t{}) : get(uint64_t{});
    }
  }

  std::string path_;
  GzFile f_;
  char kind_ = 'f';
  int size_ = 4;
  std::vector<int64_t> shape_;
  std::vector<unsigned char> raw_;
};

}  // namespace

int64_t import_npy(const NpyImportOptions& opt) {
  NpyReader x(opt.x), y(opt.y);
  if (x.shape().size() != 2) {
    throw DataError(opt.x + ": X has " + std::to_string(x.shape().size()) + " dimensions, expected 2 (rows x features)");
  }
  if (y.shape().size() != 1 && y.shape().size() != 2) {
    throw DataError(opt.y + ": y has " + std::to_string(y.shape().size()) + " dimensions, expected 1 or 2");
  }
  const int64_t rows = x.shape()[0], features = x.shape()[1], cols = y.values_per_row();
  if (y.shape()[0] != rows) {
    throw DataError(opt.x + " has " + std::to_string(rows) + " rows but " + opt.y + " has " + std::to_string(y.shape()[0]));
  }
  if (rows == 0 || features == 0 || cols == 0) throw DataError(opt.x + ": empty array");
  atomic_write_with(opt.out, [&](const std::string& tmp) {
    h5::Handle f = h5::create(tmp);
    RowAppender out(f, tmp, features, cols, y.integer() ? H5T_STD_I64LE : H5T_IEEE_F64LE, opt.chunk_rows);
    const int64_t block = std::clamp<int64_t>((int64_t{16} << 20) / (4 * features), 1, 4096);
    std::vector<float> xb(static_cast<size_t>(block * features));
    std::vector<double> yb(static_cast<size_t>(block * cols));
    for (int64_t b = 0; b < rows; b += block) {
      const int64_t n = std::min(block, rows - b);
      x.read_rows(n, xb.data());
      y.read_rows(n, yb.data());
      for (int64_t i = 0; i < n * features; ++i) {
        if (!std::isfinite(xb[i])) {
          throw DataError(opt.x + " row " + std::to_string(b + i / features) + " column " + std::to_string(i % features) +
                          ": NaN or infinity (not allowed)");
        }
      }
      out.append(xb.data(), yb.data(), n);
    }
    h5::write_string_attr(f, "source", opt.x + " " + opt.y);
  });
  return rows;
}

}  // namespace tessera
