// The Communicator interface (DESIGN §6) and its one-rank implementation. Every method marked
// "collective" must be called by all ranks in the same order with the same sizes.
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
  // Collective: each rank's host name, indexed by rank.
  virtual std::vector<std::string> host_names() = 0;
  // Collective.
  virtual void barrier() = 0;
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
  std::vector<std::string> host_names() override { return {"localhost"}; }
  void barrier() override {}
};

// Collective: throws ConfigError naming the disagreeing ranks unless every rank passes the
// same value (a hash of what must agree: config, model shape, dataset shape).
void check_agreement(Communicator& comm, uint64_t value, const std::string& what);

}  // namespace tessera
