// The stop-signal flag, its handlers and the collective that makes every rank agree on it.
#include "launch/env/signals.h"

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <iterator>
#include <utility>
#include <vector>

#include "src/core/error.h"
#include "src/tensor/factories.h"

namespace lockstep::launch {
namespace {

static_assert(std::atomic<int>::is_always_lock_free, "the signal flag must be lock-free");
static_assert(std::atomic<bool>::is_always_lock_free, "the instance flag must be lock-free");

constexpr int kStopSignals[] = {SIGUSR1, SIGTERM};

std::atomic<int> g_signal{0};                          // the first stop signal received, 0 for none
std::atomic<bool> g_installed{false};                  // a StopSignals exists
struct sigaction g_previous[std::size(kStopSignals)];  // the handlers before it, in kStopSignals order

void record_stop_signal(int signal) {
  int none = 0;
  g_signal.compare_exchange_strong(none, signal);
}

}  // namespace

StopSignals::StopSignals() {
  bool expected = false;
  LOCKSTEP_CHECK(g_installed.compare_exchange_strong(expected, true), ValueError,
                 "StopSignals: expected at most one instance at a time, but one already exists. Share it "
                 "instead of installing the handlers twice.");
  g_signal.store(0);
  struct sigaction action {};
  action.sa_handler = record_stop_signal;
  action.sa_flags = SA_RESTART;
  sigemptyset(&action.sa_mask);
  for (std::size_t i = 0; i < std::size(kStopSignals); ++i) {
    if (::sigaction(kStopSignals[i], &action, &g_previous[i]) != 0) {
      const int error = errno;
      for (std::size_t j = 0; j < i; ++j) ::sigaction(kStopSignals[j], &g_previous[j], nullptr);
      g_installed.store(false);
      throw Error(str_cat("StopSignals: expected to install a handler for ", signal_name(kStopSignals[i]),
                          ", but sigaction failed: ", std::strerror(error)));
    }
  }
}

StopSignals::~StopSignals() {
  for (std::size_t i = 0; i < std::size(kStopSignals); ++i)
    ::sigaction(kStopSignals[i], &g_previous[i], nullptr);
  g_installed.store(false);
}

int StopSignals::signal() const { return g_signal.load(); }

StopVote::StopVote(distributed::ProcessGroup& group, int local_signal)
    : flag_(from_vector(std::vector<std::int64_t>{local_signal}, {1})),
      work_(group.all_reduce(flag_, distributed::ReduceOp::kMax)) {}

StopVote::~StopVote() {
  if (!work_) return;
  try {
    work_->wait();
  } catch (const std::exception&) {  // the group reports its own failure
  }
}

int StopVote::result() {
  if (work_) std::exchange(work_, nullptr)->wait();
  return static_cast<int>(flag_.to_vector<std::int64_t>()[0]);
}

std::string signal_name(int signal) {
  switch (signal) {
    case SIGUSR1:
      return "SIGUSR1";
    case SIGTERM:
      return "SIGTERM";
    default:
      return str_cat("signal ", signal);
  }
}

}  // namespace lockstep::launch
