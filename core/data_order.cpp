// DataOrder: Fisher–Yates over chunk ids, then over the rows of each window, each seeded by
// (seed, epoch[, window]) so any rank can compute any part of the order independently.
#include "core/data_order.h"

#include <algorithm>
#include <numeric>

#include "core/error.h"
#include "core/rng.h"

namespace tessera {

namespace {
constexpr uint64_t kStreamChunks = 0xc4a1;
constexpr uint64_t kStreamWindow = 0x3d0f;
}  // namespace

Range partition(int64_t n, int rank, int world) {
  TESSERA_CHECK(world > 0 && rank >= 0 && rank < world, "bad rank ", rank, " of ", world);
  const int64_t base = n / world, extra = n % world;
  const int64_t begin = rank * base + std::min<int64_t>(rank, extra);
  return {begin, begin + base + (rank < extra ? 1 : 0)};
}

DataOrder::DataOrder(int64_t rows, int64_t chunk_rows, uint64_t seed, bool shuffle)
    : rows_(rows), chunk_rows_(chunk_rows), seed_(seed), shuffle_(shuffle) {
  TESSERA_CHECK(rows > 0 && chunk_rows > 0, "rows ", rows, " chunk_rows ", chunk_rows);
  chunks_ = (rows + chunk_rows - 1) / chunk_rows;
}

void DataOrder::set_epoch(int64_t epoch) {
  if (epoch == epoch_) return;
  epoch_ = epoch;
  cached_window_ = -1;
  if (!shuffle_) return;
  chunk_perm_.resize(static_cast<size_t>(chunks_));
  std::iota(chunk_perm_.begin(), chunk_perm_.end(), int64_t{0});
  Rng rng(seed_, hash3(kStreamChunks, static_cast<uint64_t>(epoch), 0));
  for (int64_t i = chunks_ - 1; i > 0; --i) {
    std::swap(chunk_perm_[i], chunk_perm_[rng.below(static_cast<uint64_t>(i + 1))]);
  }
  const int64_t windows = (chunks_ + kWindowChunks - 1) / kWindowChunks;
  window_start_.assign(static_cast<size_t>(windows + 1), 0);
  int64_t pos = 0;
  for (int64_t w = 0; w < windows; ++w) {
    window_start_[w] = pos;
    for (int64_t c = w * kWindowChunks; c < std::min(chunks_, (w + 1) * kWindowChunks); ++c) {
      const int64_t first = chunk_perm_[c] * chunk_rows_;
      pos += std::min(rows_, first + chunk_rows_) - first;
    }
  }
  window_start_[windows] = pos;
  TESSERA_CHECK(pos == rows_, "window sizes add to ", pos, " not ", rows_);
}

void DataOrder::load_window(int64_t w) {
  if (w == cached_window_) return;
  window_rows_.clear();
  for (int64_t c = w * kWindowChunks; c < std::min(chunks_, (w + 1) * kWindowChunks); ++c) {
    const int64_t first = chunk_perm_[c] * chunk_rows_;
    for (int64_t r = first; r < std::min(rows_, first + chunk_rows_); ++r) window_rows_.push_back(r);
  }
  Rng rng(seed_, hash3(kStreamWindow, static_cast<uint64_t>(epoch_), static_cast<uint64_t>(w)));
  for (int64_t i = static_cast<int64_t>(window_rows_.size()) - 1; i > 0; --i) {
    std::swap(window_rows_[i], window_rows_[rng.below(static_cast<uint64_t>(i + 1))]);
  }
  cached_window_ = w;
}

void DataOrder::rows_at(int64_t begin, int64_t end, int64_t* out) {
  TESSERA_CHECK(epoch_ >= 0, "set_epoch must be called before rows_at");
  TESSERA_CHECK(0 <= begin && begin <= end && end <= rows_, "positions [", begin, ",", end,
                ") outside ", rows_, " rows");
  if (!shuffle_) {
    for (int64_t p = begin; p < end; ++p) out[p - begin] = p;
    return;
  }
  int64_t p = begin;
  while (p < end) {
    // Last window whose start is <= p.
    const auto it = std::upper_bound(window_start_.begin(), window_start_.end(), p);
    const int64_t w = static_cast<int64_t>(it - window_start_.begin()) - 1;
    load_window(w);
    const int64_t stop = std::min(end, window_start_[w + 1]);
    for (; p < stop; ++p) out[p - begin] = window_rows_[static_cast<size_t>(p - window_start_[w])];
  }
}

}  // namespace tessera
