// Starting a job's process group from how it was launched, and ending a failed job on every rank.
#include "distributed/init.h"

// The C API only (Open MPI's header would otherwise pull in its deprecated C++ bindings).
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <optional>

#include "distributed/mpi.h"
#include "distributed/single.h"
#include "src/core/error.h"

namespace lockstep::distributed {
namespace {

std::optional<int> env_int(const char* name) {
  const char* text = std::getenv(name);
  if (text == nullptr || *text == '\0') return std::nullopt;
  char* end = nullptr;
  const long value = std::strtol(text, &end, 10);
  if (*end != '\0') return std::nullopt;
  return static_cast<int>(value);
}

}  // namespace

std::shared_ptr<ProcessGroup> init_process_group(ProcessGroupOptions options) {
  if (mpi_launched()) return MpiProcessGroup::world(options);
  return std::make_shared<SingleProcessGroup>(options);
}

std::string rank_prefix() {
  if (const auto world = mpi_world_rank()) return str_cat("[rank ", world->rank, "/", world->size, "] ");
  const auto rank = env_int("OMPI_COMM_WORLD_RANK");
  const auto size = env_int("OMPI_COMM_WORLD_SIZE");
  if (rank && size) return str_cat("[rank ", *rank, "/", *size, "] ");
  return "[rank 0/1] ";
}

void abort_job(const std::string& message, int code) {
  const std::string prefix = rank_prefix();
  std::string line = message.rfind(prefix, 0) == 0 ? message : prefix + message;
  if (line.empty() || line.back() != '\n') line += '\n';
  std::cout.flush();
  std::fflush(stdout);
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
  int initialized = 0;
  int finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (initialized && !finalized) MPI_Abort(MPI_COMM_WORLD, code);
  std::_Exit(code);
}

}  // namespace lockstep::distributed
