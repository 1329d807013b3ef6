// Hdf5Source: validation happens here, on exactly the rows handed to the trainer, so a bad
// value is reported by the rank that meets it (and that rank stops all ranks). The I/O thread's
// reads hold h5::lock() (inside Hdf5Dataset); its exceptions travel in the slot of the step
// that met them and are rethrown when the trainer asks for that step.
#include "io/hdf5_source.h"

#include <pthread.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <sstream>

#include "core/error.h"

namespace tessera {

namespace {

// True when no value is NaN or infinite: a branch-free OR over the exponent bits, which the
// compiler vectorizes (a per-value isfinite with an early exit costs ~1 ns per value).
bool all_finite(const float* x, int64_t n) {
  uint32_t special = 0;
  for (int64_t i = 0; i < n; ++i) {
    uint32_t bits;
    std::memcpy(&bits, x + i, 4);
    special |= static_cast<uint32_t>((bits & 0x7f800000u) == 0x7f800000u);
  }
  return special == 0;
}

std::string mib(int64_t bytes) { return std::to_string((bytes + (1 << 20) - 1) >> 20) + " MiB"; }
}  // namespace

void Hdf5Source::Slot::resize(int64_t n, int64_t features, int64_t label_columns) {
  const size_t un = static_cast<size_t>(n);
  rows.resize(un);
  x.resize(un * static_cast<size_t>(features));
  y.resize(un * static_cast<size_t>(label_columns));
  labels.resize(un);
  targets.resize(un * static_cast<size_t>(label_columns));
}

int64_t Hdf5Source::slot_bytes(int64_t n, int64_t features, int64_t label_columns) {
  return n * (8 + 4 * features + 8 * label_columns + 4 + 4 * label_columns);
}

int64_t Hdf5Source::staging_bytes() const {
  const int64_t n = slice_.size();
  // sorted rows, (row, slot) pairs, converted x and y, RawRows' conversion buffer, and the
  // dataset's buffer of joined runs (kSpanFactor x the rows, with their positions).
  const int64_t row = 4 * data_->features() + 8 * data_->label_columns();
  return n * (8 + 16 + row + data_->row_bytes() + Hdf5Dataset::kSpanFactor * (row + data_->row_bytes() + 8));
}

int64_t Hdf5Source::resident_bytes() const {
  const int64_t range = opt_.range_rows > 0 ? opt_.range_rows : slice_.size();
  // A source with no read-ahead budget (evaluation) only reads ranges on the calling thread:
  // it never allocates the staging buffers.
  const int64_t staging = opt_.memory_budget_bytes > 0 ? staging_bytes() : 0;
  return depth_ * slot_bytes(slice_.size(), data_->features(), data_->label_columns()) + staging +
         slot_bytes(range, data_->features(), data_->label_columns()) + data_->cache_bytes();
}

Hdf5Source::Hdf5Source(std::shared_ptr<Hdf5Dataset> data, const SourceOptions& opt)
    : data_(std::move(data)), opt_(opt),
      order_(data_->rows(), data_->order_chunk_rows(), opt.seed, opt.shuffle),
      io_order_(data_->rows(), data_->order_chunk_rows(), opt.seed, opt.shuffle) {
  slice_ = partition(opt_.global_batch, opt_.rank, opt_.world);
  max_rows_ = std::max<int64_t>({slice_.size(), opt_.range_rows, 1});
  if (opt_.labels && opt_.task != Task::kRegression && data_->label_columns() != 1) {
    throw DataError(data_->files()[0].path + ": dataset '" + data_->labels_name() + "' has " +
                    std::to_string(data_->label_columns()) +
                    " columns; classification and binary tasks need one label per row");
  }
  const int64_t slot = slot_bytes(slice_.size(), data_->features(), data_->label_columns());
  const int64_t fixed = resident_bytes();  // depth_ is still 0: everything but the ring
  depth_ = std::min(kMaxSlots, std::max<int64_t>(0, opt_.memory_budget_bytes - fixed) / std::max<int64_t>(slot, 1));
}

Hdf5Source::~Hdf5Source() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (io_.joinable()) io_.join();
}

