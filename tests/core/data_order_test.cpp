// DataOrder and partition (DESIGN §3): orders are permutations, pure functions of their inputs,
// and the set of rows in global step t does not depend on the number of ranks N.
#include "core/data_order.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <set>
#include <vector>

namespace tessera {
namespace {

std::vector<int64_t> full_order(int64_t rows, int64_t chunk, uint64_t seed, bool shuffle,
                                int64_t epoch) {
  DataOrder order(rows, chunk, seed, shuffle);
  order.set_epoch(epoch);
  std::vector<int64_t> out(static_cast<size_t>(rows));
  order.rows_at(0, rows, out.data());
  return out;
}

bool is_permutation_of_iota(std::vector<int64_t> v) {
  std::sort(v.begin(), v.end());
  for (size_t i = 0; i < v.size(); ++i) {
    if (v[i] != static_cast<int64_t>(i)) return false;
  }
  return true;
}

TEST(Partition, SharesDifferByAtMostOneAndCoverExactly) {
  for (int64_t n = 0; n <= 300; n += (n < 40 ? 1 : 37)) {
    for (int world = 1; world <= 17; ++world) {
      int64_t expected_begin = 0, lo = n, hi = 0;
      for (int r = 0; r < world; ++r) {
        const Range p = partition(n, r, world);
        EXPECT_EQ(p.begin, expected_begin) << "n=" << n << " rank " << r << " of " << world;
        EXPECT_GE(p.size(), 0);
        if (r > 0) {
          EXPECT_LE(p.size(), partition(n, r - 1, world).size()) << "lower ranks larger";
        }
        lo = std::min(lo, p.size());
        hi = std::max(hi, p.size());
        expected_begin = p.end;
      }
      EXPECT_EQ(expected_begin, n) << "n=" << n << " world=" << world;
      EXPECT_LE(hi - lo, 1) << "n=" << n << " world=" << world;
    }
  }
}

TEST(Partition, RejectsBadRank) {
  EXPECT_ANY_THROW(partition(10, 4, 4));
  EXPECT_ANY_THROW(partition(10, -1, 4));
  EXPECT_ANY_THROW(partition(10, 0, 0));
}

const int64_t kRows[] = {1, 7, 1000, 1025, 4099};
const int64_t kChunks[] = {1, 64, 1024};

TEST(DataOrder, EveryEpochIsAPermutation) {
  for (int64_t rows : kRows) {
    for (int64_t chunk : kChunks) {
      for (int64_t epoch : {0, 1, 5}) {
        EXPECT_TRUE(is_permutation_of_iota(full_order(rows, chunk, 42, true, epoch)))
            << "rows=" << rows << " chunk=" << chunk << " epoch=" << epoch;
      }
    }
  }
}

TEST(DataOrder, NoShuffleIsIdentity) {
  for (int64_t rows : kRows) {
    for (int64_t chunk : kChunks) {
      std::vector<int64_t> want(static_cast<size_t>(rows));
      std::iota(want.begin(), want.end(), int64_t{0});
      EXPECT_EQ(full_order(rows, chunk, 42, false, 0), want);
      EXPECT_EQ(full_order(rows, chunk, 7, false, 3), want);
    }
  }
}

TEST(DataOrder, EpochsAndSeedsChangeTheOrder) {
  for (int64_t rows : {1000, 1025, 4099}) {
    for (int64_t chunk : kChunks) {
      const auto base = full_order(rows, chunk, 42, true, 0);
      std::vector<int64_t> identity(base.size());
      std::iota(identity.begin(), identity.end(), int64_t{0});
      EXPECT_NE(base, identity) << "rows=" << rows << " chunk=" << chunk;
      EXPECT_NE(base, full_order(rows, chunk, 42, true, 1)) << "epoch; rows=" << rows << " chunk=" << chunk;
      EXPECT_NE(base, full_order(rows, chunk, 43, true, 0)) << "seed; rows=" << rows << " chunk=" << chunk;
    }
  }
  // Small cases still shuffle (7 rows, chunk 1).
  EXPECT_NE(full_order(7, 1, 42, true, 0), full_order(7, 1, 42, true, 1));
}

TEST(DataOrder, SameInputsSameOrder) {
  for (int64_t rows : kRows) {
    for (int64_t chunk : kChunks) {
      EXPECT_EQ(full_order(rows, chunk, 9, true, 2), full_order(rows, chunk, 9, true, 2));
    }
  }
  // Revisiting an epoch on the same object gives the same order as a fresh object.
  DataOrder order(1025, 64, 9, true);
  std::vector<int64_t> a(1025), b(1025);
  order.set_epoch(2);
  order.rows_at(0, 1025, a.data());
  order.set_epoch(3);
  order.rows_at(0, 1025, b.data());
  order.set_epoch(2);
  order.rows_at(0, 1025, b.data());
  EXPECT_EQ(a, b);
  EXPECT_EQ(a, full_order(1025, 64, 9, true, 2));
}

TEST(DataOrder, SubRangesMatchTheFullOrder) {
  for (int64_t rows : kRows) {
    for (int64_t chunk : kChunks) {
      const auto full = full_order(rows, chunk, 5, true, 1);
      DataOrder order(rows, chunk, 5, true);
      order.set_epoch(1);
      // Deterministic pseudo-random sub-ranges, including empty ones and window crossings,
      // queried out of order so the window cache is exercised.
      uint64_t s = 12345;
      for (int i = 0; i < 60; ++i) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        int64_t a = static_cast<int64_t>((s >> 20) % static_cast<uint64_t>(rows + 1));
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        int64_t b = static_cast<int64_t>((s >> 20) % static_cast<uint64_t>(rows + 1));
        if (a > b) std::swap(a, b);
        std::vector<int64_t> got(static_cast<size_t>(b - a));
        order.rows_at(a, b, got.data());
        ASSERT_TRUE(std::equal(got.begin(), got.end(), full.begin() + a))
            << "rows=" << rows << " chunk=" << chunk << " [" << a << "," << b << ")";
      }
      std::vector<int64_t> one(1);
      for (int64_t p : {int64_t{0}, rows / 2, rows - 1}) {
        order.rows_at(p, p + 1, one.data());
        EXPECT_EQ(one[0], full[static_cast<size_t>(p)]);
      }
    }
  }
}

TEST(DataOrder, RejectsOutOfRangePositions) {
  DataOrder order(100, 8, 1, true);
  std::vector<int64_t> out(200);
  EXPECT_ANY_THROW(order.rows_at(0, 10, out.data())) << "set_epoch not called";
  order.set_epoch(0);
  EXPECT_ANY_THROW(order.rows_at(0, 101, out.data()));
  EXPECT_ANY_THROW(order.rows_at(5, 4, out.data()));
}

// The key property: rank r of N owns positions partition(B, r, N) of [tB, (t+1)B). The union
// over ranks is the same set for every N, and an epoch uses each row at most once.
TEST(DataOrder, StepRowsIndependentOfRankCount) {
  struct Case {
    int64_t rows, chunk, batch;
  };
  const Case cases[] = {{1025, 64, 64}, {1025, 64, 100}, {4099, 1024, 100}, {4099, 1, 64},
                        {1099, 64, 100}, {250, 7, 64}};
  for (const Case& c : cases) {
    ASSERT_NE(c.rows % c.batch, 0) << "pick rows not divisible by B";
    const int64_t steps = c.rows / c.batch;
    for (int64_t epoch : {0, 1}) {
      std::vector<std::set<int64_t>> reference;  // N = 1, per step
      for (int world = 1; world <= 4; ++world) {
        // Each rank has its own DataOrder, as independent processes would.
        std::vector<DataOrder> orders;
        for (int r = 0; r < world; ++r) orders.emplace_back(c.rows, c.chunk, 77, true);
        for (auto& o : orders) o.set_epoch(epoch);
        std::set<int64_t> used_in_epoch;
        int64_t used_count = 0;
        for (int64_t t = 0; t < steps; ++t) {
          std::set<int64_t> step_set;
          for (int r = 0; r < world; ++r) {
            const Range p = partition(c.batch, r, world);
            std::vector<int64_t> rows(static_cast<size_t>(p.size()));
            orders[r].rows_at(t * c.batch + p.begin, t * c.batch + p.end, rows.data());
            for (int64_t row : rows) {
              EXPECT_TRUE(step_set.insert(row).second) << "row " << row << " twice in step " << t;
              EXPECT_TRUE(used_in_epoch.insert(row).second)
                  << "row " << row << " reused in epoch " << epoch << " (N=" << world << ")";
              ++used_count;
            }
          }
          EXPECT_EQ(static_cast<int64_t>(step_set.size()), c.batch);
          if (world == 1) {
            reference.push_back(step_set);
          } else {
            EXPECT_EQ(step_set, reference[static_cast<size_t>(t)])
                << "rows=" << c.rows << " B=" << c.batch << " N=" << world << " step " << t;
          }
        }
        EXPECT_EQ(used_count, steps * c.batch);
        EXPECT_EQ(static_cast<int64_t>(used_in_epoch.size()), steps * c.batch);
        for (int64_t row : used_in_epoch) EXPECT_TRUE(row >= 0 && row < c.rows);
      }
    }
  }
}

}  // namespace
}  // namespace tessera
