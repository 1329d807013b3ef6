// Hdf5Dataset: one or more HDF5 files with the same schema seen as one table of rows.
// Opens and validates every file's schema up front (DESIGN §4); reads whole row ranges or
// sorted row sets (one hyperslab union per file), converting features to float32.
// Reads may come from any thread: each holds h5::lock() (HDF5 here is not thread-safe).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace tessera {

struct Hdf5FileInfo {
  std::string path;
  int64_t rows = 0;
  int64_t first_row = 0;   // global index of this file's row 0
  std::string x_dtype, y_dtype;
  int64_t x_chunk_rows = 0;  // 0 = contiguous storage
  int64_t bytes = 0;
};

class Hdf5Dataset {
 public:
  // Chunk length of the data order when the first file is not chunked.
  static constexpr int64_t kDefaultOrderChunk = 1024;

  // read_rows joins runs of wanted rows separated by fewer than this many bytes of other rows,
  // reading at most kSpanFactor times the wanted rows (staged in a buffer of that size).
  static constexpr int64_t kCoalesceBytes = 16 << 10;
  static constexpr int64_t kSpanFactor = 4;
  // Default bound on HDF5's chunk caches, all files and datasets together.
  static constexpr size_t kDefaultCacheBytes = size_t{1} << 30;

  // labels_name "" opens features only (prediction); label reads are then skipped.
  // cache_bytes bounds HDF5's chunk caches (all files and datasets together); each holds at
  // most a shuffle window of chunks.
  Hdf5Dataset(const std::vector<std::string>& paths, const std::string& features_name,
              const std::string& labels_name, size_t cache_bytes = kDefaultCacheBytes);
  ~Hdf5Dataset();
  Hdf5Dataset(const Hdf5Dataset&) = delete;
  Hdf5Dataset& operator=(const Hdf5Dataset&) = delete;

  int64_t rows() const { return rows_; }
  int64_t features() const { return features_; }
  int64_t label_columns() const { return label_columns_; }  // 1 for a 1-D label dataset
  bool labels_are_integer() const { return labels_integer_; }
  int64_t order_chunk_rows() const;
  const std::vector<Hdf5FileInfo>& files() const { return info_; }
  const std::string& features_name() const { return x_name_; }
  const std::string& labels_name() const { return y_name_; }
  // Chunk cache bytes HDF5 may fill: datasets that RawRows reads directly never use theirs.
  int64_t cache_bytes() const { return cache_in_use_; }
  // Stored bytes of x and y the reads so far covered (any thread may ask).
  int64_t bytes_read() const { return bytes_read_.load(std::memory_order_relaxed); }
  // Stored bytes of one row of x and y (the largest RawRows staging need per row).
  int64_t row_bytes() const { return row_bytes_; }

  // rows (count, strictly increasing global indices) -> x (count, features), y (count, label_columns).
  // Reads runs of consecutive rows, joining runs with small gaps (kCoalesceBytes).
  void read_rows(const int64_t* rows, int64_t count, float* x, double* y);
  // Global rows [begin, end) -> x, y as above. x == nullptr reads labels only.
  void read_range(int64_t begin, int64_t end, float* x, double* y);

  // "file.h5 row 17" for global row `row` (errors name the file and the file-local row).
  std::string where(int64_t row) const;
  // File index holding global row `row`.
  size_t file_of(int64_t row) const;

 private:
  struct Open;
  // Reads the row runs in starts_/lens_ of file f into x and y (either may be null).
  void read_runs(size_t f, float* x, double* y);
  std::string x_name_, y_name_;
  std::vector<Hdf5FileInfo> info_;
  std::vector<std::unique_ptr<Open>> open_;
  // hsize_t row runs of the current read: members, so their capacity is reused every step.
  std::vector<unsigned long long> starts_, lens_;
  std::vector<int64_t> keep_;        // position of each wanted row within the runs
  std::vector<float> span_x_;        // joined runs, gaps included (kSpanFactor x the rows)
  std::vector<double> span_y_;
  int64_t rows_ = 0, features_ = 0, label_columns_ = 1;
  int64_t cache_in_use_ = 0, row_bytes_ = 0;
  std::atomic<int64_t> bytes_read_{0};
  bool labels_integer_ = true;
};

}  // namespace tessera
