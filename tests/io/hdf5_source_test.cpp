// Hdf5Dataset and Hdf5Source (DESIGN §3, §4): batches hold exactly the rows the data order
// predicts, with the right values and labels, across dtypes, layouts and concatenated files;
// bad input is refused with a DataError naming the file, the dataset and the row.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <memory>
#include <set>

#include "core/data_order.h"
#include "core/error.h"
#include "io/hdf5_dataset.h"
#include "io/hdf5_source.h"
#include "tests/io/error_matchers.h"
#include "tests/io/test_files.h"

namespace tessera {
namespace {

using testing::Dtype;
using testing::TableSpec;
using testing::TempDir;
using testing::label_value;
using testing::write_table;
using testing::x_value;

std::shared_ptr<Hdf5Dataset> open_ds(const std::vector<std::string>& paths,
                                     const std::string& x = "X", const std::string& y = "y") {
  return std::make_shared<Hdf5Dataset>(paths, x, y);
}

SourceOptions options(int64_t batch, int rank, int world, int64_t classes, bool shuffle = true) {
  SourceOptions o;
  o.task = Task::kClassification;
  o.classes = classes;
  o.global_batch = batch;
  o.rank = rank;
  o.world = world;
  o.seed = 7;
  o.shuffle = shuffle;
  o.range_rows = 64;
  return o;
}

// The batch holds `rows` (global indices) in order, with X and y as written by write_table.
void expect_batch(const Batch& b, const std::vector<int64_t>& rows, int64_t features,
                  int64_t classes) {
  ASSERT_EQ(b.rows, static_cast<int64_t>(rows.size()));
  ASSERT_NE(b.x, nullptr);
  ASSERT_NE(b.labels, nullptr);
  for (size_t i = 0; i < rows.size(); ++i) {
    for (int64_t j = 0; j < features; ++j) {
      ASSERT_EQ(b.x[i * features + j], x_value(rows[i], j)) << "slot " << i << " row " << rows[i];
    }
    ASSERT_EQ(b.labels[i], label_value(rows[i], classes)) << "slot " << i << " row " << rows[i];
  }
}

// Positions [tB + slice.begin, tB + slice.end) of the epoch's order.
std::vector<int64_t> predicted_rows(int64_t rows, int64_t chunk, const SourceOptions& o,
                                    int64_t epoch, int64_t step) {
  DataOrder order(rows, chunk, o.seed, o.shuffle);
  order.set_epoch(epoch);
  const Range s = partition(o.global_batch, o.rank, o.world);
  std::vector<int64_t> out(static_cast<size_t>(s.size()));
  order.rows_at(step * o.global_batch + s.begin, step * o.global_batch + s.end, out.data());
  return out;
}

struct Layout {
  Dtype x, y;
  hsize_t chunk_rows;
};

class SourceLayouts : public ::testing::TestWithParam<Layout> {};

TEST_P(SourceLayouts, NextReturnsTheRowsOfTheDataOrder) {
  const Layout l = GetParam();
  TempDir dir;
  TableSpec spec;
  spec.rows = 203;
  spec.features = 3;
  spec.x = l.x;
  spec.y = l.y;
  spec.classes = 6;
  spec.chunk_rows = l.chunk_rows;
  const std::string path = dir.file("t.h5");
  write_table(path, spec);
  auto ds = open_ds({path});
  ASSERT_EQ(ds->rows(), 203);
  ASSERT_EQ(ds->features(), 3);
  const int64_t chunk = l.chunk_rows > 0 ? static_cast<int64_t>(l.chunk_rows) : Hdf5Dataset::kDefaultOrderChunk;
  EXPECT_EQ(ds->order_chunk_rows(), chunk);
  const int64_t batch = 20, steps = 203 / batch;
  for (bool shuffle : {true, false}) {
    for (int world : {1, 3}) {
      for (int rank = 0; rank < world; ++rank) {
        Hdf5Source src(ds, options(batch, rank, world, 6, shuffle));
        EXPECT_EQ(src.max_batch_rows(), 64);
        for (int64_t epoch : {0, 1}) {
          for (int64_t t = 0; t < steps; ++t) {
            const auto want = predicted_rows(203, chunk, options(batch, rank, world, 6, shuffle), epoch, t);
            EXPECT_EQ(src.step_rows(epoch, t), want);
            SCOPED_TRACE(::testing::Message() << "shuffle " << shuffle << " rank " << rank << "/"
                                              << world << " epoch " << epoch << " step " << t);
            expect_batch(src.next(epoch, t), want, 3, 6);
          }
        }
        EXPECT_ANY_THROW(src.next(0, steps)) << "step past the epoch";
      }
    }
  }
}

TEST_P(SourceLayouts, ReadRangeReturnsFileOrder) {
  const Layout l = GetParam();
  TempDir dir;
  TableSpec spec;
  spec.rows = 130;
  spec.x = l.x;
  spec.y = l.y;
  spec.chunk_rows = l.chunk_rows;
  write_table(dir.file("t.h5"), spec);
  Hdf5Source src(open_ds({dir.file("t.h5")}), options(8, 0, 1, 5));
  for (auto [b, e] : {std::pair<int64_t, int64_t>{0, 64}, {64, 128}, {128, 130}, {17, 18}, {5, 66}}) {
    std::vector<int64_t> rows;
    for (int64_t r = b; r < e; ++r) rows.push_back(r);
    SCOPED_TRACE(::testing::Message() << "[" << b << "," << e << ")");
    expect_batch(src.read_range(b, e), rows, 4, 5);
  }
  EXPECT_ANY_THROW(src.read_range(0, 65)) << "larger than range_rows";
}

INSTANTIATE_TEST_SUITE_P(
    Dtypes, SourceLayouts,
    ::testing::Values(Layout{Dtype::kFloat32, Dtype::kInt32, 0}, Layout{Dtype::kFloat32, Dtype::kInt64, 16},
                      Layout{Dtype::kFloat64, Dtype::kUInt8, 0}, Layout{Dtype::kFloat64, Dtype::kFloat32, 7},
                      Layout{Dtype::kInt32, Dtype::kFloat64, 32}, Layout{Dtype::kInt64, Dtype::kInt32, 0}));

TEST(Source, UnionOverRanksIsTheSameForEveryWorldSize) {
  TempDir dir;
  TableSpec spec;
  spec.rows = 250;
  spec.chunk_rows = 8;
  write_table(dir.file("t.h5"), spec);
  auto ds = open_ds({dir.file("t.h5")});
  const int64_t batch = 30;
  for (int64_t t = 0; t < 250 / batch; ++t) {
    std::multiset<int64_t> one;
    {
      Hdf5Source src(ds, options(batch, 0, 1, 5));
      const Batch b = src.next(1, t);
      for (int64_t i = 0; i < b.rows; ++i) one.insert(static_cast<int64_t>(b.x[i * 4] / 1000));
    }
    for (int world : {2, 4}) {
      std::multiset<int64_t> all;
      for (int rank = 0; rank < world; ++rank) {
        Hdf5Source src(ds, options(batch, rank, world, 5));
        const Batch b = src.next(1, t);
        for (int64_t i = 0; i < b.rows; ++i) all.insert(static_cast<int64_t>(b.x[i * 4] / 1000));
      }
      EXPECT_EQ(all, one) << "step " << t << " world " << world;
    }
  }
}

class Concatenated : public ::testing::Test {
 protected:
  void SetUp() override {
    TableSpec a;
    a.rows = 37;
    a.chunk_rows = 8;
    a.classes = 5;
    write_table(dir_.file("a.h5"), a);
    TableSpec b;
    b.rows = 58;
    b.first_row = 37;
    b.x = Dtype::kFloat64;
    b.y = Dtype::kInt64;
    b.classes = 5;
    write_table(dir_.file("b.h5"), b);
    TableSpec whole;
    whole.rows = 95;
    whole.chunk_rows = 8;
    write_table(dir_.file("whole.h5"), whole);
  }
  TempDir dir_;
};

TEST_F(Concatenated, BehavesAsOneTable) {
  auto ds = open_ds({dir_.file("a.h5"), dir_.file("b.h5")});
  EXPECT_EQ(ds->rows(), 95);
  ASSERT_EQ(ds->files().size(), 2u);
  EXPECT_EQ(ds->files()[0].rows, 37);
  EXPECT_EQ(ds->files()[1].first_row, 37);
  EXPECT_EQ(ds->files()[1].rows, 58);
  EXPECT_EQ(ds->files()[0].x_chunk_rows, 8);
  EXPECT_EQ(ds->files()[1].x_chunk_rows, 0);
  EXPECT_EQ(ds->order_chunk_rows(), 8);
  EXPECT_EQ(ds->where(36), dir_.file("a.h5") + " row 36");
  EXPECT_EQ(ds->where(40), dir_.file("b.h5") + " row 3");

  Hdf5Source src(ds, options(16, 0, 1, 5));
  std::vector<int64_t> rows;
  for (int64_t r = 20; r < 70; ++r) rows.push_back(r);
  expect_batch(src.read_range(20, 70), rows, 4, 5);

  auto whole = open_ds({dir_.file("whole.h5")});
  for (int world : {1, 3}) {
    for (int rank = 0; rank < world; ++rank) {
      Hdf5Source cat(ds, options(16, rank, world, 5)), one(whole, options(16, rank, world, 5));
      for (int64_t t = 0; t < 95 / 16; ++t) {
        const auto want = predicted_rows(95, 8, options(16, rank, world, 5), 2, t);
        EXPECT_EQ(cat.step_rows(2, t), one.step_rows(2, t));
        SCOPED_TRACE(::testing::Message() << "rank " << rank << "/" << world << " step " << t);
        expect_batch(cat.next(2, t), want, 4, 5);
      }
    }
  }
}

TEST_F(Concatenated, LabelErrorNamesTheSecondFileAndItsRow) {
  testing::write_table(dir_.file("b.h5"), [] {
    TableSpec b;
    b.rows = 58;
    b.first_row = 37;
    b.classes = 9;  // labels up to 8, the model has 5 classes
    return b;
  }());
  Hdf5Source src(open_ds({dir_.file("a.h5"), dir_.file("b.h5")}), options(16, 0, 1, 5, false));
  // Global row 41 is b.h5 row 4, label 41 % 9 = 5: outside 0..4.
  TESSERA_EXPECT_THROW_NAMING(DataError, src.read_range(38, 45), dir_.file("b.h5"), "row 4", "'y'",
                              "label 5");
}

TEST(SourceLabels, FloatIntegerLabelsAndBinaryAndRegression) {
  TempDir dir;
  // Classification from float64 labels holding integers.
  std::vector<float> x(12 * 2);
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i);
  std::vector<double> y = {0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3};
  testing::write_xy(dir.file("f.h5"), x, 2, y, false);
  auto ds = open_ds({dir.file("f.h5")});
  EXPECT_FALSE(ds->labels_are_integer());
  Hdf5Source src(ds, options(4, 0, 1, 4, false));
  const Batch b = src.next(0, 1);
  ASSERT_EQ(b.rows, 4);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(b.labels[i], y[4 + i]);
    EXPECT_EQ(b.x[i * 2 + 1], static_cast<float>((4 + i) * 2 + 1));
  }
  EXPECT_EQ(scan_classes(*ds, {0, 12}), 4);

