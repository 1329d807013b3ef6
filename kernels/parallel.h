// Fixed chunking for oneTBB loops and reductions.
// Every kernel splits its range into chunks whose boundaries depend only on the problem size,
// never on the thread count, so results are bitwise identical for any number of threads.
#pragma once

#include <cstdint>

namespace tessera::kernels {

// Most partial results a chunked reduction keeps (on the stack; kernels never allocate).
inline constexpr int64_t kMaxChunks = 1024;

// Chunk length for n items with at least min_chunk items per chunk and at most kMaxChunks chunks.
// A pure function of (n, min_chunk).
int64_t chunk_size(int64_t n, int64_t min_chunk);

// Calls body(begin, end) for consecutive chunks [k*chunk, min(n,(k+1)*chunk)), possibly in
// parallel on oneTBB's arena. body must only write data owned by its chunk.
template <class Body>
void for_chunks(int64_t n, int64_t chunk, const Body& body);

// Threads a loop started here can run on: the current arena's, capped by a tbb::global_control
// limit (the CLI's train.threads). Only tile shapes that no result depends on may use it.
int max_threads();

// Deterministic sum: body(begin, end) -> double for each chunk; partials are added in chunk order.
template <class Body>
double sum_chunks(int64_t n, int64_t chunk, const Body& body);

}  // namespace tessera::kernels

#include "kernels/parallel_impl.h"
