// Counts malloc calls while armed, by interposing glibc's malloc (operator new, Eigen's aligned
// malloc and oneDNN's allocations all end there). Include it in exactly one source file of a
// test binary: it defines malloc. Off (TESSERA_COUNT_MALLOC 0) under sanitizers, which
// interpose malloc themselves, and off glibc.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>

#if defined(__SANITIZE_ADDRESS__)
#define TESSERA_COUNT_MALLOC 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(memory_sanitizer) || \
    __has_feature(thread_sanitizer)
#define TESSERA_COUNT_MALLOC 0
#endif
#endif
#if !defined(TESSERA_COUNT_MALLOC) && defined(__GLIBC__)
#define TESSERA_COUNT_MALLOC 1
#endif
#if !defined(TESSERA_COUNT_MALLOC)
#define TESSERA_COUNT_MALLOC 0
#endif

// The counters exist in every build (so callers compile the same); only a build that counts
// (TESSERA_COUNT_MALLOC) defines malloc below.
namespace malloc_count {
inline std::atomic<bool> armed{false};
inline std::atomic<int64_t> calls{0};
// When set, a call is counted only where this returns false (e.g. on a thread off the step).
inline bool (*skip)() = nullptr;

// The hook is live: a plain malloc while armed is counted.
inline void expect_live() {
  calls = 0;
  armed = true;
  void* volatile probe = std::malloc(64);
  armed = false;
  std::free(probe);
  ASSERT_EQ(calls.load(), 1) << "malloc interposition is not active";
}
}  // namespace malloc_count

#if TESSERA_COUNT_MALLOC
extern "C" void* __libc_malloc(size_t size);
extern "C" void* malloc(size_t size) {
  if (malloc_count::armed.load(std::memory_order_relaxed) &&
      (malloc_count::skip == nullptr || !malloc_count::skip())) {
    malloc_count::calls.fetch_add(1);
  }
  return __libc_malloc(size);
}
#endif