  // Binary: 0/1 accepted, 2 refused naming the row.
  std::vector<double> yb = {0, 1, 1, 0, 1, 0, 0, 1, 2, 1, 0, 1};
  testing::write_xy(dir.file("b.h5"), x, 2, yb, true);
  SourceOptions ob = options(4, 0, 1, 0, false);
  ob.task = Task::kBinary;
  Hdf5Source bin(open_ds({dir.file("b.h5")}), ob);
  const Batch b0 = bin.next(0, 0);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(b0.labels[i], yb[i]);
  TESSERA_EXPECT_THROW_NAMING(DataError, bin.next(0, 2), dir.file("b.h5"), "row 8", "'y'");

  // Regression with two target columns.
  {
    testing::H5Writer w(dir.file("r.h5"));
    w.write("X", {12, 2}, x, H5T_IEEE_F32LE);
    std::vector<double> t(24);
    for (size_t i = 0; i < t.size(); ++i) t[i] = 0.5 * static_cast<double>(i) - 3;
    w.write("y", {12, 2}, t, H5T_IEEE_F64LE);
  }
  SourceOptions orr = options(5, 0, 1, 0, false);
  orr.task = Task::kRegression;
  auto rds = open_ds({dir.file("r.h5")});
  EXPECT_EQ(rds->label_columns(), 2);
  Hdf5Source reg(rds, orr);
  EXPECT_EQ(reg.outputs(), 2);
  const Batch br = reg.next(0, 1);
  ASSERT_NE(br.targets, nullptr);
  for (int i = 0; i < 10; ++i) EXPECT_FLOAT_EQ(br.targets[i], 0.5f * static_cast<float>(10 + i) - 3);
  // A 2-column label dataset is refused for classification.
  TESSERA_EXPECT_THROW_NAMING(DataError, Hdf5Source s(rds, options(5, 0, 1, 3)), dir.file("r.h5"),
                              "'y'");
}

