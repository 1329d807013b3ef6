// GradReducer: sums the flat gradient over ranks in fixed pieces (STYLE §8.5, flashlight's
// CoalescingReducer). A layer's gradient is cut where its weight-gradient GEMM's row tiles end
// (dw (out, in) is row-major, so a block of rows is contiguous; the bias follows the last block),
// and consecutive blocks of a layer merge until a piece holds distributed.bucket_mb. With overlap,
// a piece's sum starts as soon as backward has written it and every piece before it, and MPI is
// progressed between GEMM tiles; without, every piece starts after backward. Pieces and order are
// the same either way, and do not depend on the thread count, so neither are the bits.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "core/communicator.h"
#include "core/model.h"
#include "kernels/tile_observer.h"

namespace tessera {

class GradReducer final : private kernels::TileObserver {
 public:
  struct Piece {
    int64_t offset = 0, count = 0;  // its span of the flat gradient buffer
    int first_unit = 0, end_unit = 0;  // row blocks [first, end) of units() it covers
  };
  // A block of a layer's weight-gradient rows (the last one with the layer's bias): the smallest
  // thing backward reports as final.
  struct Unit {
    int layer = 0;
    int64_t row0 = 0, rows = 0;     // rows [row0, row0 + rows) of the layer's dw
    int64_t offset = 0, count = 0;  // span in the flat buffer (bias included in the last unit)
  };

  // bucket_mb: a piece closes once it holds at least this many MiB, or at the end of a layer.
  // tile_rows: rows per unit, kernels::dense_tile_rows() (the engine's dw tiles).
  GradReducer(const ModelSpec& spec, double bucket_mb, bool overlap, Communicator& comm,
              int64_t tile_rows);
  GradReducer(const ModelSpec& spec, double bucket_mb, bool overlap, Communicator& comm);
  ~GradReducer() override;

  // Before backward, on the main thread: nothing is in flight. With overlap, installs this
  // reducer as the kernels' tile observer until finish().
  void begin(float* grads);
  // Backward's layer_done hook: layer's gradients are final. Main thread.
  void layer_done(int layer);
  // After backward: starts what is left and waits (collective). Afterwards grads hold the sum.
  void finish();
  // Whether this rank's own gradients (before the sum) held a NaN or infinity. Every value is
  // checked: by the tile that wrote it, or when its piece starts.
  bool local_non_finite() const { return non_finite_ || tile_non_finite_.load(); }

  const std::vector<Piece>& pieces() const { return pieces_; }
  const std::vector<Unit>& units() const { return units_; }
  // Pieces started so far in this step (for tests).
  int started() const { return started_; }

 private:
  void block_final(const float* m, int64_t ld, int64_t r0, int64_t r1, int64_t c0, int64_t c1,
                   kernels::Finite finite) override;
  void between_tiles() override;
  bool ready(const Piece& p) const;
  bool reported(const Piece& p) const;
  void start_ready();
  void start(const Piece& p);
  void add_rows(int layer, int64_t r0, int64_t r1, int64_t elements_per_row);

  ModelSpec spec_;
  Communicator& comm_;
  bool overlap_;
  int64_t tile_rows_;
  std::vector<Unit> units_;        // in the order backward finishes them: last layer first
  std::vector<Piece> pieces_;      // in reduction order
  std::vector<int> first_unit_;    // per layer: its first unit
  std::unique_ptr<std::atomic<int64_t>[]> done_;  // per unit: elements reported final
  std::vector<char> layer_final_;  // per layer: layer_done was called this step
  std::optional<kernels::ObserveTiles> observing_;  // with overlap, from begin() to finish()
  float* grads_ = nullptr;
  int started_ = 0;
  bool non_finite_ = false;
  std::atomic<bool> tile_non_finite_{false};
};

}  // namespace tessera
