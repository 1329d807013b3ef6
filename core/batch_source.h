// BatchSource: where a rank's rows come from (io/hdf5_source.h reads HDF5). The trainer asks for
// its slice of each global step; evaluation asks for contiguous row ranges.
#pragma once

#include <cstdint>

namespace tessera {

// Views into the source's reused buffers; valid until the source's next call.
struct Batch {
  const float* x = nullptr;          // (rows, features)
  const int32_t* labels = nullptr;   // (rows) classification and binary tasks
  const float* targets = nullptr;    // (rows, outputs) regression
  int64_t rows = 0;
};

class BatchSource {
 public:
  virtual ~BatchSource() = default;
  virtual int64_t rows() const = 0;      // rows of the whole dataset (all files)
  virtual int64_t features() const = 0;
  virtual int64_t outputs() const = 0;   // label columns for regression, else 1
  // Largest Batch::rows any call returns (sizes the model's activation arena).
  virtual int64_t max_batch_rows() const = 0;

  // This rank's rows of global step `step` of `epoch`, in the order of core/data_order.h.
  virtual Batch next(int64_t epoch, int64_t step) = 0;
  // Rows [begin, end) in file order; end - begin <= max_batch_rows().
  virtual Batch read_range(int64_t begin, int64_t end) = 0;
  // Bytes read from storage so far (for metrics; safe from any thread). In-memory sources
  // read none.
  virtual int64_t bytes_read() const { return 0; }
};

}  // namespace tessera