TEST(ScanClasses, ReturnsMaxPlusOne) {
  TempDir dir;
  TableSpec s;
  s.rows = 40;
  s.classes = 7;
  s.y = Dtype::kUInt8;
  write_table(dir.file("t.h5"), s);
  auto ds = open_ds({dir.file("t.h5")});
  EXPECT_EQ(scan_classes(*ds, {0, 40}), 7);
  EXPECT_EQ(scan_classes(*ds, {0, 4}), 4);
  EXPECT_EQ(scan_classes(*ds, {10, 11}), 4);  // label 10 % 7 = 3
}

// ---- bad input: every error names the file, the dataset and (where it has one) the row ----

class BadInput : public ::testing::Test {
 protected:
  std::string path(const std::string& name) { return dir_.file(name); }
  TempDir dir_;
};

TEST_F(BadInput, MismatchedRowCounts) {
  {
    testing::H5Writer w(path("m.h5"));
    w.write("X", {10, 2}, std::vector<float>(20, 1.f), H5T_IEEE_F32LE);
    w.write("y", {9}, std::vector<int32_t>(9, 0), H5T_STD_I32LE);
  }
  TESSERA_EXPECT_THROW_NAMING(DataError, open_ds({path("m.h5")}), path("m.h5"), "'X'", "'y'", "10", "9");
}

