// ObserveTiles: one observer for the whole process (tiles on every thread report to it), one
// polling thread (the one that installed it).
#include "kernels/tile_observer.h"

#include <stdexcept>

namespace tessera::kernels {

ObserveTiles::ObserveTiles(TileObserver& o) {
  TileObserver* none = nullptr;
  if (!detail::g_tile_observer.compare_exchange_strong(none, &o, std::memory_order_acq_rel)) {
    throw std::logic_error("a tile observer is already installed");
  }
  detail::t_tile_poller = &o;
}

ObserveTiles::~ObserveTiles() {
  detail::t_tile_poller = nullptr;
  detail::g_tile_observer.store(nullptr, std::memory_order_release);
}

}  // namespace tessera::kernels
