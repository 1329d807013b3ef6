// GradReducer: units and pieces are fixed at construction, so every rank posts the same
// reductions in the same order, and the step loop allocates nothing. Tiles report from any
// oneTBB thread (atomic counts per unit); only the main thread starts pieces and calls MPI.
#include "core/grad_reducer.h"

#include <algorithm>

#include "core/error.h"
#include "kernels/dense.h"
#include "kernels/optim.h"

namespace tessera {

namespace {

// Rows [r0, r1) x columns [c0, c1) of m (leading dim ld) hold a NaN or infinity. Serial: it runs
// inside the tile that just wrote the block, while the block is in cache.
bool block_non_finite(const float* m, int64_t ld, int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
  bool any = false;
  for (int64_t r = r0; r < r1; ++r) any |= kernels::has_non_finite_serial(m + r * ld + c0, c1 - c0);
  return any;
}

}  // namespace

GradReducer::GradReducer(const ModelSpec& spec, double bucket_mb, bool overlap, Communicator& comm)
    : GradReducer(spec, bucket_mb, overlap, comm, kernels::dense_tile_rows()) {}

GradReducer::GradReducer(const ModelSpec& spec, double bucket_mb, bool overlap, Communicator& comm,
                         int64_t tile_rows)
    : spec_(spec), comm_(comm), overlap_(overlap), tile_rows_(tile_rows),
      first_unit_(static_cast<size_t>(spec.layers())), layer_final_(static_cast<size_t>(spec.layers())) {
  TESSERA_CHECK(bucket_mb > 0 && tile_rows > 0, "bucket_mb and tile_rows must be positive");
  // Units in the order a backward pass finishes them: layers last first, rows in tile order.
  for (int l = spec.layers() - 1; l >= 0; --l) {
    first_unit_[static_cast<size_t>(l)] = static_cast<int>(units_.size());
    const int64_t in = spec.sizes[static_cast<size_t>(l)], out = spec.sizes[static_cast<size_t>(l) + 1];
    for (int64_t r = 0; r < out; r += tile_rows) {
      const int64_t rows = std::min(tile_rows, out - r);
      const int64_t bias = r + rows == out ? out : 0;
      units_.push_back({l, r, rows, spec.weight_offset(l) + r * in, rows * in + bias});
    }
  }
  // Pieces: runs of units, consecutive in that order and adjacent in memory (a layer's blocks
  // ascend; a one-block layer also joins the one after it, as whole-layer buckets did), closed
  // once they reach bucket_mb.
  const double limit = bucket_mb * 1024 * 1024;
  for (size_t i = 0; i < units_.size();) {
    Piece p{units_[i].offset, 0, static_cast<int>(i), static_cast<int>(i)};
    while (i < units_.size() && static_cast<double>(p.count) * sizeof(float) < limit) {
      const Unit& u = units_[i];
      if (p.count > 0 && u.offset != p.offset + p.count && u.offset + u.count != p.offset) break;
      p.offset = std::min(p.offset, u.offset);
      p.count += u.count;
      p.end_unit = static_cast<int>(++i);
    }
    pieces_.push_back(p);
  }
  done_ = std::make_unique<std::atomic<int64_t>[]>(units_.size());
}

GradReducer::~GradReducer() = default;

void GradReducer::begin(float* grads) {
  observing_.reset();
  grads_ = grads;
  started_ = 0;
  non_finite_ = false;
  tile_non_finite_.store(false);
  for (size_t u = 0; u < units_.size(); ++u) done_[u].store(0, std::memory_order_relaxed);
  std::fill(layer_final_.begin(), layer_final_.end(), 0);
  if (overlap_) observing_.emplace(static_cast<kernels::TileObserver&>(*this));
}

void GradReducer::add_rows(int layer, int64_t r0, int64_t r1, int64_t per_row) {
  const int first = first_unit_[static_cast<size_t>(layer)];
  for (int64_t r = r0; r < r1;) {
    const int64_t block = r / tile_rows_;
    const int64_t end = std::min(r1, (block + 1) * tile_rows_);
    done_[static_cast<size_t>(first + block)].fetch_add((end - r) * per_row, std::memory_order_release);
    r = end;
  }
}

void GradReducer::block_final(const float* m, int64_t ld, int64_t r0, int64_t r1, int64_t c0, int64_t c1,
                              kernels::Finite finite) {
  // Addresses compared as integers: m may be any kernel output, not only in the gradient buffer.
  const auto at = reinterpret_cast<uintptr_t>(m), base = reinterpret_cast<uintptr_t>(grads_);
  if (grads_ == nullptr || at < base || at >= base + static_cast<uintptr_t>(spec_.param_count()) * sizeof(float)) {
    return;
  }
  const int64_t offset = static_cast<int64_t>((at - base) / sizeof(float));
  for (int l = 0; l < spec_.layers(); ++l) {
    const size_t u = static_cast<size_t>(first_unit_[static_cast<size_t>(l)]);
    const bool weight = offset == units_[u].offset;  // a layer's first unit starts at its weights
    const bool bias = offset == units_[u].offset + spec_.sizes[static_cast<size_t>(l)] * spec_.sizes[static_cast<size_t>(l) + 1];
    if (!weight && !bias) continue;
    // Checked before it is counted, so a piece whose units are all reported is all checked:
    // by the kernel as it stored the block, or here. (A kNonFinite tile may be wider than the
    // block; any non-finite value anywhere flags the whole step, so that is the same verdict.)
    const bool bad = finite == kernels::Finite::kUnknown ? block_non_finite(m, ld, r0, r1, c0, c1)
                                                         : finite == kernels::Finite::kNonFinite;
    if (bad) tile_non_finite_.store(true, std::memory_order_relaxed);
    if (weight) {
      add_rows(l, r0, r1, c1 - c0);
    } else {  // the bias (1, out) rides in the layer's last unit
      const size_t last = static_cast<size_t>(first_unit_[static_cast<size_t>(l)]) +
                          static_cast<size_t>((spec_.sizes[static_cast<size_t>(l) + 1] - 1) / tile_rows_);
      done_[last].fetch_add((r1 - r0) * (c1 - c0), std::memory_order_release);
    }
    return;
  }
}

bool GradReducer::reported(const Piece& p) const {
  for (int u = p.first_unit; u < p.end_unit; ++u) {
    if (done_[static_cast<size_t>(u)].load(std::memory_order_acquire) < units_[static_cast<size_t>(u)].count) return false;
  }
  return true;
}

bool GradReducer::ready(const Piece& p) const {
  for (int u = p.first_unit; u < p.end_unit; ++u) {
    const Unit& unit = units_[static_cast<size_t>(u)];
    if (!layer_final_[static_cast<size_t>(unit.layer)] &&
        done_[static_cast<size_t>(u)].load(std::memory_order_acquire) < unit.count) {
      return false;
    }
  }
  return true;
}

void GradReducer::start(const Piece& p) {
  // A piece whose tiles all reported was checked by them; any other (overlap off, or a layer
  // completed by its hook alone) is checked here, before MPI may send it.
  if (!reported(p)) non_finite_ = non_finite_ || kernels::has_non_finite(grads_ + p.offset, p.count);
  comm_.start_allreduce_sum(std::span<float>(grads_ + p.offset, static_cast<size_t>(p.count)));
  ++started_;
}

// In the fixed order: a piece starts only once it and every piece before it are final, however
// the threads finished the tiles.
void GradReducer::start_ready() {
  while (started_ < static_cast<int>(pieces_.size()) && ready(pieces_[static_cast<size_t>(started_)])) {
    start(pieces_[static_cast<size_t>(started_)]);
  }
}

void GradReducer::between_tiles() {
  start_ready();
  comm_.progress();
}

void GradReducer::layer_done(int layer) {
  if (!overlap_) return;
  layer_final_[static_cast<size_t>(layer)] = 1;
  start_ready();
  comm_.progress();
}

void GradReducer::finish() {
  observing_.reset();
  while (started_ < static_cast<int>(pieces_.size())) start(pieces_[static_cast<size_t>(started_)]);
  comm_.wait_all();
}

}  // namespace tessera
