// Running shell commands from tests (whole mpirun or sbatch jobs): quoting, a hard time limit, the captured
// output, and small text helpers for reading it.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace lockstep::test {

struct CommandResult {
  int status = -1;     // exit status; 128 + signal when killed (124: timeout's TERM, 137: KILL)
  std::string output;  // stdout and stderr together
  double seconds = 0.0;
};

// `s` as one single-quoted shell word.
std::string quote(const std::string& s);

// Runs `command` through the shell with stdin from /dev/null under `timeout`: `kill_signal` after `limit_s`
// seconds (KILL leaves nothing running; TERM lets a script clean up), then KILL `kill_after_s` later.
CommandResult run_command(const std::string& command, int limit_s, const std::string& kill_signal = "KILL",
                          int kill_after_s = 15);

// How often `needle` occurs in `text` (overlaps counted).
std::size_t count(const std::string& text, const std::string& needle);
// The non-empty lines of `text`, without trailing '\r'.
std::vector<std::string> lines_of(const std::string& text);

}  // namespace lockstep::test
