// tessera's collectives against raw MPI calls on the same buffers, under mpirun (-np 2 and up):
// float sum allreduce from 8 B to 64 MiB. Raw MPI_Allreduce sends one message of any size;
// tessera sends pieces of at most 4 MiB, non-blocking, each waited for with MPI_Test against
// the timeout (MpiCommunicator). Every iteration is timed on every rank and the max over ranks is
// reported (STYLE §7); iteration counts are fixed so that all ranks run the same collectives.
// The one benchmark that includes <mpi.h> outside distributed/: it must call MPI directly.
#include <benchmark/benchmark.h>
#include <mpi.h>

#include <chrono>
#include <cstring>
#include <memory>
#include <vector>

#include "distributed/mpi_communicator.h"

namespace {

tessera::MpiCommunicator* g_comm = nullptr;

// Ranks other than 0 run every benchmark (they are collective) and report nothing.
class Silent : public benchmark::BenchmarkReporter {
 public:
  bool ReportContext(const Context&) override { return true; }
  void ReportRuns(const std::vector<Run>&) override {}
};

// Runs op once per iteration and reports the slowest rank's time; validates the sum first.
template <class Op>
void timed(benchmark::State& state, Op op) {
  const size_t n = static_cast<size_t>(state.range(0)) / sizeof(float);
  std::vector<float> buf(n, 1.0f);
  op(buf);
  const float want = static_cast<float>(g_comm->size());
  for (size_t i = 0; i < n; ++i) {
    if (buf[i] != want) {
      state.SkipWithError("wrong sum");
      return;
    }
  }
  for (auto _ : state) {
    std::fill(buf.begin(), buf.end(), 1.0f);
    MPI_Barrier(MPI_COMM_WORLD);
    const auto t0 = std::chrono::steady_clock::now();
    op(buf);
    double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    MPI_Allreduce(MPI_IN_PLACE, &dt, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    state.SetIterationTime(dt);
  }
  const double bytes = static_cast<double>(n * sizeof(float));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(bytes));
  // Bus bandwidth as nccl-tests define it for allreduce: 2 (N-1)/N bytes moved per byte reduced.
  const double p = g_comm->size();
  state.counters["busbw_GBps"] = benchmark::Counter(bytes * 2 * (p - 1) / p * 1e-9 * static_cast<double>(state.iterations()),
                                                    benchmark::Counter::kIsRate);
}

void BM_RawMpiAllreduce(benchmark::State& state) {
  timed(state, [](std::vector<float>& b) {
    MPI_Allreduce(MPI_IN_PLACE, b.data(), static_cast<int>(b.size()), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
  });
}

void BM_RawMpiIallreduce(benchmark::State& state) {
  timed(state, [](std::vector<float>& b) {
    MPI_Request r;
    MPI_Iallreduce(MPI_IN_PLACE, b.data(), static_cast<int>(b.size()), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &r);
    MPI_Wait(&r, MPI_STATUS_IGNORE);
  });
}

void BM_TesseraAllreduce(benchmark::State& state) {
  timed(state, [](std::vector<float>& b) { g_comm->allreduce_sum(std::span<float>(b)); });
}

// Iterations fall with size so each benchmark takes about the same time.
void sizes(benchmark::internal::Benchmark* b) {
  for (int64_t bytes = 8; bytes <= (int64_t{64} << 20); bytes *= 8) {
    b->Args({bytes});
  }
  b->Args({int64_t{4} << 20})->Args({int64_t{16} << 20})->Args({int64_t{30} << 20});
}

}  // namespace

#define TESSERA_COLLECTIVE_BENCH(fn)                                                  \
  BENCHMARK(fn)->Apply(sizes)->UseManualTime()->Unit(benchmark::kMicrosecond)->Iterations(30)

TESSERA_COLLECTIVE_BENCH(BM_RawMpiAllreduce);
TESSERA_COLLECTIVE_BENCH(BM_RawMpiIallreduce);
TESSERA_COLLECTIVE_BENCH(BM_TesseraAllreduce);

int main(int argc, char** argv) {
  auto comm = std::make_unique<tessera::MpiCommunicator>(&argc, &argv);
  g_comm = comm.get();
  benchmark::Initialize(&argc, argv);
  if (comm->rank() != 0) {
    Silent silent;
    benchmark::RunSpecifiedBenchmarks(&silent);
  } else {
    benchmark::RunSpecifiedBenchmarks();
  }
  benchmark::Shutdown();
  g_comm = nullptr;
  comm.reset();
  return 0;
}
