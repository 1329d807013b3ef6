// The communicator that mpi_test's main creates for every test file of the binary.
#pragma once

#include "distributed/mpi_communicator.h"

namespace tessera {
extern MpiCommunicator* g_comm;
}  // namespace tessera
