// Entry points of the `lockstep` subcommands. Each takes the arguments after the command's name, writes
// its output to std::cout, returns the exit code and throws lockstep errors (launch::UsageError for a bad
// command line); run_cli turns those into messages.
#pragma once

#include <string>
#include <vector>

namespace lockstep::launch {

// `lockstep convert`: a data set in its original format to the HDF5 layout the loader reads.
int run_convert(const std::vector<std::string>& args);
// `lockstep train CONFIG [key=value ...]`: classifier or GAN training from a config file.
int run_train(const std::vector<std::string>& args);
// `lockstep eval --classifier MODEL.h5 [--generator MODEL.h5]`: test accuracy and the Fréchet distance.
int run_eval(const std::vector<std::string>& args);
// `lockstep inspect PATH`: what a data set, model file, checkpoint or directory of checkpoints holds; 1 when
// a checkpoint fails verification.
int run_inspect(const std::vector<std::string>& args);
// `lockstep sample PATH [--count N] [--seed S] [--output FILE.png] [--columns C]`: a PNG grid of a GAN
// generator's images, from a model file, a checkpoint or the newest valid checkpoint of a directory.
int run_sample(const std::vector<std::string>& args);
// `lockstep plot RUN_DIR [--output DIR]`: PNG figures of a run's metrics.jsonl (curves, confusion matrix).
int run_plot(const std::vector<std::string>& args);

}  // namespace lockstep::launch
