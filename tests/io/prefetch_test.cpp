// Hdf5Source's read-ahead (io/hdf5_source.h): batches in and out of sequence are the rows of
// the data order; an error met on the I/O thread surfaces from next() of that step as the
// same DataError naming file and row, and nothing hangs; the ring fits data.memory_budget_mb.
#include <gtest/gtest.h>

#include <chrono>
#include <limits>
#include <thread>
#include <memory>

#include "core/error.h"
#include "io/hdf5_source.h"
#include "tests/io/error_matchers.h"
#include "tests/io/test_files.h"

namespace tessera {
namespace {

using testing::TableSpec;
using testing::TempDir;

SourceOptions opts(int64_t batch, int64_t budget_bytes) {
  SourceOptions o;
  o.classes = 5;
  o.global_batch = batch;
  o.seed = 3;
  o.memory_budget_bytes = budget_bytes;
  return o;
}

std::shared_ptr<Hdf5Dataset> table(const TempDir& dir, int64_t rows, int64_t chunk) {
  TableSpec t;
  t.rows = rows;
  t.features = 6;
  t.chunk_rows = static_cast<hsize_t>(chunk);
  write_table(dir.file("t.h5"), t);
  return std::make_shared<Hdf5Dataset>(std::vector<std::string>{dir.file("t.h5")}, "X", "y");
}

void expect_rows(const Batch& b, const std::vector<int64_t>& rows) {
  ASSERT_EQ(b.rows, static_cast<int64_t>(rows.size()));
  for (size_t i = 0; i < rows.size(); ++i) {
    ASSERT_EQ(b.x[i * 6 + 1], testing::x_value(rows[i], 1)) << "slot " << i;
    ASSERT_EQ(b.labels[i], testing::label_value(rows[i], 5)) << "slot " << i;
  }
}

TEST(Prefetch, SequentialAcrossEpochsAndOutOfSequenceRestarts) {
  TempDir dir;
  Hdf5Source src(table(dir, 500, 20), opts(32, 1 << 20));
  const int64_t per_epoch = 500 / 32;
  for (int64_t e = 0; e < 3; ++e) {
    for (int64_t s = 0; s < per_epoch; ++s) expect_rows(src.next(e, s), src.step_rows(e, s));
  }
  // Jumps backwards and forwards (a resume, a test) discard the read-ahead.
  const int64_t jumps[][2] = {{1, 7}, {0, 0}, {5, 3}, {5, 4}, {2, per_epoch - 1}, {3, 0}};
  for (const auto& j : jumps) expect_rows(src.next(j[0], j[1]), src.step_rows(j[0], j[1]));
  EXPECT_GE(src.slots(), 2);
}

TEST(Prefetch, RingIsSizedFromTheBudget) {
  TempDir dir;
  auto ds = table(dir, 400, 40);
  const int64_t slot = 32 * (8 + 4 * 6 + 8 + 4 + 4);  // rows, x, y, label, target per row
  for (int64_t budget : {int64_t{1} << 20, int64_t{24'000}, int64_t{17'000}}) {
    Hdf5Source src(ds, opts(32, budget));
    expect_rows(src.next(0, 0), src.step_rows(0, 0));
    EXPECT_LE(src.resident_bytes(), budget) << budget;
    EXPECT_GE(src.slots(), 2);
    EXPECT_LE(src.slots(), Hdf5Source::kMaxSlots);
    if (budget == 17'000) {
      EXPECT_LT(src.slots(), Hdf5Source::kMaxSlots);
    }
    if (budget == int64_t{1} << 20) {
      EXPECT_EQ(src.slots(), Hdf5Source::kMaxSlots);
    }
    EXPECT_LE(src.slots() * slot, budget);
  }
  Hdf5Source tiny(ds, opts(32, 4'000));
  TESSERA_EXPECT_THROW_NAMING(ConfigError, tiny.next(0, 0), "data.memory_budget_mb", "two batches");
}

// NaN in row 137: the step that holds it fails with the reader's message, the steps before it
// succeed although the I/O thread read past them, and destruction does not hang.
TEST(Prefetch, ErrorOnTheIoThreadSurfacesAtItsStep) {
  TempDir dir;
  const int64_t rows = 300, f = 3;
  std::vector<float> x(rows * f, 1.f);
  x[137 * f + 1] = std::numeric_limits<float>::quiet_NaN();
  testing::write_xy(dir.file("nan.h5"), x, f, std::vector<double>(rows, 1), true);
  auto ds = std::make_shared<Hdf5Dataset>(std::vector<std::string>{dir.file("nan.h5")}, "X", "y");
  SourceOptions o = opts(20, 1 << 20);
  o.shuffle = false;
  {
    Hdf5Source src(ds, o);
    for (int64_t s = 0; s < 6; ++s) EXPECT_NO_THROW(src.next(0, s)) << s;  // rows 0..119
    TESSERA_EXPECT_THROW_NAMING(DataError, src.next(0, 6), dir.file("nan.h5"), "'X'", "row 137", "column 1");
    // After the error the source still answers (the trainer would stop; a test may go on).
    EXPECT_NO_THROW(src.next(0, 8));
  }
  const auto t0 = std::chrono::steady_clock::now();
  {
    Hdf5Source src(ds, o);
    EXPECT_NO_THROW(src.next(0, 5));  // the I/O thread now reads step 6 ahead, which fails
  }  // destroyed with an unconsumed error in the ring
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
}

// Read-ahead stops at SourceOptions::steps: no HDF5 call after the last step (rank 0 then
// writes the model file) and no error from a step the run never trains.
TEST(Prefetch, StopsAtTheLastStep) {
  TempDir dir;
  const int64_t rows = 200, f = 3;
  std::vector<float> x(rows * f, 1.f);
  x[150 * f] = std::numeric_limits<float>::infinity();
  testing::write_xy(dir.file("inf.h5"), x, f, std::vector<double>(rows, 0), true);
  auto ds = std::make_shared<Hdf5Dataset>(std::vector<std::string>{dir.file("inf.h5")}, "X", "y");
  SourceOptions o = opts(50, 1 << 20);
  o.shuffle = false;
  o.steps = 3;
  Hdf5Source src(ds, o);
  for (int64_t s = 0; s < 3; ++s) EXPECT_NO_THROW(src.next(0, s));
  const int64_t bytes = ds->bytes_read();
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(ds->bytes_read(), bytes);
  EXPECT_EQ(bytes, 3 * 50 * (f * 4 + 8));  // float32 X, float64 y: the rows trained, no more
}

}  // namespace
}  // namespace tessera
