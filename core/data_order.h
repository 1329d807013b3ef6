// The data order of DESIGN §3: a pure function of (seed, epoch, rows, chunk_rows). Chunks of
// chunk_rows consecutive rows are permuted, then rows are permuted inside windows of
// kWindowChunks consecutive (permuted) chunks. Global step t trains on positions [tB, (t+1)B);
// rank r of N takes the contiguous slice partition(B, r, N) of them. Nothing depends on N.
#pragma once

#include <cstdint>
#include <vector>

namespace tessera {

struct Range {
  int64_t begin = 0;
  int64_t end = 0;
  int64_t size() const { return end - begin; }
};

// [begin, end) of rank's share of n items; shares differ by at most one, lower ranks larger.
Range partition(int64_t n, int rank, int world);

class DataOrder {
 public:
  // Window of this many chunks bounds the memory a streaming reader needs to shuffle rows.
  static constexpr int64_t kWindowChunks = 16;

  DataOrder(int64_t rows, int64_t chunk_rows, uint64_t seed, bool shuffle);
  int64_t rows() const { return rows_; }
  int64_t chunk_rows() const { return chunk_rows_; }

  // Selects the epoch whose order rows_at() reports. Cheap: O(rows / chunk_rows).
  void set_epoch(int64_t epoch);
  // out[i] = row at position begin + i of this epoch's order, for i < end - begin.
  // Not thread-safe (caches the current window). Allocates only when a larger window is seen.
  void rows_at(int64_t begin, int64_t end, int64_t* out);

 private:
  void load_window(int64_t w);

  int64_t rows_, chunk_rows_, chunks_;
  uint64_t seed_;
  bool shuffle_;
  int64_t epoch_ = -1;
  std::vector<int64_t> chunk_perm_;    // chunk id at each chunk position
  std::vector<int64_t> window_start_;  // first position of each window (+ rows_ at the end)
  int64_t cached_window_ = -1;
  std::vector<int64_t> window_rows_;   // rows of the cached window, shuffled
};

}  // namespace tessera
