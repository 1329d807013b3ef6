// MpiCommunicator under mpirun (N = 1, 2, 4): every collective against values each rank can
// compute itself, including buffers larger than kMaxMessageBytes (sent in pieces), and
// check_agreement failing consistently on every rank instead of hanging.
#include "distributed/mpi_communicator.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <span>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "tests/distributed/mpi_test_env.h"

namespace tessera {

MpiCommunicator* g_comm = nullptr;

namespace {

class Mpi : public ::testing::Test {
 protected:
  MpiCommunicator& comm() { return *g_comm; }
  int rank() { return g_comm->rank(); }
  int size() { return g_comm->size(); }
};

TEST_F(Mpi, RankAndSize) {
  EXPECT_GE(size(), 1);
  EXPECT_GE(rank(), 0);
  EXPECT_LT(rank(), size());
  EXPECT_GE(comm().local_size(), 1);
  EXPECT_LE(comm().local_size(), size());
}

TEST_F(Mpi, AllreduceSumFloat) {
  std::vector<float> v(1001);
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(rank() + 1) * static_cast<float>(i % 13);
  comm().allreduce_sum(v);
  const float ranks_sum = static_cast<float>(size() * (size() + 1) / 2);
  for (size_t i = 0; i < v.size(); ++i) ASSERT_EQ(v[i], ranks_sum * static_cast<float>(i % 13)) << i;
  std::vector<float> empty;
  comm().allreduce_sum(std::span<float>(empty));  // zero-length must not hang or fail
}

TEST_F(Mpi, AllreduceSumDouble) {
  std::vector<double> v(777);
  for (size_t i = 0; i < v.size(); ++i) v[i] = 0.5 * rank() + static_cast<double>(i);
  comm().allreduce_sum(v);
  const double n = size();
  for (size_t i = 0; i < v.size(); ++i) ASSERT_DOUBLE_EQ(v[i], 0.25 * n * (n - 1) + n * static_cast<double>(i)) << i;
}

TEST_F(Mpi, AllreduceSumLargerThanOneMessage) {
  // 2.5 messages of floats and of doubles: every piece, including the short last one, is reduced.
  const size_t nf = MpiCommunicator::kMaxMessageBytes / sizeof(float) * 5 / 2 + 3;
  std::vector<float> f(nf);
  for (size_t i = 0; i < nf; ++i) f[i] = static_cast<float>((i % 1024) + static_cast<size_t>(rank()));
  comm().allreduce_sum(f);
  const float extra = static_cast<float>(size() * (size() - 1) / 2);
  for (size_t i = 0; i < nf; ++i) {
    ASSERT_EQ(f[i], static_cast<float>(size()) * static_cast<float>(i % 1024) + extra) << "float " << i;
  }
  const size_t nd = MpiCommunicator::kMaxMessageBytes / sizeof(double) * 2 + 1;
  std::vector<double> d(nd);
  for (size_t i = 0; i < nd; ++i) d[i] = rank() == 0 ? static_cast<double>(i) : 1.0;
  comm().allreduce_sum(d);
  for (size_t i = 0; i < nd; ++i) ASSERT_EQ(d[i], static_cast<double>(i) + (size() - 1)) << "double " << i;
}

TEST_F(Mpi, AllreduceMax) {
  std::vector<int64_t> v = {rank(), -rank(), int64_t{1} << 40, rank() == size() - 1 ? 99 : -5};
  comm().allreduce_max(v);
  EXPECT_EQ(v[0], size() - 1);
  EXPECT_EQ(v[1], 0);
  EXPECT_EQ(v[2], int64_t{1} << 40);
  EXPECT_EQ(v[3], 99);
}

TEST_F(Mpi, BroadcastFloatAndBytes) {
  for (int root = 0; root < size(); ++root) {
    std::vector<float> v(300, static_cast<float>(rank()));
    if (rank() == root) {
      for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(i) + 0.25f * root;
    }
    comm().broadcast(v, root);
    for (size_t i = 0; i < v.size(); ++i) ASSERT_EQ(v[i], static_cast<float>(i) + 0.25f * root);
  }
  // Bytes, larger than one message.
  std::vector<std::byte> b(MpiCommunicator::kMaxMessageBytes + 4097, std::byte{0});
  if (rank() == size() - 1) {
    for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<std::byte>((i * 31) & 0xff);
  }
  comm().broadcast(std::span<std::byte>(b), size() - 1);
  for (size_t i = 0; i < b.size(); ++i) ASSERT_EQ(b[i], static_cast<std::byte>((i * 31) & 0xff)) << i;
}

TEST_F(Mpi, Allgather) {
  const std::vector<uint64_t> all = comm().allgather(1000 + static_cast<uint64_t>(rank()) * 7 + (uint64_t{1} << 63));
  ASSERT_EQ(all.size(), static_cast<size_t>(size()));
  for (int r = 0; r < size(); ++r) EXPECT_EQ(all[r], 1000 + static_cast<uint64_t>(r) * 7 + (uint64_t{1} << 63));
}

TEST_F(Mpi, HostNames) {
  const std::vector<std::string> hosts = comm().host_names();
  ASSERT_EQ(hosts.size(), static_cast<size_t>(size()));
  for (const auto& h : hosts) EXPECT_FALSE(h.empty());
  // Every rank sees the same list.
  std::string joined;
  for (const auto& h : hosts) joined += h + "\n";
  const std::vector<uint64_t> hashes = comm().allgather(std::hash<std::string>{}(joined));
  for (uint64_t h : hashes) EXPECT_EQ(h, hashes[0]);
}

TEST_F(Mpi, CheckAgreementPassesForEqualValues) {
  EXPECT_NO_THROW(check_agreement(comm(), 0xfeedULL, "config"));
  EXPECT_NO_THROW(check_agreement(comm(), 0, "model"));
}

TEST_F(Mpi, CheckAgreementThrowsOnEveryRankNamingTheRank) {
  if (size() == 1) GTEST_SKIP() << "needs 2 or more ranks";
  const int last = size() - 1;
  const uint64_t value = rank() == last ? 2 : 1;
  std::string msg;
  bool threw = false;
  try {
    check_agreement(comm(), value, "dataset shape");
  } catch (const ConfigError& e) {
    threw = true;
    msg = e.what();
  }
  EXPECT_TRUE(threw) << "rank " << rank() << " did not throw";
  EXPECT_NE(msg.find("rank(s) " + std::to_string(last)), std::string::npos) << msg;
  EXPECT_NE(msg.find("dataset shape"), std::string::npos) << msg;
  // Every rank threw: all of them reach the next collective, so nothing hangs.
  std::vector<int64_t> flag = {threw ? 1 : 0};
  std::vector<int64_t> min_flag = {threw ? -1 : 0};
  comm().allreduce_max(flag);
  comm().allreduce_max(min_flag);  // max of -threw = -min(threw)
  EXPECT_EQ(flag[0], 1);
  EXPECT_EQ(min_flag[0], -1) << "some rank did not throw";
}

TEST_F(Mpi, BarrierReturns) { comm().barrier(); }

TEST_F(Mpi, StartedSumsMatchTheBlockingSumBitForBit) {
  // Three buffers in flight at once, one larger than a message, progressed then waited for;
  // values with rounding so that a different piece order or algorithm would show.
  const size_t big = MpiCommunicator::kMaxMessageBytes / sizeof(float) + 333;
  std::vector<std::vector<float>> started = {std::vector<float>(17), std::vector<float>(big), std::vector<float>(5)};
  for (auto& v : started) {
    for (size_t i = 0; i < v.size(); ++i) v[i] = 0.1f * static_cast<float>(rank() + 1) + 1e-3f * static_cast<float>(i % 97);
  }
  std::vector<std::vector<float>> blocking = started;
  for (auto& v : started) {
    comm().start_allreduce_sum(v);
    comm().progress();
  }
  comm().wait_all();
  for (auto& v : blocking) comm().allreduce_sum(v);
  for (size_t k = 0; k < started.size(); ++k) {
    ASSERT_EQ(0, std::memcmp(started[k].data(), blocking[k].data(), started[k].size() * sizeof(float))) << k;
  }
  comm().wait_all();  // nothing pending: returns at once
}

TEST_F(Mpi, AllgatherDoubles) {
  const double mine[3] = {static_cast<double>(rank()), -0.5 * rank(), 1e300};
  std::vector<double> all(3 * static_cast<size_t>(size()));
  comm().allgather(std::span<const double>(mine, 3), all);
  for (int r = 0; r < size(); ++r) {
    EXPECT_EQ(all[3 * r], r);
    EXPECT_EQ(all[3 * r + 1], -0.5 * r);
    EXPECT_EQ(all[3 * r + 2], 1e300);
  }
  std::vector<double> wrong(2);
  EXPECT_THROW(comm().allgather(std::span<const double>(mine, 3), wrong), Error);  // local check, no MPI call
}

TEST_F(Mpi, SequenceHashAgreesAndTracksOperations) {
  const std::vector<uint64_t> before = comm().allgather(comm().sequence_hash());
  for (uint64_t h : before) EXPECT_EQ(h, before[0]);
  const uint64_t h0 = comm().sequence_hash();
  std::vector<double> d(4, 1.0);
  comm().allreduce_sum(d);
  const uint64_t h1 = comm().sequence_hash();
  EXPECT_NE(h0, h1);
  std::vector<int64_t> m(4, 1);
  comm().allreduce_max(m);  // same size, another operation: another hash
  EXPECT_NE(h1, comm().sequence_hash());
}

// On ranks other than 0: print only failures, prefixed with the rank.
class FailurePrinter : public ::testing::EmptyTestEventListener {
 public:
  explicit FailurePrinter(int rank) : rank_(rank) {}
  // The name is kept here: UnitTest::current_test_info() would deadlock inside OnTestPartResult.
  void OnTestStart(const ::testing::TestInfo& t) override {
    name_ = std::string(t.test_suite_name()) + "." + t.name();
  }
  void OnTestPartResult(const ::testing::TestPartResult& r) override {
    if (!r.failed()) return;
    std::fprintf(stderr, "[rank %d] %s failed at %s:%d\n%s\n", rank_, name_.c_str(),
                 r.file_name() ? r.file_name() : "?", r.line_number(), r.summary());
  }

 private:
  int rank_;
  std::string name_;
};

}  // namespace
}  // namespace tessera

int main(int argc, char** argv) {
  auto comm = std::make_unique<tessera::MpiCommunicator>(&argc, &argv);
  tessera::g_comm = comm.get();
  ::testing::InitGoogleTest(&argc, argv);
  if (comm->rank() != 0) {
    // Only rank 0 prints; the others still run every test (collectives need all ranks).
    ::testing::TestEventListeners& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(std::make_unique<tessera::FailurePrinter>(comm->rank()).release());
  }
  int rc = RUN_ALL_TESTS();
  // A failure on any rank fails the run on every rank (rank 0's output alone would hide it).
  std::vector<int64_t> any = {rc != 0 ? 1 : 0};
  comm->allreduce_max(any);
  if (any[0] != 0 && rc == 0) {
    if (comm->rank() == 0) std::fprintf(stderr, "mpi_test: a test failed on another rank\n");
    rc = 1;
  }
  tessera::g_comm = nullptr;
  comm.reset();  // MPI_Finalize
  return rc;
}
