// The `lockstep` command-line tool, as one process or as every rank of an mpirun/srun job. Adding a
// subcommand is one line in kCommands (and its run_* function).
#include <signal.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <string>
#include <vector>

#include "distributed/init.h"
#include "distributed/mpi.h"
#include "launch/cli/commands.h"
#include "launch/cli/dispatch.h"

namespace {

constexpr lockstep::launch::Command kCommands[] = {
    {"convert", "convert a data set (MNIST, Fashion-MNIST, IDX, CIFAR-10, NumPy, image folder) to HDF5",
     lockstep::launch::run_convert},
    {"train", "train a classifier or a GAN from a config file (see examples/*.toml)",
     lockstep::launch::run_train},
    {"eval", "test accuracy of a trained classifier; Frechet distance of a generator's samples",
     lockstep::launch::run_eval},
    {"inspect", "what a data set, model file, checkpoint or directory of checkpoints holds",
     lockstep::launch::run_inspect},
    {"sample", "a PNG grid of images from a GAN generator (model file or checkpoint)", lockstep::launch::run_sample},
    {"plot", "PNG figures of a run's metrics.jsonl (losses, accuracies, lr, confusion matrix)",
     lockstep::launch::run_plot},
};

// Whether this process is one rank of a job of several, from the launcher's environment (MPI may not be
// initialised yet, or any more).
bool multi_rank_job() {
  if (!lockstep::distributed::mpi_launched()) return false;
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_NTASKS"}) {
    if (const char* value = std::getenv(name)) return std::atoi(value) > 1;
  }
  return true;  // launched, but of unknown size: ending every rank is the safe side
}

// A failure on one rank of several ends the whole job within seconds ("[rank r/W] message", MPI_Abort)
// instead of leaving the others waiting in a collective; a single process reports it as usual.
void on_failure(const std::string& message) {
  if (multi_rank_job()) lockstep::distributed::abort_job(message);
}

}  // namespace

int main(int argc, char** argv) {
  // libgomp reads OMP_WAIT_POLICY once, when it loads. Its default lets idle threads spin, which burns the
  // cores whenever another process (a second rank, a data loader, a compiler) wants them. Without an explicit
  // choice, the tool re-executes itself once with passive waiting; if that fails it just runs.
  if (std::getenv("OMP_WAIT_POLICY") == nullptr) {
    ::setenv("OMP_WAIT_POLICY", "passive", 1);
    ::execv("/proc/self/exe", argv);
  }
  // Past a file-size limit (ulimit -f) a write then fails with EFBIG and is reported with its file, as a full
  // disk is, instead of SIGXFSZ killing the process without a word (mpirun's ranks do not inherit an ignored
  // signal from the shell).
  std::signal(SIGXFSZ, SIG_IGN);
  try {
    return lockstep::launch::run_cli(kCommands, std::vector<std::string>(argv + 1, argv + argc), std::cout,
                                  std::cerr, on_failure);
  } catch (const std::exception& e) {  // run_cli reports its own; this is the last line of defence
    on_failure(e.what());
    std::cerr << "lockstep: error: " << e.what() << '\n';
    return 1;
  }
}
