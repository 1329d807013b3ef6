// What the weight-gradient tiles report to a TileObserver, and the promise the gradient reducer
// relies on: every dW and db element reported exactly once, already final, in blocks of the
// engine's tile rows (aligned to them), with the main thread polled between tiles.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <mutex>
#include <vector>

#include "kernels/dense.h"
#include "kernels/tile_observer.h"

namespace tessera::kernels::test {

// Records each report with a copy of the values at the time of the report.
class TileRecorder : public TileObserver {
 public:
  struct Report {
    const float* m;
    int64_t r0, r1, c0, c1;
    std::vector<float> values;
    Finite finite;
  };
  void block_final(const float* m, int64_t ld, int64_t r0, int64_t r1, int64_t c0, int64_t c1,
                   Finite finite) override {
    Report r{m, r0, r1, c0, c1, {}, finite};
    for (int64_t i = r0; i < r1; ++i) {
      r.values.insert(r.values.end(), m + i * ld + c0, m + i * ld + c1);
    }
    std::lock_guard<std::mutex> lock(mu_);
    reports.push_back(std::move(r));
  }
  void between_tiles() override { ++polls; }
  std::vector<Report> reports;
  int64_t polls = 0;

 private:
  std::mutex mu_;
};

// dw (out x in) and db (out) as the product left them, against what `rec` saw; dW reported in
// blocks of tile_rows rows (the engine's; dense_tile_rows() for the build's).
inline void expect_reports_final_once(const TileRecorder& rec, const std::vector<float>& dw,
                                      const std::vector<float>& db, int64_t in, int64_t out,
                                      int64_t tile_rows = dense_tile_rows()) {
  std::vector<int> dw_seen(dw.size()), db_seen(db.size());
  for (const TileRecorder::Report& rep : rec.reports) {
    const bool is_dw = rep.m == dw.data();
    ASSERT_TRUE(is_dw || rep.m == db.data()) << "a report of neither dw nor db";
    if (is_dw) {
      EXPECT_EQ(rep.r0 % tile_rows, 0) << "rows " << rep.r0 << ".." << rep.r1;
      EXPECT_TRUE(rep.r1 - rep.r0 == tile_rows || rep.r1 == out)
          << "rows " << rep.r0 << ".." << rep.r1 << ", tile rows " << tile_rows;
    }
    const std::vector<float>& m = is_dw ? dw : db;
    std::vector<int>& seen = is_dw ? dw_seen : db_seen;
    const int64_t ld = is_dw ? in : out;
    size_t at = 0;
    for (int64_t i = rep.r0; i < rep.r1; ++i)
      for (int64_t c = rep.c0; c < rep.c1; ++c) {
        ++seen[i * ld + c];
        ASSERT_EQ(rep.values[at++], m[i * ld + c]) << (is_dw ? "dw" : "db") << " not final";
      }
  }
  for (int v : dw_seen) ASSERT_EQ(v, 1) << "a dw element reported " << v << " times";
  for (int v : db_seen) ASSERT_EQ(v, 1) << "a db element reported " << v << " times";
  EXPECT_GT(rec.polls, 0);
}

}  // namespace tessera::kernels::test
