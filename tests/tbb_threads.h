// Test helpers for code that runs on oneTBB's threads.
#pragma once

#include <sys/resource.h>
#include <tbb/parallel_for.h>
#include <tbb/partitioner.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>

namespace tessera::testing {

// Page faults (minor + major) of the calling thread so far: one syscall, no allocation.
inline int64_t thread_faults() {
  rusage u{};
  getrusage(RUSAGE_THREAD, &u);
  return u.ru_minflt + u.ru_majflt;
}

// Runs f once on each of `threads` threads after all of them have arrived. oneTBB starts its
// workers lazily and asynchronously, so this is how a test knows they are up. Bounded: after
// 10 s the threads that came run f anyway, so a worker that never comes fails the caller's
// check, not the whole test run (a hang).
template <class F>
void on_every_thread(int threads, F f) {
  std::atomic<int> arrived{0};
  tbb::parallel_for(
      0, threads,
      [&](int) {
        arrived.fetch_add(1);
        const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        while (arrived.load() < threads && std::chrono::steady_clock::now() < give_up) {
          std::this_thread::yield();
        }
        f();
      },
      tbb::static_partitioner());
}

}  // namespace tessera::testing
