// WarmStacks: a oneTBB worker that joins the arena after a trainer's WarmStacks exists can take
// a tile as deep as dense_tile_stack_bytes() without faulting a page; without it, its first
// deep tile faulted fresh stack pages in the middle of a step. ctest runs each test in its own
// process, so the worker here is fresh: its stack holds only what oneTBB touched.
#include <gtest/gtest.h>
#include <tbb/global_control.h>

#include <algorithm>
#include <atomic>
#include <thread>

#include "kernels/dense.h"
#include "kernels/warm_stacks.h"
#include "tests/tbb_threads.h"

namespace tessera::kernels {
namespace {

TEST(WarmStacks, WorkerTakesADeepTileWithoutFaulting) {
  tbb::global_control threads(tbb::global_control::max_allowed_parallelism, 2);
  WarmStacks warm;
  const int64_t tile = dense_tile_stack_bytes();
  // Past what was warmed: these pages must fault, or the count below could not see any.
  const int64_t beyond = std::min<int64_t>(2 * tile + 2 * kFramesAboveTiles, 3 << 20);
  const auto main_id = std::this_thread::get_id();
  std::atomic<bool> worker_ran{false};
  std::atomic<int64_t> tile_faults{-1}, beyond_faults{-1};
  testing::on_every_thread(2, [&] {
    if (std::this_thread::get_id() == main_id) return;
    worker_ran = true;
    int64_t f0 = testing::thread_faults();
    touch_stack(tile);
    tile_faults = testing::thread_faults() - f0;
    f0 = testing::thread_faults();
    touch_stack(beyond);
    beyond_faults = testing::thread_faults() - f0;
  });
  ASSERT_TRUE(worker_ran) << "no oneTBB worker joined within 10 s";
  EXPECT_EQ(tile_faults, 0) << "stack pages faulted by a " << tile << "-byte tile on a warmed worker";
  EXPECT_GT(beyond_faults, 0) << "touching " << beyond << " bytes of stack faulted nothing: the count is blind";
}

}  // namespace
}  // namespace tessera::kernels