TEST_F(BadInput, FeaturesWithThreeDimensions) {
  {
    testing::H5Writer w(path("d.h5"));
    w.write("X", {5, 2, 2}, std::vector<float>(20, 1.f), H5T_IEEE_F32LE);
    w.write("y", {5}, std::vector<int32_t>(5, 0), H5T_STD_I32LE);
  }
  TESSERA_EXPECT_THROW_NAMING(DataError, open_ds({path("d.h5")}), path("d.h5"), "'X'", "3 dimensions");
}

TEST_F(BadInput, EmptyDataset) {
  {
    testing::H5Writer w(path("e.h5"));
    w.write("X", {0, 4}, std::vector<float>{}, H5T_IEEE_F32LE);
    w.write("y", {0}, std::vector<int32_t>{}, H5T_STD_I32LE);
  }
  TESSERA_EXPECT_THROW_NAMING(DataError, open_ds({path("e.h5")}), path("e.h5"), "'X'", "empty");
}

TEST_F(BadInput, MissingDatasetName) {
  write_table(path("t.h5"), TableSpec{});
  TESSERA_EXPECT_THROW_NAMING(DataError, open_ds({path("t.h5")}, "features", "y"), path("t.h5"),
                              "'features'");
  TESSERA_EXPECT_THROW_NAMING(DataError, open_ds({path("t.h5")}, "X", "labels"), path("t.h5"),
                              "'labels'");
}

TEST_F(BadInput, LabelOutsideClassRangeNamesTheRow) {
  std::vector<float> x(20 * 3, 0.5f);
  std::vector<double> y(20, 1);
  y[13] = 7;
  testing::write_xy(path("l.h5"), x, 3, y, true);
  auto ds = open_ds({path("l.h5")});
  Hdf5Source src(ds, options(20, 0, 1, 5, false));
  TESSERA_EXPECT_THROW_NAMING(DataError, src.read_range(0, 20), path("l.h5"), "'y'", "row 13", "7");
  TESSERA_EXPECT_THROW_NAMING(DataError, src.next(0, 0), path("l.h5"), "'y'", "row 13");
  // Split over two ranks: rank 0 (rows 0..9) is fine, rank 1 (rows 10..19) meets row 13.
  Hdf5Source r0(ds, options(20, 0, 2, 5, false)), r1(ds, options(20, 1, 2, 5, false));
  EXPECT_NO_THROW(r0.next(0, 0));
  TESSERA_EXPECT_THROW_NAMING(DataError, r1.next(0, 0), path("l.h5"), "row 13");
  // Negative labels too.
  y[13] = 1;
  y[2] = -1;
  testing::write_xy(path("n.h5"), x, 3, y, true);
  Hdf5Source neg(open_ds({path("n.h5")}), options(20, 0, 1, 5, false));
  TESSERA_EXPECT_THROW_NAMING(DataError, neg.read_range(0, 20), path("n.h5"), "row 2");
}

