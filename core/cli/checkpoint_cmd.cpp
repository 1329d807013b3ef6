// `tessera checkpoint inspect PATH`: what a checkpoint (or each checkpoint of a run directory)
// holds, its provenance and a verification verdict; the exit status is the verdict.
#include <algorithm>
#include <cstdio>

#include "core/cli/args.h"
#include "core/cli/commands.h"
#include "core/error.h"
#include "io/checkpoint.h"

namespace tessera::cli {

namespace {

constexpr const char* kCheckpointUsage = "usage: tessera checkpoint inspect PATH... (takes --help)";
constexpr const char* kInspectUsage =
    "usage: tessera checkpoint inspect PATH...\n"
    "  PATH is a checkpoint directory (run/checkpoints/step-000040) or a run directory (each of its\n"
    "  checkpoints and LATEST). Prints step, epoch, model, optimizer, data fingerprint, parts and\n"
    "  provenance, and verifies every part's SHA-256 against MANIFEST, the weights checksum and the\n"
    "  rank replicas. Exit status: 0 when every checkpoint verifies, 4 when one does not.";

}  // namespace

int checkpoint_command(const std::vector<std::string>& argv, Communicator& comm) {
  if (argv.empty() || argv[0] == "--help" || argv[0] == "-h") {
    say(comm, kCheckpointUsage);
    return argv.empty() ? kExitUsage : 0;
  }
  if (argv[0] != "inspect") throw ConfigError("unknown checkpoint command '" + argv[0] + "'\n" + kCheckpointUsage);
  const Args args(std::vector<std::string>(argv.begin() + 1, argv.end()), {}, {}, kInspectUsage);
  if (args.help()) {
    say(comm, kInspectUsage);
    return 0;
  }
  if (args.positional().empty()) throw ConfigError(std::string("no PATH given\n") + kInspectUsage);
  return report_each(comm, args.positional(), inspect_checkpoint);
}

}  // namespace tessera::cli
