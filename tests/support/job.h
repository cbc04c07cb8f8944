// Whole jobs for tests (mpirun, `lockstep` as a process): the jobs' environment, a command run with its time
// reported, a job started in a session of its own and killed with SIGKILL on every process (or on one rank),
// and comparing the final checkpoints of two runs with the real h5diff.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "tests/support/command.h"

namespace lockstep::test {

// Lets mpirun run as root, one thread per rank (the same sums in every run), idle threads sleeping.
void set_job_environment();

// run_command with the jobs' environment, printing "[   JOB    ] exit S after T s: COMMAND".
CommandResult run_job(const std::string& command, int limit_s = 120, const std::string& kill_signal = "KILL");

// `MPIEXEC --oversubscribe --bind-to none -np NP COMMAND` on this machine, as the CTest mpi label runs jobs.
std::string mpirun(const std::string& mpiexec, int np, const std::string& command);

// The whole contents of `path` ("" when it cannot be read).
std::string read_text(const std::filesystem::path& path);
// At most the last `n` characters of `text` (keeps failure messages readable).
std::string tail(const std::string& text, std::size_t n = 4000);

// A command line started through /bin/sh in a session of its own (stdin /dev/null, stdout and stderr to
// `log`), with the jobs' environment. Its processes are the live ones in its session or whose command line
// contains `tag` (Open MPI starts each rank in a process group of its own, so a job cannot be killed by
// group; the ranks stay in mpirun's session, and their command lines name the test's folder).
class SpawnedJob {
 public:
  SpawnedJob(const std::string& command, const std::filesystem::path& log, std::string tag);
  ~SpawnedJob();  // kills what is left and reaps the shell
  SpawnedJob(const SpawnedJob&) = delete;
  SpawnedJob& operator=(const SpawnedJob&) = delete;

  // Seconds since the start.
  double seconds() const;
  // True once the command itself has ended (reaped; status() then holds its status).
  bool ended();
  // Waits up to `limit_s` seconds for the command to end; true when it did.
  bool wait(double limit_s);
  // Exit status, or 128 + signal; -1 while running.
  int status() const { return status_; }
  // The live processes of the job (see above), this process excluded.
  std::vector<pid_t> processes() const;
  // The job's process that is rank `rank` of an MPI job (OMPI_COMM_WORLD_RANK in its environment); -1 if
  // none.
  pid_t rank_process(int rank) const;
  // SIGKILL to every process of the job until none is left; then reaps the command. False (with a test
  // failure) when processes survive.
  bool kill_all();
  std::string output() const { return read_text(log_); }

 private:
  std::string command_;
  std::filesystem::path log_;
  std::string tag_;
  pid_t pid_ = -1;
  int status_ = -1;
  double t0_ = 0.0;
};

struct KilledJob {
  bool reached = false;  // the moment came and the job was killed then
  int status = -1;       // the command's: 128 + 9 when killed, its exit status when it ended on its own
  double seconds = 0.0;  // until the kill (or the end)
  std::string output;
};

// Starts `command` as a SpawnedJob, polls every `poll_ms` ms for `moment()` to be true and then sends SIGKILL
// to every process of the job, waiting until none is left. A job still running after `limit_s` is killed
// too. Prints how it ended.
KilledJob run_until_then_kill(const std::string& command, const std::function<bool()>& moment,
                              const std::string& tag, const std::filesystem::path& log, int limit_s = 120,
                              double poll_ms = 5.0);

// `h5diff A B OBJECTS` with the real h5diff (HDF5's command-line tools): exit status 0 means no difference.
CommandResult h5diff(const std::filesystem::path& a, const std::filesystem::path& b,
                     const std::string& objects = "");

// Expects the checkpoints `a` and `b` (directories) to be identical: the `model_groups` (space-separated) of
// model.h5 (its root attribute `config` names each run's folder), optimizer.h5 whole, and trainer.h5's
// figures, random streams and `trainer_groups`.
void expect_same_checkpoint_contents(const std::filesystem::path& a, const std::filesystem::path& b,
                                     const std::string& model_groups, const std::string& trainer_groups = "");
// The part of it that does not depend on the world size: the `model_groups` of model.h5 and optimizer.h5.
void expect_same_models_and_optimizers(const std::filesystem::path& a, const std::filesystem::path& b,
                                       const std::string& model_groups);

}  // namespace lockstep::test
