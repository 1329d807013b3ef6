// A product's tile runs on the stack of whichever oneTBB thread takes it and uses up to
// dense_tile_stack_bytes() of it. Without this, a thread's first tile of a deeper kind (a
// weight-gradient tile after only forward ones) faults fresh stack pages, ~10 µs each, inside a
// step: in steady state, whenever work stealing first hands that thread such a tile (seen as 5
// pages on a oneTBB worker in the 30th step of a run). WarmStacks touches that depth once per
// thread: the constructing thread at once, every other thread of its arena as it joins.
#pragma once

#include <tbb/task_scheduler_observer.h>

#include <cstdint>

namespace tessera::kernels {

// The frames between where a thread is warmed (an arena entry, the trainer's constructor) and
// its tiles: oneTBB's dispatch, for_tiles, the layer, the step.
constexpr int64_t kFramesAboveTiles = 64 * 1024;

class WarmStacks : public tbb::task_scheduler_observer {
 public:
  WarmStacks();
  ~WarmStacks() override;
  WarmStacks(const WarmStacks&) = delete;
  WarmStacks& operator=(const WarmStacks&) = delete;
  void on_scheduler_entry(bool worker) override;
};

// Touches `bytes` of stack below the caller's frame, one write per page.
void touch_stack(int64_t bytes);

}  // namespace tessera::kernels
