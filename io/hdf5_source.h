// Hdf5Source: the HDF5 BatchSource. For global step t it computes the rows this rank trains on
// (core/data_order.h), reads only those rows (sorted, coalesced into runs of consecutive rows),
// puts them back in batch order and validates every value it hands out, naming file, dataset
// and row on error. Training steps are read ahead on one I/O thread into a ring of batch
// buffers sized from the memory budget, so the trainer finds its rows ready.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/batch_source.h"
#include "core/config.h"
#include "core/data_order.h"
#include "io/hdf5_dataset.h"

namespace tessera {

struct SourceOptions {
  Task task = Task::kClassification;
  int64_t classes = 0;        // classification: labels must lie in [0, classes)
  int64_t global_batch = 1;   // B; this rank reads partition(B, rank, world) of each step
  int rank = 0, world = 1;
  uint64_t seed = 1;
  bool shuffle = true;
  int64_t range_rows = 0;     // largest read_range() request (evaluation batch); 0 = local batch
  bool labels = true;         // false: features only (prediction), Batch has no labels
  // Resident bytes this source may hold: read-ahead ring, staging, the range buffer and the
  // dataset's chunk caches. Fewer than two batches fit: ConfigError on the first next().
  int64_t memory_budget_bytes = int64_t{256} << 20;
  int64_t steps = 0;          // global steps the run trains (read-ahead stops there); 0 = no end
};

// The name of each source's read-ahead thread.
inline constexpr char kIoThreadName[] = "tessera-io";

class Hdf5Source final : public BatchSource {
 public:
  // Read-ahead beyond this many batches buys nothing once the I/O thread keeps up.
  static constexpr int64_t kMaxSlots = 8;

  Hdf5Source(std::shared_ptr<Hdf5Dataset> data, const SourceOptions& opt);
  ~Hdf5Source() override;  // stops and joins the I/O thread (waits for at most one read)

  int64_t rows() const override { return data_->rows(); }
  int64_t features() const override { return data_->features(); }
  int64_t outputs() const override { return opt_.task == Task::kRegression ? data_->label_columns() : 1; }
  int64_t max_batch_rows() const override { return max_rows_; }
  // The first call starts the I/O thread at (epoch, step); it then reads the following steps
  // ahead. A call out of sequence discards the read-ahead and restarts there. An error met
  // reading or validating this step is rethrown here, unchanged (DataError naming file and row).
  Batch next(int64_t epoch, int64_t step) override;
  // Starts the I/O thread now at (epoch, step), so the first batches are read while the model is
  // set up; next() does this itself when not called. ConfigError when the budget is too small.
  void start_read_ahead(int64_t epoch, int64_t step);
  // Reads on the calling thread.
  Batch read_range(int64_t begin, int64_t end) override;

  // Global row indices this rank reads for (epoch, step), in batch order (for tests).
  std::vector<int64_t> step_rows(int64_t epoch, int64_t step);
  // Batches the read-ahead ring holds: as many as the budget allows, at most kMaxSlots; 0
  // until the I/O thread starts.
  int64_t slots() const { return static_cast<int64_t>(ring_.size()); }
  // Resident bytes this source holds at most (ring, staging, range buffer, chunk caches).
  int64_t resident_bytes() const;
  int64_t bytes_read() const override { return data_->bytes_read(); }

 private:
  // One batch: its rows in batch order, features and labels as handed to the trainer.
  struct Slot {
    int64_t epoch = -1, step = -1, count = 0;
    std::vector<int64_t> rows;
    std::vector<float> x;
    std::vector<double> y;
    std::vector<int32_t> labels;
    std::vector<float> targets;
    std::exception_ptr error;
    void resize(int64_t n, int64_t features, int64_t label_columns);
  };
  static int64_t slot_bytes(int64_t n, int64_t features, int64_t label_columns);
  int64_t staging_bytes() const;
  void start(int64_t epoch, int64_t step);
  void io_loop();
  // Reads and validates (epoch, step) into s. I/O thread only.
  void fill(Slot& s, int64_t epoch, int64_t step);
  void slice_rows(DataOrder& order, int64_t epoch, int64_t step, int64_t* out);
  // Checks s's first s.count rows (DataError naming file and row) and fills labels/targets.
  void validate(Slot& s);
  Batch view(const Slot& s) const;
  void advance(int64_t* epoch, int64_t* step) const;

  std::shared_ptr<Hdf5Dataset> data_;
  SourceOptions opt_;
  DataOrder order_;  // main thread (step_rows)
  Range slice_;
  int64_t max_rows_, depth_ = 0;
  Slot range_;       // read_range's buffers, sized on first use
  // I/O thread's own: its data order and sort/staging buffers.
  DataOrder io_order_;
  std::vector<int64_t> sorted_rows_;
  std::vector<std::pair<int64_t, int64_t>> by_row_;  // (row, slot) for sorting
  std::vector<float> x_stage_;
  std::vector<double> y_stage_;

  // The ring. Slot i % depth holds the i-th batch published since start; guarded by mu_.
  std::vector<Slot> ring_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::thread io_;
  bool stop_ = false, held_ = false;      // held_: the trainer still uses slot read_pos_ - 1
  uint64_t generation_ = 0;              // bumped by a restart; older fills are dropped
  int64_t read_pos_ = 0, write_pos_ = 0;  // batches consumed / published
  int64_t fill_epoch_ = 0, fill_step_ = 0;      // next position the I/O thread reads
  int64_t expect_epoch_ = 0, expect_step_ = 0;  // position of slot read_pos_
};

// Largest label + 1 over global rows [range.begin, range.end), validating that labels are
// non-negative integers (classification) and, when classes > 0, below classes — used to infer
// model.classes and to reject bad labels before training starts. Errors name file and row.
int64_t scan_classes(Hdf5Dataset& data, Range range, int64_t classes = 0);

}  // namespace tessera
