// Which launcher started this process (mpirun, srun, or none) and the rank, world size and node-local rank
// it announced in the environment, read before MPI is initialised. The environment is injectable, so tests
// describe a launch without touching the real one.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>

namespace lockstep::launch {

// Looks up one environment variable: nullopt when unset (a set but empty variable is "").
using EnvLookup = std::function<std::optional<std::string>(const std::string& name)>;

// The real process environment (std::getenv).
EnvLookup process_environment();
// A fixed environment holding exactly `variables`, for tests.
EnvLookup environment_of(std::map<std::string, std::string> variables);

// What the launcher told this process. `launcher` is "mpirun", "srun" or "single".
struct LaunchInfo {
  std::string launcher = "single";
  int rank = 0;
  // The job's number of processes; 0 when the launcher did not say (a PMIx or PMI launcher other than
  // mpirun and srun): the MPI world knows it once initialised.
  int world = 1;
  // A guess made before MPI is initialised, from the launcher's variable (0 when it sets none). Once MPI
  // runs, MpiProcessGroup::local_rank() (MPI_Comm_split_type over shared memory) is the authority: use it
  // to pick a device or to share out cores.
  int local_rank = 0;
  // Whether the launcher wired this process into an MPI job (Open MPI's OMPI_COMM_WORLD_* or a PMIx/PMI
  // rank): MPI_Init will then join the other ranks. The same variables as distributed::mpi_launched(), which
  // reads the real environment and decides init_process_group; keep the two lists equal. False for a task
  // of `srun` without an MPI plugin: MPI would make it a world of its own (see `unwired_tasks()`).
  bool mpi = false;
  bool operator==(const LaunchInfo&) const = default;

  // True for several srun tasks that MPI would not join (srun without --mpi=pmix): each would train alone
  // and write the same files. A trainer refuses to start then.
  bool unwired_tasks() const { return launcher == "srun" && !mpi && world > 1; }
};

// Reads the launcher's variables, in this order:
//  - mpirun (Open MPI) sets OMPI_COMM_WORLD_RANK, _SIZE and _LOCAL_RANK (and PMIX_RANK) in every rank. Under
//    mpirun inside a Slurm allocation every rank also sees SLURM_PROCID=0, so Open MPI's variables win.
//  - srun --mpi=pmix (or pmi2) sets PMIX_RANK (PMI_RANK) and SLURM_PROCID, SLURM_STEP_NUM_TASKS (the step's
//    tasks; SLURM_NTASKS is the fallback) and SLURM_LOCALID, but no OMPI_* variables: launcher "srun",
//    rank from PMIX_RANK, then PMI_RANK, then SLURM_PROCID.
//  - PMIX_RANK or PMI_RANK without Slurm (another MPI launcher, e.g. MPICH's mpiexec with PMI_SIZE):
//    launcher "mpirun", world from PMI_SIZE when set, else 0 (unknown).
//  - srun without an MPI plugin (SLURM_PROCID with SLURM_STEP_NUM_TASKS, no PMI): launcher "srun", mpi
//    false. A batch script itself (SLURM_PROCID=0 without a step's task count) is "single".
//  - anything else: "single", rank 0 of 1.
// A malformed value (not a decimal integer, a negative count, a rank outside the world, an Open MPI rank
// without its size) is a ConfigError naming the variable and its value (file "environment", key = name).
LaunchInfo detect_launch(const EnvLookup& env = process_environment());

// "mpirun rank 1/4 (local 1)", "srun rank 0/8 (local 0)", "single process".
std::string describe(const LaunchInfo& info);

}  // namespace lockstep::launch
