// Hdf5Dataset: schema validation and batched hyperslab reads across concatenated files.
#include "io/hdf5_dataset.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <type_traits>

#include "core/data_order.h"
#include "core/error.h"
#include "io/h5.h"
#include "io/raw_rows.h"

namespace tessera {

static_assert(std::is_same_v<hsize_t, unsigned long long>, "hdf5_dataset.h spells hsize_t out");

struct Hdf5Dataset::Open {
  h5::Handle file, x, y;
  int fd = -1;  // one plain descriptor per file for direct reads, shared by x and y
  bool y_two_d = false;
  int64_t x_elem = 0, y_elem = 0;  // stored bytes per value
  ~Open() {
    if (fd >= 0) ::close(fd);
  }
  std::unique_ptr<RawRows> raw_x, raw_y;  // direct reads where the layout allows (io/raw_rows.h)
};

namespace {

// Chunk cache per dataset: holds a whole shuffle window (DataOrder::kWindowChunks chunks, plus
// one for a window boundary), so each chunk is read from disk once per epoch rather than once
// per step that touches it (a window's rows are spread over all its steps).
// cap bounds the cache of one dataset of one file (a share of Hdf5Dataset's cache_bytes); a
// chunk larger than the cache bypasses it, so a small cap costs speed, never memory.
size_t chunk_cache_bytes(hid_t file, const std::string& name, size_t cap) {
  h5::Handle d(H5Dopen2(file, name.c_str(), H5P_DEFAULT));
  h5::Handle dcpl(H5Dget_create_plist(d));
  if (!d.valid() || H5Pget_layout(dcpl) != H5D_CHUNKED) return 0;
  hsize_t chunk[8] = {};
  const int rank = std::min(H5Pget_chunk(dcpl, 8, chunk), 8);
  h5::Handle type(H5Dget_type(d));
  size_t bytes = H5Tget_size(type);
  for (int i = 0; i < rank; ++i) bytes *= chunk[i];
  return std::min<size_t>((DataOrder::kWindowChunks + 1) * bytes, cap);
}

// cache_share: this dataset's part of the total chunk cache; *cache receives its size.
h5::Handle open_with_cache(hid_t file, const std::string& path, const std::string& name, size_t cache_share,
                           size_t* cache) {
  if (!h5::exists(file, name)) return h5::open_dataset(file, path, name);  // throws the named error
  h5::Handle dapl(H5Pcreate(H5P_DATASET_ACCESS));
  *cache = chunk_cache_bytes(file, name, cache_share);
  H5Pset_chunk_cache(dapl, 12421, *cache, 1.0);
  h5::Handle d(H5Dopen2(file, name.c_str(), dapl));
  if (!d.valid()) throw DataError(path + ": cannot open dataset '" + name + "'");
  return d;
}

bool numeric(hid_t d) {
  h5::Handle t(H5Dget_type(d));
  const H5T_class_t c = H5Tget_class(t);
  return c == H5T_INTEGER || c == H5T_FLOAT;
}

}  // namespace

Hdf5Dataset::Hdf5Dataset(const std::vector<std::string>& paths, const std::string& features_name,
                         const std::string& labels_name, size_t cache_bytes)
    : x_name_(features_name), y_name_(labels_name) {
  if (paths.empty()) throw ConfigError("data.train: no files given");
  const bool labels = !y_name_.empty();  // predict reads features only
  const size_t share = cache_bytes / (paths.size() * (labels ? 2 : 1));
  for (const std::string& path : paths) {
    auto o = std::make_unique<Open>();
    o->file = h5::open_read(path);
    size_t x_cache = 0, y_cache = 0;
    o->x = open_with_cache(o->file, path, x_name_, share, &x_cache);
    if (labels) o->y = open_with_cache(o->file, path, y_name_, share, &y_cache);
    const auto xs = h5::shape(o->x);
    const auto ys = labels ? h5::shape(o->y) : std::vector<int64_t>{xs.empty() ? 0 : xs[0]};
    const std::string xd = path + ": dataset '" + x_name_ + "'", yd = path + ": dataset '" + y_name_ + "'";
    if (!numeric(o->x)) throw DataError(xd + " is not numeric (expected float or integer)");
    if (labels && !numeric(o->y)) throw DataError(yd + " is not numeric (expected float or integer)");
    if (xs.size() != 2) {
      throw DataError(xd + " has " + std::to_string(xs.size()) +
                      " dimensions, expected 2 (rows x features)");
    }
    if (ys.size() != 1 && ys.size() != 2) {
      throw DataError(yd + " has " + std::to_string(ys.size()) +
                      " dimensions, expected 1 (rows) or 2 (rows x targets)");
    }
    if (xs[0] != ys[0]) {
      throw DataError(path + ": '" + x_name_ + "' has " + std::to_string(xs[0]) + " rows but '" +
                      y_name_ + "' has " + std::to_string(ys[0]) + " (they must match)");
    }
    if (xs[0] == 0 || xs[1] == 0) throw DataError(xd + " is empty (0 rows or 0 features)");
    const int64_t ycols = ys.size() == 2 ? ys[1] : 1;
    if (ycols == 0) throw DataError(yd + " has 0 columns");
    if (info_.empty()) {
      features_ = xs[1];
      label_columns_ = ycols;
      labels_integer_ = labels && h5::is_integer(o->y);
    } else {
      if (xs[1] != features_) {
        throw DataError(xd + " has " + std::to_string(xs[1]) + " features but " + info_[0].path +
                        " has " + std::to_string(features_) + " (all files must share a schema)");
      }
      if (ycols != label_columns_) {
        throw DataError(yd + " has " + std::to_string(ycols) + " columns but " + info_[0].path +
                        " has " + std::to_string(label_columns_));
      }
      labels_integer_ = labels_integer_ && labels && h5::is_integer(o->y);
    }
    Hdf5FileInfo fi;
    fi.path = path;
    fi.rows = xs[0];
    fi.first_row = rows_;
    fi.x_dtype = h5::dtype_name(o->x);
    fi.y_dtype = labels ? h5::dtype_name(o->y) : "";
    h5::Handle dcpl(H5Dget_create_plist(o->x));
    if (H5Pget_layout(dcpl) == H5D_CHUNKED) {
      hsize_t chunk[2] = {0, 0};
      H5Pget_chunk(dcpl, 2, chunk);
      fi.x_chunk_rows = static_cast<int64_t>(chunk[0]);
    }
    struct stat st {};
    if (stat(path.c_str(), &st) == 0) fi.bytes = st.st_size;
    o->y_two_d = ys.size() == 2;
    o->fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);  // -1 (e.g. EMFILE): HDF5 reads only
    o->raw_x = std::make_unique<RawRows>(o->x, path, fi.rows, features_, o->fd);
    if (labels) o->raw_y = std::make_unique<RawRows>(o->y, path, fi.rows, label_columns_, o->fd);
    if (!o->raw_x->usable()) cache_in_use_ += static_cast<int64_t>(x_cache);
    if (labels && !o->raw_y->usable()) cache_in_use_ += static_cast<int64_t>(y_cache);
    o->x_elem = h5::element_size(o->x);
    o->y_elem = labels ? h5::element_size(o->y) : 0;
    row_bytes_ = std::max(row_bytes_, o->x_elem * features_ + o->y_elem * label_columns_);
    rows_ += fi.rows;
    info_.push_back(fi);
    open_.push_back(std::move(o));
  }
}

