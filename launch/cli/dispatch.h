// Dispatch of the `lockstep` command line: top-level --help and --version, the table of subcommands, and
// the one place where errors become messages and exit codes (0 success, 1 failure, 2 usage error).
#pragma once

#include <ostream>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace lockstep::launch {

// One subcommand: `run` gets the arguments after the command's name and returns the exit code.
struct Command {
  std::string_view name;
  std::string_view summary;
  int (*run)(const std::vector<std::string>& args);
};

// Called with the message of a failure (exit code 1) before it is printed; may end the process (a job of
// several ranks aborts every rank so that none waits for this one) or return to let run_cli report it.
using FailureHook = void (*)(const std::string& message);

// Runs `lockstep <args...>` (args exclude the program name) against `commands`. Never throws: a
// lockstep::Error or std::exception calls `on_failure` (when given), then prints "lockstep: error:
// <message>" on `err` and returns 1; an unknown command, a bad option or a launch::UsageError also prints a
// hint to --help and returns 2. Help and version go to `out`.
int run_cli(std::span<const Command> commands, const std::vector<std::string>& args, std::ostream& out,
            std::ostream& err, FailureHook on_failure = nullptr);

}  // namespace lockstep::launch
