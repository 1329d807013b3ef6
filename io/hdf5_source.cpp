// Hdf5Source: validation happens here, on exactly the rows handed to the trainer, so a bad
// value is reported by the rank that meets it (and that rank stops all ranks).
#include "io/hdf5_source.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "core/error.h"

namespace tessera {

Hdf5Source::Hdf5Source(std::shared_ptr<Hdf5Dataset> data, const SourceOptions& opt)
    : data_(std::move(data)), opt_(opt),
      order_(data_->rows(), data_->order_chunk_rows(), opt.seed, opt.shuffle) {
  slice_ = partition(opt_.global_batch, opt_.rank, opt_.world);
  max_rows_ = std::max<int64_t>({slice_.size(), opt_.range_rows, 1});
  const size_t n = static_cast<size_t>(max_rows_);
  rows_.resize(n);
  sorted_rows_.resize(n);
  by_row_.resize(n);
  x_stage_.resize(n * static_cast<size_t>(data_->features()));
  x_.resize(x_stage_.size());
  y_stage_.resize(n * static_cast<size_t>(data_->label_columns()));
  y_.resize(y_stage_.size());
  labels_.resize(n);
  targets_.resize(y_stage_.size());
  if (opt_.labels && opt_.task != Task::kRegression && data_->label_columns() != 1) {
    throw DataError(data_->files()[0].path + ": dataset '" + data_->labels_name() + "' has " +
                    std::to_string(data_->label_columns()) +
                    " columns; classification and binary tasks need one label per row");
  }
}

void Hdf5Source::slice_rows(int64_t epoch, int64_t step, int64_t* out) {
  order_.set_epoch(epoch);
  const int64_t base = step * opt_.global_batch;
  TESSERA_CHECK(base + opt_.global_batch <= data_->rows(), "step ", step, " past the epoch");
  order_.rows_at(base + slice_.begin, base + slice_.end, out);
}

std::vector<int64_t> Hdf5Source::step_rows(int64_t epoch, int64_t step) {
  std::vector<int64_t> out(static_cast<size_t>(slice_.size()));
  slice_rows(epoch, step, out.data());
  return out;
}

Batch Hdf5Source::next(int64_t epoch, int64_t step) {
  const int64_t n = slice_.size();
  TESSERA_CHECK(n > 0, "rank ", opt_.rank, " has no rows in a batch of ", opt_.global_batch);
  slice_rows(epoch, step, rows_.data());
  for (int64_t i = 0; i < n; ++i) by_row_[i] = {rows_[i], i};
  std::sort(by_row_.begin(), by_row_.begin() + n);
  for (int64_t i = 0; i < n; ++i) sorted_rows_[i] = by_row_[i].first;
  data_->read_rows(sorted_rows_.data(), n, x_stage_.data(), y_stage_.data());
  // Back to batch order: slot by_row_[i].second receives sorted row i.
  const int64_t f = data_->features(), c = data_->label_columns();
  for (int64_t i = 0; i < n; ++i) {
    const int64_t slot = by_row_[i].second;
    std::copy_n(x_stage_.data() + i * f, f, x_.data() + slot * f);
    std::copy_n(y_stage_.data() + i * c, c, y_.data() + slot * c);
  }
  return finish(n, rows_.data());
}

Batch Hdf5Source::read_range(int64_t begin, int64_t end) {
  const int64_t n = end - begin;
  TESSERA_CHECK(n > 0 && n <= max_rows_, "range of ", n, " rows, buffer holds ", max_rows_);
  data_->read_range(begin, end, x_.data(), y_.data());
  for (int64_t i = 0; i < n; ++i) rows_[i] = begin + i;
  return finish(n, rows_.data());
}

Batch Hdf5Source::finish(int64_t n, const int64_t* rows) {
  const int64_t f = data_->features(), c = data_->label_columns();
  for (int64_t i = 0; i < n; ++i) {
    const float* xi = x_.data() + i * f;
    for (int64_t j = 0; j < f; ++j) {
      if (!std::isfinite(xi[j])) {
        std::ostringstream os;
        os << data_->where(rows[i]) << ", dataset '" << data_->features_name() << "' column " << j
           << ": feature is " << xi[j] << " (NaN and infinity are not allowed; clean the data)";
        throw DataError(os.str());
      }
    }
  }
  Batch b;
  b.x = x_.data();
  b.rows = n;
  if (!opt_.labels) return b;
  if (opt_.task == Task::kRegression) {
    for (int64_t i = 0; i < n * c; ++i) {
      if (!std::isfinite(y_[i])) {
        throw DataError(data_->where(rows[i / c]) + ", dataset '" + data_->labels_name() +
                        "': target is not finite");
      }
      targets_[i] = static_cast<float>(y_[i]);
    }
    b.targets = targets_.data();
    return b;
  }
  const int64_t k = opt_.task == Task::kBinary ? 2 : opt_.classes;
  for (int64_t i = 0; i < n; ++i) {
    const double v = y_[i];
    if (!(v >= 0 && v < static_cast<double>(k) && v == std::floor(v))) {
      std::ostringstream os;
      os << data_->where(rows[i]) << ", dataset '" << data_->labels_name() << "': label " << v
         << " outside 0.." << k - 1
         << (opt_.task == Task::kBinary ? " (binary task labels are 0 or 1)"
                                        : " (labels must be integers 0..model.classes-1)");
      throw DataError(os.str());
    }
    labels_[i] = static_cast<int32_t>(v);
  }
  b.labels = labels_.data();
  return b;
}

int64_t scan_classes(Hdf5Dataset& data, Range range, int64_t classes) {
  constexpr int64_t kBlock = 1 << 16;
  std::vector<double> y(static_cast<size_t>(kBlock * data.label_columns()));
  int64_t top = -1;
  for (int64_t b = range.begin; b < range.end; b += kBlock) {
    const int64_t e = std::min(range.end, b + kBlock);
    data.read_range(b, e, nullptr, y.data());
    for (int64_t i = 0; i < e - b; ++i) {
      const double v = y[static_cast<size_t>(i * data.label_columns())];
      if (!(v >= 0 && v == std::floor(v) && v < 2147483647.0)) {
        std::ostringstream os;
        os << data.where(b + i) << ", dataset '" << data.labels_name() << "': label " << v
           << " is not a class index (classification labels are integers 0..K-1)";
        throw DataError(os.str());
      }
      if (classes > 0 && v >= static_cast<double>(classes)) {
        std::ostringstream os;
        os << data.where(b + i) << ", dataset '" << data.labels_name() << "': label " << v << " outside 0.."
           << classes - 1
           << (classes == 2 ? " (binary task labels are 0 or 1; labels must be integers 0..model.classes-1 for classification)"
                            : " (labels must be integers 0..model.classes-1)");
        throw DataError(os.str());
      }
      top = std::max(top, static_cast<int64_t>(v));
    }
  }
  return top + 1;
}

}  // namespace tessera
