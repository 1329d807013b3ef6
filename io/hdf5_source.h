// Hdf5Source: the HDF5 BatchSource. For global step t it computes the rows this rank trains on
// (core/data_order.h), reads only those rows (sorted, coalesced into hyperslabs), puts them back
// in batch order and validates every value it hands out, naming file, dataset and row on error.
#pragma once

#include <cstdint>
#include <memory>
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
};

class Hdf5Source final : public BatchSource {
 public:
  Hdf5Source(std::shared_ptr<Hdf5Dataset> data, const SourceOptions& opt);

  int64_t rows() const override { return data_->rows(); }
  int64_t features() const override { return data_->features(); }
  int64_t outputs() const override { return opt_.task == Task::kRegression ? data_->label_columns() : 1; }
  int64_t max_batch_rows() const override { return max_rows_; }
  Batch next(int64_t epoch, int64_t step) override;
  Batch read_range(int64_t begin, int64_t end) override;

  // Global row indices this rank reads for (epoch, step), in batch order (for tests).
  std::vector<int64_t> step_rows(int64_t epoch, int64_t step);

 private:
  // This rank's global rows of (epoch, step) in batch order -> out (slice size).
  void slice_rows(int64_t epoch, int64_t step, int64_t* out);
  Batch finish(int64_t count, const int64_t* rows_in_batch_order);

  std::shared_ptr<Hdf5Dataset> data_;
  SourceOptions opt_;
  DataOrder order_;
  Range slice_;
  int64_t max_rows_;
  std::vector<int64_t> rows_, sorted_rows_;
  std::vector<std::pair<int64_t, int64_t>> by_row_;  // (row, slot) for sorting
  std::vector<float> x_stage_, x_;
  std::vector<double> y_stage_, y_;
  std::vector<int32_t> labels_;
  std::vector<float> targets_;
};

// Largest label + 1 over global rows [range.begin, range.end), validating that labels are
// non-negative integers (classification) and, when classes > 0, below classes — used to infer
// model.classes and to reject bad labels before training starts. Errors name file and row.
int64_t scan_classes(Hdf5Dataset& data, Range range, int64_t classes = 0);

}  // namespace tessera
