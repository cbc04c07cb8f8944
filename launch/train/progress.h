// Progress output for people: a live bar (step, loss, images/s, time left) on a terminal, plain periodic
// lines when output goes to a file or a batch log. In a job of several ranks only rank 0's speaks; the
// others get a silent one.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>

#include "src/core/strings.h"  // format_fixed

namespace lockstep::launch {

enum class Style { kAuto, kBar, kLines };

// Owns nothing but its timers; not thread-safe.
class Progress {
 public:
  // `out` is usually stdout; kAuto picks the bar when `out` is a terminal. A null `out` makes a silent
  // Progress (ranks other than 0): every call is accepted and nothing is written.
  explicit Progress(std::FILE* out = stdout, Style style = Style::kAuto, double line_every_s = 15.0);

  // Starts a phase of `total` steps, e.g. "epoch 3/15", of which `done` are behind (a resumed epoch).
  void start(std::string label, std::int64_t total, std::int64_t done = 0);
  // Reports that step `done` (1-based) finished; `metrics` makes a short text such as "loss 0.4123", called
  // only when the bar or a line is drawn (a silent Progress never calls it).
  void update(std::int64_t done, std::int64_t images, const std::function<std::string()>& metrics);
  // Ends the phase with one summary line.
  void finish(const std::string& summary);
  // A line of its own (clears the bar first).
  void print(const std::string& line);

 private:
  double elapsed_s() const;

  std::FILE* out_;
  bool bar_;
  double line_every_s_;
  std::string label_;
  std::int64_t total_ = 0;
  std::int64_t first_ = 0;
  std::int64_t images_ = 0;
  std::chrono::steady_clock::time_point start_;
  double last_draw_s_ = -1e9;
  bool bar_visible_ = false;
};

// "1m05s", "2h03m".
std::string format_duration(double seconds);

}  // namespace lockstep::launch
