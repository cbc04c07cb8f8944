// Stopping a run cleanly on a signal: SIGUSR1 (a warning before the time limit) and SIGTERM (scancel,
// preemption) only set a flag; at a step boundary the ranks agree to stop, save a checkpoint and exit with
// kExitRequeue.
#pragma once

#include <string>

#include "distributed/process_group.h"

namespace lockstep::launch {

// The exit code of a run that stopped on SIGUSR1 or SIGTERM after committing a checkpoint: rerun it (or let
// a job script requeue it, `scontrol requeue $SLURM_JOB_ID`) to resume. Next to run_cli's 0 (success),
// 1 (failure) and 2 (usage error); distinct from 128 + signal, the code of a process the signal killed.
inline constexpr int kExitRequeue = 3;

// Where the signals come from: `sbatch --signal=USR1@120` sends SIGUSR1 to every task of the job's srun
// steps 120 s before the limit; for mpirun in a batch script, `--signal=B:USR1@120` signals the batch shell,
// so start the job with `exec mpirun ...` to make mpirun that shell. mpirun (Open MPI 4.1) forwards SIGUSR1
// and SIGTERM to every rank.
//
// Installs handlers for SIGUSR1 and SIGTERM that record the first of them received, and restores the
// previous handlers when destroyed. Owns the process-wide flag: at most one StopSignals exists at a time
// (a second is a ValueError). The handlers only store into a lock-free atomic (async-signal-safe), with
// SA_RESTART so that interrupted system calls resume; the signal may arrive on any thread. requested() and
// signal() may be called from any thread.
class StopSignals {
 public:
  // Clears the flag and installs the handlers. Error naming the signal when sigaction fails.
  StopSignals();
  ~StopSignals();
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

  // Whether SIGUSR1 or SIGTERM arrived since construction.
  bool requested() const { return signal() != 0; }
  // The first of them that arrived (SIGUSR1 or SIGTERM), 0 when none.
  int signal() const;
};

// One all_reduce (max) over `group` of each rank's stop signal (0 for none), so that every rank reaches the
// same decision at the same step boundary: the largest signal number any rank received, 0 when none. Every
// rank starts it at the same point (it is a collective): construction starts it, result() waits for it
// (the destructor too, when result() was not called: the all-reduce writes into the vote).
class StopVote {
 public:
  StopVote(distributed::ProcessGroup& group, int local_signal);
  ~StopVote();
  StopVote(const StopVote&) = delete;
  StopVote& operator=(const StopVote&) = delete;
  int result();

 private:
  Tensor flag_;
  distributed::WorkPtr work_;  // null once waited for
};

// "SIGUSR1", "SIGTERM", or "signal N".
std::string signal_name(int signal);

}  // namespace lockstep::launch
