#include "kernels/warm_stacks.h"

#include <alloca.h>

#include "kernels/dense.h"

namespace tessera::kernels {
namespace {
constexpr int64_t kPage = 4096;
// Per thread, not per observer: a thread stays warm whichever trainer warmed it.
thread_local bool t_warm = false;

void warm_this_thread() {
  if (t_warm) return;
  touch_stack(dense_tile_stack_bytes() + kFramesAboveTiles);
  t_warm = true;
}
}  // namespace

[[gnu::noinline]] void touch_stack(int64_t bytes) {
  // From the top down, the way the stack grows: the main thread's stack is extended one guard
  // gap at a time.
  volatile char* p = static_cast<volatile char*>(alloca(static_cast<size_t>(bytes)));
  for (int64_t i = bytes - 1; i >= 0; i -= kPage) p[i] = 0;
  p[0] = 0;
}

WarmStacks::WarmStacks() {
  warm_this_thread();
  observe(true);
}

WarmStacks::~WarmStacks() { observe(false); }

void WarmStacks::on_scheduler_entry(bool) { warm_this_thread(); }

}  // namespace tessera::kernels
