// The `lockstep` command-line tool. Adding a subcommand is one line in kCommands (and its run_* function).
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
  try {
    return lockstep::cli::run_cli(kCommands, std::vector<std::string>(argv + 1, argv + argc), std::cout,
                                  std::cerr);
  } catch (const std::exception& e) {
    std::cerr << "lockstep: error: " << e.what() << '\n';
    return 1;
  }
}
