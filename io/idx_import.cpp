// IDX format (LeCun): big-endian magic 0x0000 <type=0x08 ubyte> <ndims>, then ndims big-endian
// uint32 sizes, then the data. zlib's gzread reads plain files too, so both forms work.
#include "io/idx_import.h"

#include <zlib.h>

#include <algorithm>
#include <memory>
#include <vector>

#include "core/error.h"
#include "io/files.h"
#include "io/gz_file.h"
#include "io/h5.h"

namespace tessera {

namespace {

class IdxReader {
 public:
  explicit IdxReader(const std::string& path) : f_(path) {
    unsigned char magic[4];
    read_exact(magic, 4, "the 4-byte IDX magic");
    if (magic[0] != 0 || magic[1] != 0 || magic[2] != 0x08 || magic[3] < 1 || magic[3] > 4) {
      throw DataError(path + " byte 0: not an unsigned-byte IDX file (magic 00 00 08 0N expected)");
    }
    for (int i = 0; i < magic[3]; ++i) {
      unsigned char b[4];
      read_exact(b, 4, "a dimension size");
      dims_.push_back((int64_t{b[0]} << 24) | (int64_t{b[1]} << 16) | (int64_t{b[2]} << 8) | b[3]);
    }
  }
  const std::vector<int64_t>& dims() const { return dims_; }
  void read_exact(unsigned char* out, int64_t n, const char* what) { f_.read_exact(out, n, what); }

 private:
  GzFile f_;
  std::vector<int64_t> dims_;
};

}  // namespace

int64_t import_idx(const IdxImportOptions& opt) {
  IdxReader images(opt.images), labels(opt.labels);
  if (images.dims().size() < 2) throw DataError(opt.images + ": expected an image file (3 dimensions), found 1");
  if (labels.dims().size() != 1) throw DataError(opt.labels + ": expected a label file (1 dimension)");
  const int64_t rows = images.dims()[0];
  int64_t features = 1;
  for (size_t i = 1; i < images.dims().size(); ++i) features *= images.dims()[i];
  if (labels.dims()[0] != rows) {
    throw DataError(opt.images + " has " + std::to_string(rows) + " images but " + opt.labels + " has " +
                    std::to_string(labels.dims()[0]) + " labels");
  }
  if (rows == 0 || features == 0) throw DataError(opt.images + ": no images");
  atomic_write_with(opt.out, [&](const std::string& tmp) {
    h5::Handle f = h5::create(tmp);
    const hsize_t xd[2] = {static_cast<hsize_t>(rows), static_cast<hsize_t>(features)};
    h5::Handle xs(H5Screate_simple(2, xd, nullptr)), ys(H5Screate_simple(1, xd, nullptr));
    h5::Handle xp = h5::dataset_plist({rows, features}, opt.chunk_rows);
    h5::Handle yp = h5::dataset_plist({rows}, opt.chunk_rows);
    h5::Handle x(H5Dcreate2(f, "X", opt.raw ? H5T_STD_U8LE : H5T_IEEE_F32LE, xs, H5P_DEFAULT, xp, H5P_DEFAULT));
    h5::Handle y(H5Dcreate2(f, "y", H5T_STD_U8LE, ys, H5P_DEFAULT, yp, H5P_DEFAULT));
    if (!x.valid() || !y.valid()) throw Error("cannot create datasets in " + tmp);
    const int64_t block = 4096;
    std::vector<unsigned char> px(static_cast<size_t>(block * features)), lb(static_cast<size_t>(block));
    std::vector<float> xf(opt.raw ? 0 : px.size());
    for (int64_t b = 0; b < rows; b += block) {
      const int64_t n = std::min(block, rows - b);
      images.read_exact(px.data(), n * features, "image pixels");
      labels.read_exact(lb.data(), n, "labels");
      if (opt.raw) {
        h5::write_rows(x, b, n, features, true, H5T_NATIVE_UCHAR, px.data(), tmp);
      } else {
        for (int64_t i = 0; i < n * features; ++i) xf[i] = static_cast<float>(px[i]) / 255.0f;
        h5::write_rows(x, b, n, features, true, H5T_NATIVE_FLOAT, xf.data(), tmp);
      }
      h5::write_rows(y, b, n, 1, false, H5T_NATIVE_UCHAR, lb.data(), tmp);
    }
    h5::write_string_attr(f, "source", opt.images + " " + opt.labels);
    h5::write_string_attr(f, "features_scale", opt.raw ? "raw uint8 0..255" : "pixel / 255");
  });
  return rows;
}

}  // namespace tessera
