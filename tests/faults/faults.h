// Shared by the fault-injection tests (tests/faults, CTest label faults): the `lockstep` command lines they
// run, what a checkpoint folder holds, and the bounds every fault is held to.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "tests/support/command.h"

namespace lockstep::test {

// What the issue requires of a job that fails: it ends by itself within this bound instead of hanging.
inline constexpr double kEndBoundS = 30.0;
// The tests' own hard limit on any one job (it is killed past it).
inline constexpr int kJobLimitS = 120;

// `lockstep ARGS` (the tool built with this binary).
std::string lockstep_command(const std::string& args);
// `lockstep train CONFIG --progress lines ARGS`.
std::string train_command(const std::filesystem::path& config, const std::string& args = "");
// `mpirun ... -np NP COMMAND` on this machine.
std::string mpirun_command(int np, const std::string& command);

// Writes a classifier config to `path` and returns it: an MLP (hidden [64]) with Adam on `data` (default: the
// small Fashion-MNIST, 320 training images, 10 steps of 32 per epoch), no test split, seed 3, one thread,
// writing to `output`; `run_keys` and `data_keys` join [run] and [data], `sections` follow ("[checkpoint]...").
std::filesystem::path write_mlp_config(const std::filesystem::path& path, const std::filesystem::path& output,
                                       const std::string& run_keys, const std::string& sections = "",
                                       const std::string& data_keys = "", const std::filesystem::path& data = {});

// The steps of the committed checkpoints under `checkpoints` (directories step_<digits>), ascending.
std::vector<std::int64_t> committed_steps(const std::filesystem::path& checkpoints);
// The names under `checkpoints` that are a save's or a pruning's temporaries (step_*.tmp*), sorted.
std::vector<std::string> temporaries(const std::filesystem::path& checkpoints);

// True when `status` (128 + signal for a signal) is a crash: SIGSEGV, SIGABRT, SIGBUS, SIGFPE or SIGILL.
bool crashed(int status);
// A job that ended by itself (not killed at `limit_s`), non-zero, no crash, within kEndBoundS.
void expect_failed_within_bound(const CommandResult& job, int limit_s);

// Prints "[  FIGURE  ] TEXT": a measured bound the README quotes.
void figure(const std::string& text);

}  // namespace lockstep::test
