// MpiCommunicator: core's Communicator over MPI_COMM_WORLD. The only place tessera includes
// <mpi.h>. Only the main thread may call it. Large buffers are reduced in pieces of at most
// kMaxMessageBytes because shared-memory allreduce slows ~16x above 16 MiB here (LIMITS.md).
// Every collective is non-blocking underneath and waited for with MPI_Test against a deadline
// (set_timeout): a rank that never arrives (stopped, killed, or issuing another collective)
// ends the wait with a CommError that names the step, the collective and the missing ranks.
#pragma once

#include <memory>

#include "core/communicator.h"

namespace tessera {

class MpiCommunicator final : public Communicator {
 public:
  static constexpr size_t kMaxMessageBytes = size_t{4} << 20;

  // Calls MPI_Init if needed; MPI_Finalize runs in the destructor of the last instance.
  MpiCommunicator(int* argc, char*** argv);
  ~MpiCommunicator() override;
  MpiCommunicator(const MpiCommunicator&) = delete;
  MpiCommunicator& operator=(const MpiCommunicator&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int local_size() const override { return local_size_; }
  void allreduce_sum(std::span<float> data) override;
  void allreduce_sum(std::span<double> data) override;
  void allreduce_max(std::span<int64_t> data) override;
  void broadcast(std::span<float> data, int root) override;
  void broadcast(std::span<std::byte> data, int root) override;
  std::vector<uint64_t> allgather(uint64_t value) override;
  void allgather(std::span<const double> mine, std::span<double> all) override;
  std::vector<std::string> host_names() override;
  void barrier() override;
  void start_allreduce_sum(std::span<float> data) override;
  void progress() override;
  void wait_all() override;
  uint64_t sequence_hash() const override;
  // 300 s until the config is read.
  void set_timeout(double seconds) override;

  // Stops every rank with this exit code (MPI_Abort). Safe to call from any rank alone.
  [[noreturn]] static void abort_all(int code);

 private:
  struct Guard;  // pending requests and the out-of-band "where are you" protocol (MPI types)
  std::unique_ptr<Guard> guard_;
  int rank_ = 0, size_ = 1, local_size_ = 1;
  bool finalize_ = false;
};

}  // namespace tessera