Hdf5Dataset::~Hdf5Dataset() = default;

int64_t Hdf5Dataset::order_chunk_rows() const {
  return info_[0].x_chunk_rows > 0 ? info_[0].x_chunk_rows : kDefaultOrderChunk;
}

size_t Hdf5Dataset::file_of(int64_t row) const {
  TESSERA_CHECK(row >= 0 && row < rows_, "row ", row, " outside ", rows_);
  size_t f = 0;
  while (f + 1 < info_.size() && info_[f + 1].first_row <= row) ++f;
  return f;
}

std::string Hdf5Dataset::where(int64_t row) const {
  const size_t f = file_of(row);
  return info_[f].path + " row " + std::to_string(row - info_[f].first_row);
}

namespace {

// Reads the union of [starts[i], starts[i]+lens[i]) rows of dataset d (cols columns) into out.
void read_blocks(hid_t d, const std::string& path, const std::string& name, const std::vector<hsize_t>& starts,
                 const std::vector<hsize_t>& lens, int64_t cols, bool two_d, hid_t mem_type,
                 void* out) {
  h5::Handle space(H5Dget_space(d));
  hsize_t total = 0;
  for (size_t i = 0; i < starts.size(); ++i) {
    hsize_t start[2] = {starts[i], 0}, count[2] = {lens[i], static_cast<hsize_t>(cols)};
    H5Sselect_hyperslab(space, i == 0 ? H5S_SELECT_SET : H5S_SELECT_OR, start, nullptr, count,
                        nullptr);
    total += lens[i];
  }
  hsize_t mdims[2] = {total, static_cast<hsize_t>(cols)};
  h5::Handle mem(H5Screate_simple(two_d ? 2 : 1, mdims, nullptr));
  if (H5Dread(d, mem_type, mem, space, H5P_DEFAULT, out) < 0) {
    throw DataError("cannot read rows " + std::to_string(starts.front()) + ".." +
                    std::to_string(starts.back() + lens.back() - 1) + " of " + path + " dataset '" + name +
                    "' (file damaged or truncated?)");
  }
}

// Direct reads when the layout allows, HDF5's hyperslab read otherwise. Error text is built
// only on failure, so a step's reads never allocate.
template <class T>
void read_any(RawRows* raw, hid_t d, const std::string& path, const std::string& name,
              const std::vector<hsize_t>& starts, const std::vector<hsize_t>& lens, int64_t cols, bool two_d,
              hid_t mem_type, T* out) {
  if (raw != nullptr && raw->usable() && raw->read(starts.data(), lens.data(), starts.size(), out)) return;
  read_blocks(d, path, name, starts, lens, cols, two_d, mem_type, out);
}

}  // namespace

