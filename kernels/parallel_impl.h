// Template bodies of kernels/parallel.h (kept apart so the contract header stays short).
#pragma once

#include <tbb/blocked_range.h>
#include <tbb/global_control.h>
#include <tbb/parallel_for.h>
#include <tbb/partitioner.h>
#include <tbb/task_arena.h>

#include <algorithm>

namespace tessera::kernels {

inline int64_t chunk_size(int64_t n, int64_t min_chunk) {
  if (min_chunk < 1) min_chunk = 1;
  const int64_t by_count = (n + kMaxChunks - 1) / kMaxChunks;
  return std::max(min_chunk, by_count);
}

inline int max_threads() {
  const size_t arena = static_cast<size_t>(tbb::this_task_arena::max_concurrency());
  const size_t limit =
      tbb::global_control::active_value(tbb::global_control::max_allowed_parallelism);
  return static_cast<int>(std::min(arena, limit));
}

template <class Body>
void for_chunks(int64_t n, int64_t chunk, const Body& body) {
  if (n <= 0) return;
  const int64_t chunks = (n + chunk - 1) / chunk;
  if (chunks == 1) {
    body(int64_t{0}, n);
    return;
  }
  tbb::parallel_for(
      tbb::blocked_range<int64_t>(0, chunks, 1),
      [&](const tbb::blocked_range<int64_t>& r) {
        for (int64_t c = r.begin(); c < r.end(); ++c) body(c * chunk, std::min(n, (c + 1) * chunk));
      },
      tbb::simple_partitioner());
}

template <class Body>
double sum_chunks(int64_t n, int64_t chunk, const Body& body) {
  if (n <= 0) return 0.0;
  chunk = chunk_size(n, chunk);  // never more partials than the stack array holds
  const int64_t count = (n + chunk - 1) / chunk;
  double partial[kMaxChunks];
  for_chunks(n, chunk, [&](int64_t b, int64_t e) { partial[b / chunk] = body(b, e); });
  double total = 0.0;
  for (int64_t c = 0; c < count; ++c) total += partial[c];
  return total;
}

}  // namespace tessera::kernels
