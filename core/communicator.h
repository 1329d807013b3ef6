// The Communicator interface (DESIGN §6) and its one-rank implementation. Every method marked
// "collective" must be called by all ranks in the same order with the same sizes; an
// implementation may check that (sequence_hash) and must never wait forever (MpiCommunicator
// stops a collective that waits longer than its timeout with a CommError naming the ranks).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace tessera {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // Ranks sharing this node (for the default thread count).
  virtual int local_size() const = 0;

  // Collective: element-wise sum across ranks, in place. Same N -> same bits.
  virtual void allreduce_sum(std::span<float> data) = 0;
  virtual void allreduce_sum(std::span<double> data) = 0;
  // Collective: element-wise max across ranks, in place.
  virtual void allreduce_max(std::span<int64_t> data) = 0;
  // Collective: root's bytes copied to every rank.
  virtual void broadcast(std::span<float> data, int root) = 0;
  virtual void broadcast(std::span<std::byte> data, int root) = 0;
  // Collective: one value from each rank, indexed by rank.
  virtual std::vector<uint64_t> allgather(uint64_t value) = 0;
  // Collective: mine.size() values from each rank into all (size() * mine.size()), rank-major.
  virtual void allgather(std::span<const double> mine, std::span<double> all) = 0;
  // Collective: each rank's host name, indexed by rank.
  virtual std::vector<std::string> host_names() = 0;
  // Collective.
  virtual void barrier() = 0;

  // Collective, non-blocking: starts an in-place element-wise sum of data, which must not be
  // touched until wait_all(). Started sums are split into pieces at the same boundaries as
  // allreduce_sum, so both give the same bits. Pending operations are not allocated per call
  // once warmed up.
  virtual void start_allreduce_sum(std::span<float> data) = 0;
  // Lets pending operations advance (MPI moves non-blocking collectives only inside MPI calls).
  // Cheap; call it between pieces of computation. Main thread only, like every method here.
  virtual void progress() = 0;
  // Waits for every started operation, under the same timeout as the blocking collectives.
  virtual void wait_all() = 0;

  // A running hash of every collective issued so far (operation and element count). Equal on
  // all ranks exactly when they issued the same sequence; compared by the trainer.
  virtual uint64_t sequence_hash() const = 0;
  // Seconds a collective may wait before the job stops with a CommError (distributed.timeout_s).
  virtual void set_timeout(double seconds) = 0;
  // The training step that error messages name (-1: not training).
  void set_step(int64_t step) { step_ = step; }
  int64_t step() const { return step_; }

 private:
  int64_t step_ = -1;
};

// One rank: every collective is the identity. For unit tests and single-process tools.
class LocalCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  int local_size() const override { return 1; }
  void allreduce_sum(std::span<float>) override {}
  void allreduce_sum(std::span<double>) override {}
  void allreduce_max(std::span<int64_t>) override {}
  void broadcast(std::span<float>, int) override {}
  void broadcast(std::span<std::byte>, int) override {}
  std::vector<uint64_t> allgather(uint64_t value) override { return {value}; }
  void allgather(std::span<const double> mine, std::span<double> all) override;
  std::vector<std::string> host_names() override { return {"localhost"}; }
  void barrier() override {}
  void start_allreduce_sum(std::span<float>) override {}
  void progress() override {}
  void wait_all() override {}
  uint64_t sequence_hash() const override { return 0; }
  void set_timeout(double) override {}
};

// Collective: throws ConfigError naming the disagreeing ranks unless every rank passes the
// same value (a hash of what must agree: config, model shape, dataset shape).
void check_agreement(Communicator& comm, uint64_t value, const std::string& what);

// The ranks (as "1,3") whose value differs from rank 0's; empty when all agree.
std::string ranks_differing(const std::vector<uint64_t>& values);

}  // namespace tessera
