// The MPI world group of the test_mpi binary, created by its main (tests/mpi/main.cpp) before any test runs
// and released after the last one: every test of tests/mpi/*.cpp shares it.
#pragma once

#include <chrono>
#include <memory>

#include "distributed/process_group.h"

namespace lockstep::test {

// The group over all ranks of the mpirun job (an MpiProcessGroup).
std::shared_ptr<lockstep::distributed::ProcessGroup> mpi_world();

// Options for the groups tests make themselves: a 2-minute watchdog, so that a hung test fails sooner.
inline lockstep::distributed::ProcessGroupOptions test_group_options() {
  lockstep::distributed::ProcessGroupOptions o;
  o.timeout = std::chrono::minutes(2);
  return o;
}

}  // namespace lockstep::test