void Hdf5Source::slice_rows(DataOrder& order, int64_t epoch, int64_t step, int64_t* out) {
  order.set_epoch(epoch);
  const int64_t base = step * opt_.global_batch;
  TESSERA_CHECK(base + opt_.global_batch <= data_->rows(), "step ", step, " past the epoch");
  order.rows_at(base + slice_.begin, base + slice_.end, out);
}

std::vector<int64_t> Hdf5Source::step_rows(int64_t epoch, int64_t step) {
  std::vector<int64_t> out(static_cast<size_t>(slice_.size()));
  slice_rows(order_, epoch, step, out.data());
  return out;
}

void Hdf5Source::advance(int64_t* epoch, int64_t* step) const {
  if (++*step == data_->rows() / opt_.global_batch) {
    *step = 0;
    ++*epoch;
  }
}

void Hdf5Source::start(int64_t epoch, int64_t step) {
  const int64_t slot = slot_bytes(slice_.size(), data_->features(), data_->label_columns());
  if (depth_ < 2) {
    throw ConfigError("config key 'data.memory_budget_mb': " + mib(opt_.memory_budget_bytes) +
                      " cannot hold two batches of this rank's " + std::to_string(slice_.size()) + " rows (" +
                      mib(2 * slot) + ") besides " + mib(resident_bytes() - depth_ * slot) +
                      " of read buffers and chunk caches: raise it or lower train.batch_size");
  }
  const int64_t n = slice_.size();
  sorted_rows_.resize(static_cast<size_t>(n));
  by_row_.resize(static_cast<size_t>(n));
  x_stage_.resize(static_cast<size_t>(n * data_->features()));
  y_stage_.resize(static_cast<size_t>(n * data_->label_columns()));
  ring_.resize(static_cast<size_t>(depth_));
  for (Slot& s : ring_) s.resize(n, data_->features(), data_->label_columns());
  fill_epoch_ = expect_epoch_ = epoch;
  fill_step_ = expect_step_ = step;
  io_ = std::thread([this] {
    pthread_setname_np(pthread_self(), kIoThreadName);  // visible in top -H, perf, gdb
    io_loop();
  });
}

void Hdf5Source::io_loop() {
  std::unique_lock<std::mutex> lk(mu_);
  for (;;) {
    cv_.wait(lk, [&] {
      if (stop_) return true;
      const bool room = write_pos_ - read_pos_ + (held_ ? 1 : 0) < depth_;
      const int64_t global = fill_epoch_ * (data_->rows() / opt_.global_batch) + fill_step_;
      return room && (opt_.steps == 0 || global < opt_.steps);
    });
    if (stop_) return;
    const uint64_t gen = generation_;
    const int64_t epoch = fill_epoch_, step = fill_step_;
    Slot& s = ring_[static_cast<size_t>(write_pos_ % depth_)];
    advance(&fill_epoch_, &fill_step_);
    lk.unlock();
    s.error = nullptr;
    try {
      fill(s, epoch, step);
    } catch (...) {
      s.error = std::current_exception();
    }
    lk.lock();
    if (gen != generation_) continue;  // the trainer restarted elsewhere while this was read
    s.epoch = epoch;
    s.step = step;
    ++write_pos_;
    cv_.notify_all();
  }
}

void Hdf5Source::fill(Slot& s, int64_t epoch, int64_t step) {
  const int64_t n = slice_.size();
  slice_rows(io_order_, epoch, step, s.rows.data());
  s.count = n;
  if (std::is_sorted(s.rows.begin(), s.rows.begin() + n)) {  // file order: no reordering copy
    data_->read_rows(s.rows.data(), n, s.x.data(), s.y.data());
    validate(s);
    return;
  }
  for (int64_t i = 0; i < n; ++i) by_row_[i] = {s.rows[i], i};
  std::sort(by_row_.begin(), by_row_.begin() + n);
  for (int64_t i = 0; i < n; ++i) sorted_rows_[i] = by_row_[i].first;
  data_->read_rows(sorted_rows_.data(), n, x_stage_.data(), y_stage_.data());
  // Back to batch order: slot by_row_[i].second receives sorted row i.
  const int64_t f = data_->features(), c = data_->label_columns();
  for (int64_t i = 0; i < n; ++i) {
    const int64_t slot = by_row_[i].second;
    std::copy_n(x_stage_.data() + i * f, f, s.x.data() + slot * f);
    std::copy_n(y_stage_.data() + i * c, c, s.y.data() + slot * c);
  }
  s.count = n;
  validate(s);
}

