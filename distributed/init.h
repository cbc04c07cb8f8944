// Starting and ending a distributed job: the process group for how this process was launched, the
// "[rank r/W] " prefix of its messages, and the one way to end a failed job on every rank.
#pragma once

#include <memory>
#include <string>

#include "distributed/process_group.h"

namespace lockstep::distributed {

// The MPI world group when this process was started by an MPI launcher (mpi_launched()), else a
// single-process group.
std::shared_ptr<ProcessGroup> init_process_group(ProcessGroupOptions options = {});

// "[rank r/W] ": rank and world size from the MPI runtime once initialised, else from the Open MPI launcher's
// environment (OMPI_COMM_WORLD_RANK/SIZE), else "[rank 0/1] ".
std::string rank_prefix();

// Ends the job: writes "[rank r/W] message" as one line to stderr (no second prefix when the message already
// starts with it), then MPI_Abort(MPI_COMM_WORLD, code) while MPI is initialised and not finalised, so that
// the other ranks never hang, else std::_Exit(code). Mains call it from their catch; it is the only place in
// Lockstep that ends the process.
[[noreturn]] void abort_job(const std::string& message, int code = 1);

}  // namespace lockstep::distributed
