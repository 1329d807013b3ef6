// Lets the caller of the dense products act while a product runs: gradient reduction starts
// sending a block of weight-gradient rows as soon as its tiles are written, and lets MPI move
// data between tiles (MPI progresses only inside MPI calls, and a layer's GEMM is milliseconds).
// Kernels know nothing of MPI: they report finished output blocks and offer a poll point.
#pragma once

#include <atomic>
#include <cstdint>

namespace tessera::kernels {

// What the kernel that wrote a block saw of its values: kUnknown (not checked), kFinite (no NaN
// or infinity), kNonFinite (at least one in the tile that wrote the block, which may be larger
// than the block). Kernels that test their outputs in registers as they store them spare the
// observer a second pass over memory.
enum class Finite { kUnknown, kFinite, kNonFinite };

class TileObserver {
 public:
  virtual ~TileObserver() = default;
  // Rows [r0, r1) x columns [c0, c1) of the row-major float matrix at m (leading dim ld) hold
  // their final values. Called from any oneTBB thread, concurrently; must not block.
  virtual void block_final(const float* m, int64_t ld, int64_t r0, int64_t r1, int64_t c0,
                           int64_t c1, Finite finite) = 0;
  // Called between tiles, only on the thread that installed the observer (the main thread, the
  // only one allowed to call MPI), never on oneTBB workers.
  virtual void between_tiles() = 0;
};

namespace detail {
inline std::atomic<TileObserver*> g_tile_observer{nullptr};
inline thread_local TileObserver* t_tile_poller = nullptr;
}  // namespace detail

// Installs o for every product run until the guard ends; its between_tiles runs on this thread
// only. One observer at a time (std::logic_error otherwise). Not re-entrant across threads.
class ObserveTiles {
 public:
  explicit ObserveTiles(TileObserver& o);
  ~ObserveTiles();
  ObserveTiles(const ObserveTiles&) = delete;
  ObserveTiles& operator=(const ObserveTiles&) = delete;
};

// Reported by the weight-gradient tiles (dense_backward*). One atomic load when no observer.
inline void report_final(const float* m, int64_t ld, int64_t r0, int64_t r1, int64_t c0,
                         int64_t c1, Finite finite = Finite::kUnknown) {
  if (TileObserver* o = detail::g_tile_observer.load(std::memory_order_acquire)) {
    o->block_final(m, ld, r0, r1, c0, c1, finite);
  }
}

// The poll point of for_tiles. The poller is cleared while it runs, so a product started from
// inside between_tiles (or a tile stolen by this thread while it waits there) cannot re-enter it.
inline void poll_between_tiles() {
  TileObserver* o = detail::t_tile_poller;
  if (o == nullptr) return;
  detail::t_tile_poller = nullptr;
  struct Restore {
    TileObserver* o;
    ~Restore() {
      if (detail::g_tile_observer.load(std::memory_order_relaxed) == o) detail::t_tile_poller = o;
    }
  } restore{o};
  o->between_tiles();
}

}  // namespace tessera::kernels