void Hdf5Dataset::read_runs(size_t f, float* x, double* y) {
  const Open& o = *open_[f];
  int64_t rows = 0;
  for (const hsize_t n : lens_) rows += static_cast<int64_t>(n);
  bytes_read_.fetch_add(rows * ((x != nullptr ? o.x_elem * features_ : 0) + (y != nullptr ? o.y_elem * label_columns_ : 0)),
                        std::memory_order_relaxed);
  if (x != nullptr) {
    read_any(o.raw_x.get(), o.x, info_[f].path, x_name_, starts_, lens_, features_, true, H5T_NATIVE_FLOAT, x);
  }
  if (y != nullptr && o.y.valid()) {
    read_any(o.raw_y.get(), o.y, info_[f].path, y_name_, starts_, lens_, label_columns_, o.y_two_d,
             H5T_NATIVE_DOUBLE, y);
  }
}

void Hdf5Dataset::read_rows(const int64_t* rows, int64_t count, float* x, double* y) {
  // Rows closer than kCoalesceBytes join one run: a pread of the rows between costs less than
  // another system call. Such runs land in span_x_/span_y_ and the wanted rows are picked out.
  const auto hdf5 = h5::lock();  // the scratch members below and HDF5 itself are shared
  const int64_t gap_rows = kCoalesceBytes / std::max<int64_t>(row_bytes_, 1);
  const int64_t span_cap = kSpanFactor * count;
  int64_t i = 0;
  while (i < count) {
    const size_t f = file_of(rows[i]);
    const int64_t file_end = info_[f].first_row + info_[f].rows;
    const int64_t first = i;
    int64_t span = 0;  // rows the runs cover
    starts_.clear();
    lens_.clear();
    keep_.clear();
    while (i < count && rows[i] < file_end) {
      TESSERA_CHECK(i == first || rows[i] > rows[i - 1], "rows must be strictly increasing");
      const int64_t local = rows[i] - info_[f].first_row;
      const int64_t gap = starts_.empty() ? -1 : local - static_cast<int64_t>(starts_.back() + lens_.back());
      if (gap == 0) {
        ++lens_.back();
        ++span;
      } else if (gap > 0 && gap <= gap_rows && span + gap + (count - i) <= span_cap) {  // room for the rest
        lens_.back() += static_cast<hsize_t>(gap + 1);
        span += gap + 1;
      } else {
        starts_.push_back(static_cast<hsize_t>(local));
        lens_.push_back(1);
        ++span;
      }
      keep_.push_back(span - 1);
      ++i;
    }
    float* xo = x + first * features_;
    double* yo = y == nullptr ? nullptr : y + first * label_columns_;
    const int64_t n = i - first;
    if (span == n) {  // no rows between: straight into the output
      read_runs(f, xo, yo);
      continue;
    }
    if (static_cast<int64_t>(span_y_.size()) < span_cap * label_columns_) {  // once: the cap never changes
      span_x_.resize(static_cast<size_t>(span_cap * features_));
      span_y_.resize(static_cast<size_t>(span_cap * label_columns_));
    }
    read_runs(f, span_x_.data(), yo == nullptr ? nullptr : span_y_.data());
    for (int64_t k = 0; k < n; ++k) {
      std::copy_n(span_x_.data() + keep_[k] * features_, features_, xo + k * features_);
      if (yo != nullptr) std::copy_n(span_y_.data() + keep_[k] * label_columns_, label_columns_, yo + k * label_columns_);
    }
  }
}

void Hdf5Dataset::read_range(int64_t begin, int64_t end, float* x, double* y) {
  TESSERA_CHECK(0 <= begin && begin <= end && end <= rows_, "range [", begin, ",", end, ")");
  const auto hdf5 = h5::lock();
  int64_t r = begin;
  while (r < end) {
    const size_t f = file_of(r);
    const int64_t stop = std::min(end, info_[f].first_row + info_[f].rows);
    starts_.assign(1, static_cast<hsize_t>(r - info_[f].first_row));
    lens_.assign(1, static_cast<hsize_t>(stop - r));
    read_runs(f, x == nullptr ? nullptr : x + (r - begin) * features_,
              y == nullptr ? nullptr : y + (r - begin) * label_columns_);
    r = stop;
  }
}

}  // namespace tessera