void Hdf5Source::start_read_ahead(int64_t epoch, int64_t step) {
  std::lock_guard<std::mutex> lk(mu_);
  if (!io_.joinable()) start(epoch, step);
}

Batch Hdf5Source::next(int64_t epoch, int64_t step) {
  TESSERA_CHECK(slice_.size() > 0, "rank ", opt_.rank, " has no rows in a batch of ", opt_.global_batch);
  std::unique_lock<std::mutex> lk(mu_);
  if (!io_.joinable()) start(epoch, step);
  held_ = false;  // the previous batch is released: its slot may be refilled
  if (epoch != expect_epoch_ || step != expect_step_) {
    ++generation_;
    write_pos_ = read_pos_;
    fill_epoch_ = expect_epoch_ = epoch;
    fill_step_ = expect_step_ = step;
  }
  cv_.notify_all();
  cv_.wait(lk, [&] { return write_pos_ > read_pos_; });
  const Slot& s = ring_[static_cast<size_t>(read_pos_ % depth_)];
  TESSERA_CHECK(s.epoch == epoch && s.step == step, "read-ahead out of sequence");
  ++read_pos_;
  held_ = true;
  advance(&expect_epoch_, &expect_step_);
  if (s.error) std::rethrow_exception(s.error);
  return view(s);
}

Batch Hdf5Source::read_range(int64_t begin, int64_t end) {
  const int64_t n = end - begin;
  TESSERA_CHECK(n > 0 && n <= max_rows_, "range of ", n, " rows, buffer holds ", max_rows_);
  if (static_cast<int64_t>(range_.labels.size()) < max_rows_) {
    range_.resize(max_rows_, data_->features(), data_->label_columns());
  }
  data_->read_range(begin, end, range_.x.data(), range_.y.data());
  for (int64_t i = 0; i < n; ++i) range_.rows[i] = begin + i;
  range_.count = n;
  validate(range_);
  return view(range_);
}

Batch Hdf5Source::view(const Slot& s) const {
  Batch b;
  b.x = s.x.data();
  b.rows = s.count;
  if (!opt_.labels) return b;
  if (opt_.task == Task::kRegression) {
    b.targets = s.targets.data();
  } else {
    b.labels = s.labels.data();
  }
  return b;
}

void Hdf5Source::validate(Slot& s) {
  const int64_t n = s.count, f = data_->features(), c = data_->label_columns();
  const int64_t* rows = s.rows.data();
  if (!all_finite(s.x.data(), n * f)) {  // find and name the first bad value
    for (int64_t i = 0; i < n; ++i) {
      const float* xi = s.x.data() + i * f;
      for (int64_t j = 0; j < f; ++j) {
        if (!std::isfinite(xi[j])) {
          std::ostringstream os;
          os << data_->where(rows[i]) << ", dataset '" << data_->features_name() << "' column " << j
             << ": feature is " << xi[j] << " (NaN and infinity are not allowed; clean the data)";
          throw DataError(os.str());
        }
      }
    }
  }
  if (!opt_.labels) return;
  if (opt_.task == Task::kRegression) {
    for (int64_t i = 0; i < n * c; ++i) {
      if (!std::isfinite(s.y[i])) {
        throw DataError(data_->where(rows[i / c]) + ", dataset '" + data_->labels_name() +
                        "': target is not finite");
      }
      s.targets[i] = static_cast<float>(s.y[i]);
    }
    return;
  }
  const int64_t k = opt_.task == Task::kBinary ? 2 : opt_.classes;
  for (int64_t i = 0; i < n; ++i) {
    const double v = s.y[i];
    if (!(v >= 0 && v < static_cast<double>(k) && v == std::floor(v))) {
      std::ostringstream os;
      os << data_->where(rows[i]) << ", dataset '" << data_->labels_name() << "': label " << v
         << " outside 0.." << k - 1
         << (opt_.task == Task::kBinary ? " (binary task labels are 0 or 1)"
                                        : " (labels must be integers 0..model.classes-1)");
      throw DataError(os.str());
    }
    s.labels[i] = static_cast<int32_t>(v);
  }
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
