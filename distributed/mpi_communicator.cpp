// MpiCommunicator: thin checked wrappers; an MPI error becomes a CommError (exit 5).
#include "distributed/mpi_communicator.h"

#include <mpi.h>

#include <algorithm>
#include <cstdlib>

#include "core/error.h"

namespace tessera {

namespace {

void check_mpi(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  throw CommError(std::string(what) + " failed: " + std::string(msg, static_cast<size_t>(len)));
}

template <class T>
void allreduce_pieces(T* data, size_t n, MPI_Datatype type, MPI_Op op, const char* what) {
  const size_t piece = MpiCommunicator::kMaxMessageBytes / sizeof(T);
  for (size_t off = 0; off < n; off += piece) {
    const int count = static_cast<int>(std::min(piece, n - off));
    check_mpi(MPI_Allreduce(MPI_IN_PLACE, data + off, count, type, op, MPI_COMM_WORLD), what);
  }
}

}  // namespace

MpiCommunicator::MpiCommunicator(int* argc, char*** argv) {
  int inited = 0;
  MPI_Initialized(&inited);
  if (!inited) {
    int provided = 0;
    // FUNNELED: tessera's worker threads never call MPI.
    MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
    finalize_ = true;
  }
  // Errors come back as codes we turn into exceptions (then MPI_Abort in main), not a bare abort.
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
  MPI_Comm node;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node);
  MPI_Comm_size(node, &local_size_);
  MPI_Comm_free(&node);
}

MpiCommunicator::~MpiCommunicator() {
  if (finalize_) {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Finalize();
  }
}

void MpiCommunicator::allreduce_sum(std::span<float> data) {
  allreduce_pieces(data.data(), data.size(), MPI_FLOAT, MPI_SUM, "MPI_Allreduce(float sum)");
}

void MpiCommunicator::allreduce_sum(std::span<double> data) {
  allreduce_pieces(data.data(), data.size(), MPI_DOUBLE, MPI_SUM, "MPI_Allreduce(double sum)");
}

void MpiCommunicator::allreduce_max(std::span<int64_t> data) {
  allreduce_pieces(data.data(), data.size(), MPI_INT64_T, MPI_MAX, "MPI_Allreduce(int64 max)");
}

void MpiCommunicator::broadcast(std::span<float> data, int root) {
  broadcast(std::as_writable_bytes(data), root);
}

void MpiCommunicator::broadcast(std::span<std::byte> data, int root) {
  const size_t piece = kMaxMessageBytes;
  for (size_t off = 0; off < data.size(); off += piece) {
    const int count = static_cast<int>(std::min(piece, data.size() - off));
    check_mpi(MPI_Bcast(data.data() + off, count, MPI_BYTE, root, MPI_COMM_WORLD), "MPI_Bcast");
  }
}

std::vector<uint64_t> MpiCommunicator::allgather(uint64_t value) {
  std::vector<uint64_t> all(static_cast<size_t>(size_));
  check_mpi(MPI_Allgather(&value, 1, MPI_UINT64_T, all.data(), 1, MPI_UINT64_T, MPI_COMM_WORLD),
            "MPI_Allgather");
  return all;
}

std::vector<std::string> MpiCommunicator::host_names() {
  char name[MPI_MAX_PROCESSOR_NAME] = {};
  int len = 0;
  MPI_Get_processor_name(name, &len);
  std::vector<char> all(static_cast<size_t>(size_) * MPI_MAX_PROCESSOR_NAME);
  check_mpi(MPI_Allgather(name, MPI_MAX_PROCESSOR_NAME, MPI_CHAR, all.data(),
                          MPI_MAX_PROCESSOR_NAME, MPI_CHAR, MPI_COMM_WORLD),
            "MPI_Allgather(host names)");
  std::vector<std::string> out;
  for (int r = 0; r < size_; ++r) out.emplace_back(all.data() + static_cast<size_t>(r) * MPI_MAX_PROCESSOR_NAME);
  return out;
}

void MpiCommunicator::barrier() { check_mpi(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier"); }

void MpiCommunicator::abort_all(int code) {
  int inited = 0, finalized = 0;
  MPI_Initialized(&inited);
  MPI_Finalized(&finalized);
  if (inited && !finalized) MPI_Abort(MPI_COMM_WORLD, code);
  std::exit(code);
}

}  // namespace tessera
