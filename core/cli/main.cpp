// tessera: the composition root. Dispatches subcommands; any error on any rank prints one line
// `tessera: error: [rank R] ...` and stops every rank with the error's exit code (MPI_Abort),
// because a lone exiting rank would leave the others waiting in a collective forever.
#include <sys/resource.h>
#include <sys/stat.h>

#include <cstdio>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include "core/build_info.h"
#include "core/cli/commands.h"
#include "core/error.h"
#include "distributed/mpi_communicator.h"
#include "kernels/dense.h"

namespace {

constexpr const char* kUsage =
    "usage: tessera <command> [options]   (each command takes --help)\n"
    "  train CONFIG.toml [--set key=value]... [--resume auto|never|PATH] [--warm-start PATH] [--quiet]\n"
    "  eval CONFIG.toml --checkpoint PATH [--data FILE]...\n"
    "  predict --checkpoint PATH --data FILE [--data FILE]... --out PRED.h5\n"
    "  export --checkpoint PATH --out MODEL.h5\n"
    "  data synth|import|inspect ...\n"
    "  checkpoint inspect PATH...\n"
    "  --version\n"
    "Run under mpirun -np N for N data-parallel ranks.";

// The main thread runs tiles of the products too, on the stack `ulimit -s` gives it: refuse
// before any work starts rather than overflow it in the first step (a SIGSEGV).
void check_stack_limit() {
  rlimit r{};
  if (getrlimit(RLIMIT_STACK, &r) != 0 || r.rlim_cur == RLIM_INFINITY) return;
  constexpr int64_t kCallChain = 256 * 1024;  // the frames above a tile: trainer, oneTBB, HDF5
  const int64_t need = tessera::kernels::dense_tile_stack_bytes() + kCallChain;
  if (static_cast<int64_t>(r.rlim_cur) >= need) return;
  throw tessera::ConfigError(
      "the stack limit (ulimit -s) is " + std::to_string(r.rlim_cur / 1024) + " KiB; tessera's " +
      tessera::kernels::gemm_engine_name() + " GEMM engine needs " + std::to_string(need / 1024) +
      " KiB on the main thread, which runs tiles of the products: raise it (ulimit -s 8192)");
}

int dispatch(const std::vector<std::string>& argv, tessera::Communicator& comm) {
  using namespace tessera::cli;
  if (argv.empty() || argv[0] == "--help" || argv[0] == "-h" || argv[0] == "help") {
    say(comm, kUsage);
    return argv.empty() ? tessera::kExitUsage : 0;
  }
  if (argv[0] == "--version") {
    say(comm, std::string("tessera ") + tessera::kVersion + " (" + tessera::kGitCommit + ")");
    return 0;
  }
  const std::vector<std::string> rest(argv.begin() + 1, argv.end());
  if (argv[0] == "train" || argv[0] == "eval" || argv[0] == "predict") check_stack_limit();
  if (argv[0] == "train") return train_command(rest, comm);
  if (argv[0] == "eval") return eval_command(rest, comm);
  if (argv[0] == "predict") return predict_command(rest, comm);
  if (argv[0] == "export") return export_command(rest, comm);
  if (argv[0] == "data") return data_command(rest, comm);
  if (argv[0] == "checkpoint") return checkpoint_command(rest, comm);
  throw tessera::ConfigError("unknown command '" + argv[0] + "'\n" + kUsage);
}

}  // namespace

int main(int argc, char** argv) {
  ::umask(022);  // nothing we create is group- or world-writable
  std::unique_ptr<tessera::MpiCommunicator> comm;
  int code = 0;
  std::string message;
  try {
    comm = std::make_unique<tessera::MpiCommunicator>(&argc, &argv);
    return dispatch(std::vector<std::string>(argv + 1, argv + argc), *comm);
  } catch (const tessera::Error& e) {
    code = e.code();
    message = e.what();
  } catch (const std::bad_alloc&) {
    code = tessera::kExitOther;
    message = "out of memory (lower train.batch_size or the model size, or use more ranks)";
  } catch (const std::exception& e) {
    code = tessera::kExitOther;
    message = e.what();
  }
  const int rank = comm ? comm->rank() : 0;
  std::fprintf(stderr, "tessera: error: [rank %d] %s\n", rank, message.c_str());
  std::fflush(stderr);
  if (comm && comm->size() > 1) tessera::MpiCommunicator::abort_all(code);
  return code;  // one rank: finalize normally, exit with the code
}
