// The subcommands of the tessera executable; each returns the process exit code and throws
// tessera::Error for failures (main turns them into one error line and stops every rank).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "core/communicator.h"

namespace tessera::cli {

int train_command(const std::vector<std::string>& args, Communicator& comm);
int eval_command(const std::vector<std::string>& args, Communicator& comm);
int predict_command(const std::vector<std::string>& args, Communicator& comm);
int export_command(const std::vector<std::string>& args, Communicator& comm);
int data_command(const std::vector<std::string>& args, Communicator& comm);
int checkpoint_command(const std::vector<std::string>& args, Communicator& comm);

// Sets the oneTBB thread count for this process (0 = cores on this node / ranks on it) and
// returns it. The tbb::global_control lives until the process ends.
int set_threads(int64_t requested, const Communicator& comm);

// Prints on rank 0 only.
void say(const Communicator& comm, const std::string& line);

// Collective. Rank 0 prints report(path, &ok) for every path, even after a bad one, and returns
// the worst exit code: an Error's code, or kExitCheckpoint where ok came back false (a
// verification failed). Other ranks return 0.
int report_each(Communicator& comm, const std::vector<std::string>& paths,
                const std::function<std::string(const std::string&, bool*)>& report);

}  // namespace tessera::cli
