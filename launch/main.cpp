// The `lockstep` command-line tool. Adding a subcommand is one line in kCommands (and its run_* function).
#include <unistd.h>

#include <cstdlib>
#include <exception>
#include <iostream>
#include <string>
#include <vector>

#include "launch/cli/commands.h"
#include "launch/cli/dispatch.h"

namespace {

constexpr lockstep::cli::Command kCommands[] = {
    {"convert", "convert a data set (MNIST, Fashion-MNIST, IDX, CIFAR-10, NumPy, image folder) to HDF5",
     lockstep::cli::run_convert},
    {"train", "train a classifier or a GAN from a config file (see examples/*.toml)", lockstep::cli::run_train},
    {"eval", "test accuracy of a trained classifier; Frechet distance of a generator's samples",
     lockstep::cli::run_eval},
};

}  // namespace

int main(int argc, char** argv) {
  // libgomp reads OMP_WAIT_POLICY once, when it loads. Its default lets idle threads spin, which burns the
  // cores whenever another process (a second rank, a data loader, a compiler) wants them. Without an explicit
  // choice, the tool re-executes itself once with passive waiting; if that fails it just runs.
  if (std::getenv("OMP_WAIT_POLICY") == nullptr) {
    ::setenv("OMP_WAIT_POLICY", "passive", 1);
    ::execv("/proc/self/exe", argv);
  }
  try {
    return lockstep::cli::run_cli(kCommands, std::vector<std::string>(argv + 1, argv + argc), std::cout,
                                  std::cerr);
  } catch (const std::exception& e) {
    std::cerr << "lockstep: error: " << e.what() << '\n';
    return 1;
  }
}