TEST_F(BadInput, NonIntegerLabelForClassification) {
  std::vector<float> x(10 * 2, 0.5f);
  std::vector<double> y = {0, 1, 2, 0, 2.5, 1, 0, 1, 2, 0};
  testing::write_xy(path("f.h5"), x, 2, y, false);
  auto ds = open_ds({path("f.h5")});
  Hdf5Source src(ds, options(10, 0, 1, 3, false));
  TESSERA_EXPECT_THROW_NAMING(DataError, src.read_range(0, 10), path("f.h5"), "'y'", "row 4", "2.5");
  TESSERA_EXPECT_THROW_NAMING(DataError, scan_classes(*ds, {0, 10}), path("f.h5"), "'y'", "row 4");
}

TEST_F(BadInput, NanAndInfinityInFeaturesNameTheRow) {
  const double bad_values[] = {std::numeric_limits<double>::quiet_NaN(),
                               std::numeric_limits<double>::infinity(),
                               -std::numeric_limits<double>::infinity()};
  int k = 0;
  for (double bad : bad_values) {
    const std::string p = path("nan" + std::to_string(k++) + ".h5");
    std::vector<float> x(12 * 3, 1.f);
    x[6 * 3 + 2] = static_cast<float>(bad);
    testing::write_xy(p, x, 3, std::vector<double>(12, 0), true);
    Hdf5Source src(open_ds({p}), options(12, 0, 1, 2, false));
    TESSERA_EXPECT_THROW_NAMING(DataError, src.read_range(0, 12), p, "'X'", "row 6");
    TESSERA_EXPECT_THROW_NAMING(DataError, src.next(0, 0), p, "'X'", "row 6");
    EXPECT_NO_THROW(src.read_range(0, 6));
  }
}

TEST_F(BadInput, NonFiniteRegressionTarget) {
  {
    testing::H5Writer w(path("r.h5"));
    w.write("X", {6, 2}, std::vector<float>(12, 1.f), H5T_IEEE_F32LE);
    w.write("y", {6}, std::vector<double>{0, 1, 2, std::nan(""), 4, 5}, H5T_IEEE_F64LE);
  }
  SourceOptions o = options(6, 0, 1, 0, false);
  o.task = Task::kRegression;
  Hdf5Source src(open_ds({path("r.h5")}), o);
  TESSERA_EXPECT_THROW_NAMING(DataError, src.read_range(0, 6), path("r.h5"), "'y'", "row 3");
}

TEST_F(BadInput, NotAnHdf5File) {
  testing::write_bytes(path("notes.h5"), "this is a text file, not HDF5\n1,2,3\n");
  TESSERA_EXPECT_THROW_NAMING(DataError, open_ds({path("notes.h5")}), path("notes.h5"), "HDF5");
}

TEST_F(BadInput, MissingFile) {
  TESSERA_EXPECT_THROW_NAMING(DataError, open_ds({path("nope.h5")}), path("nope.h5"));
  // A missing second file is named too.
  write_table(path("t.h5"), TableSpec{});
  TESSERA_EXPECT_THROW_NAMING(DataError, open_ds({path("t.h5"), path("nope2.h5")}), path("nope2.h5"));
}

TEST_F(BadInput, FilesWithDifferentFeatureCounts) {
  TableSpec a;
  a.features = 4;
  write_table(path("a.h5"), a);
  TableSpec b;
  b.features = 3;
  write_table(path("b.h5"), b);
  TESSERA_EXPECT_THROW_NAMING(DataError, open_ds({path("a.h5"), path("b.h5")}), path("b.h5"), "'X'",
                              "3", "4", path("a.h5"));
}

}  // namespace
}  // namespace tessera
