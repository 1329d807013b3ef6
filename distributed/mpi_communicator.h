// MpiCommunicator: core's Communicator over MPI_COMM_WORLD. The only place tessera includes
// <mpi.h>. Only the main thread may call it. Large buffers are reduced in pieces of at most
// kMaxMessageBytes because shared-memory allreduce slows ~16x above 16 MiB here (LIMITS.md).
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
  std::vector<std::string> host_names() override;
  void barrier() override;

  // Stops every rank with this exit code (MPI_Abort). Safe to call from any rank alone.
  [[noreturn]] static void abort_all(int code);

 private:
  int rank_ = 0, size_ = 1, local_size_ = 1;
  bool finalize_ = false;
};

}  // namespace tessera
