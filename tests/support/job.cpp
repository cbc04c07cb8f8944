// Whole jobs for tests (see job.h).
#include "tests/support/job.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>
#include <utility>

extern char** environ;

namespace lockstep::test {
namespace {

namespace fs = std::filesystem;

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

int decode(int wait_status) {
  return WIFEXITED(wait_status) ? WEXITSTATUS(wait_status) : 128 + WTERMSIG(wait_status);
}

// The live (not zombie) processes other than this one that are in session `sid` or whose command line
// contains `tag`.
std::vector<pid_t> job_processes(pid_t sid, const std::string& tag) {
  std::vector<pid_t> out;
  std::error_code ec;
  for (const fs::directory_entry& entry : fs::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || !std::all_of(name.begin(), name.end(), [](char c) { return c >= '0' && c <= '9'; }))
      continue;
    const pid_t pid = static_cast<pid_t>(std::stol(name));
    if (pid == ::getpid()) continue;
    // /proc/PID/stat: "PID (COMM) STATE PPID PGRP SESSION ..."; COMM may hold spaces and parentheses.
    const std::string stat = read_text(entry.path() / "stat");
    const std::size_t close = stat.rfind(')');
    if (close == std::string::npos) continue;  // gone meanwhile
    std::istringstream fields(stat.substr(close + 1));
    char state = 0;
    long ppid = 0, pgrp = 0, session = 0;
    fields >> state >> ppid >> pgrp >> session;
    if (!fields || state == 'Z' || state == 'X') continue;
    std::string cmdline = read_text(entry.path() / "cmdline");
    std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
    if (session == sid || cmdline.find(tag) != std::string::npos) out.push_back(pid);
  }
  return out;
}

}  // namespace

void set_job_environment() {
  ::setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
  ::setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
  ::setenv("OMP_NUM_THREADS", "1", 1);  // the same thread count (and so the same sums) in every run
  ::setenv("OMP_WAIT_POLICY", "passive", 1);
}

CommandResult run_job(const std::string& command, int limit_s, const std::string& kill_signal) {
  set_job_environment();
  CommandResult result = run_command(command, limit_s, kill_signal);
  std::printf("[   JOB    ] exit %d after %.2f s: %s\n", result.status, result.seconds, command.c_str());
  return result;
}

std::string mpirun(const std::string& mpiexec, int np, const std::string& command) {
  return mpiexec + " --oversubscribe --bind-to none -np " + std::to_string(np) + " " + command;
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string tail(const std::string& text, std::size_t n) {
  return text.size() <= n ? text : "..." + text.substr(text.size() - n);
}

SpawnedJob::SpawnedJob(const std::string& command, const fs::path& log, std::string tag)
    : command_(command), log_(log), tag_(std::move(tag)) {
  set_job_environment();
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID);
  std::string sh = "sh", dash_c = "-c", line = "exec " + command;
  char* argv[] = {sh.data(), dash_c.data(), line.data(), nullptr};
  t0_ = now_s();
  const int spawned = ::posix_spawn(&pid_, "/bin/sh", &actions, &attr, argv, environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (spawned != 0) {
    ADD_FAILURE() << "posix_spawn failed (" << spawned << ") for: " << command;
    pid_ = -1;
    status_ = 127;
  }
}

SpawnedJob::~SpawnedJob() {
  if (pid_ > 0 && !ended()) kill_all();
}

double SpawnedJob::seconds() const { return now_s() - t0_; }

bool SpawnedJob::ended() {
  if (status_ >= 0) return true;
  int wait_status = 0;
  if (::waitpid(pid_, &wait_status, WNOHANG) != pid_) return false;
  status_ = decode(wait_status);
  return true;
}

bool SpawnedJob::wait(double limit_s) {
  const double until = now_s() + limit_s;
  while (!ended()) {
    if (now_s() >= until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

std::vector<pid_t> SpawnedJob::processes() const {
  return pid_ > 0 ? job_processes(pid_, tag_) : std::vector<pid_t>{};
}

pid_t SpawnedJob::rank_process(int rank) const {
  const std::string wanted = "OMPI_COMM_WORLD_RANK=" + std::to_string(rank);
  for (const pid_t pid : processes()) {
    const std::string environ_text = read_text(fs::path("/proc") / std::to_string(pid) / "environ");
    std::size_t at = 0;
    for (std::size_t end = environ_text.find('\0'); end != std::string::npos;
         at = end + 1, end = environ_text.find('\0', at)) {
      if (environ_text.compare(at, end - at, wanted) == 0) return pid;
    }
  }
  return -1;
}

bool SpawnedJob::kill_all() {
  if (pid_ <= 0) return true;
  // Kill until nothing of the job is left (a rank may be spawning threads or exiting meanwhile).
  for (int round = 0; round < 1000; ++round) {
    const std::vector<pid_t> left = processes();
    if (left.empty()) break;
    for (const pid_t p : left) ::kill(p, SIGKILL);
    ended();
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (status_ < 0) {
    int wait_status = 0;
    if (::waitpid(pid_, &wait_status, 0) == pid_) status_ = decode(wait_status);
  }
  const bool none_left = processes().empty();
  EXPECT_TRUE(none_left) << "processes of the killed job are still running: " << command_;
  return none_left;
}

KilledJob run_until_then_kill(const std::string& command, const std::function<bool()>& moment,
                              const std::string& tag, const fs::path& log, int limit_s, double poll_ms) {
  KilledJob job;
  SpawnedJob spawned(command, log, tag);
  const auto pause = std::chrono::microseconds(static_cast<std::int64_t>(poll_ms * 1000.0));
  while (spawned.seconds() < limit_s) {
    if (moment()) {
      job.reached = true;
      break;
    }
    if (spawned.ended()) break;
    std::this_thread::sleep_for(pause);
  }
  job.seconds = spawned.seconds();
  spawned.kill_all();
  job.status = spawned.status();
  job.output = spawned.output();
  std::printf("[   JOB    ] %s after %.3f s (status %d): %s\n",
              job.reached ? "killed on every rank" : "ended before the kill", job.seconds, job.status,
              command.c_str());
  return job;
}

CommandResult h5diff(const fs::path& a, const fs::path& b, const std::string& objects) {
  const CommandResult diff = run_command(
      "h5diff " + quote(a.string()) + " " + quote(b.string()) + (objects.empty() ? "" : " " + objects), 60);
  EXPECT_NE(diff.status, 127)
      << "h5diff (HDF5's command-line tools, e.g. Debian's hdf5-tools) is not on PATH";
  return diff;
}

void expect_same_checkpoint_contents(const fs::path& a, const fs::path& b, const std::string& model_groups,
                                     const std::string& trainer_groups) {
  expect_same_models_and_optimizers(a, b, model_groups);
  // trainer.h5's figures and every rank's random stream (its config attribute names the folder).
  for (const char* group : {"/trainer/values", "/trainer/rng"}) {
    const CommandResult part = h5diff(a / "trainer.h5", b / "trainer.h5", std::string(group) + " " + group);
    EXPECT_EQ(part.status, 0) << group << " of trainer.h5 differs:\n" << tail(part.output);
  }
  std::istringstream states(trainer_groups);
  for (std::string group; states >> group;) {
    const CommandResult state = h5diff(a / "trainer.h5", b / "trainer.h5", "/" + group + " /" + group);
    EXPECT_EQ(state.status, 0) << "/" << group << " of trainer.h5 differs:\n" << tail(state.output);
  }
}

void expect_same_models_and_optimizers(const fs::path& a, const fs::path& b, const std::string& model_groups) {
  std::istringstream names(model_groups);
  for (std::string group; names >> group;) {
    const CommandResult diff = h5diff(a / "model.h5", b / "model.h5", "/" + group + " /" + group);
    EXPECT_EQ(diff.status, 0) << "/" << group << " of " << a / "model.h5"
                              << " and " << b / "model.h5"
                              << " differ:\n"
                              << tail(diff.output);
  }
  const CommandResult diff = h5diff(a / "optimizer.h5", b / "optimizer.h5");
  EXPECT_EQ(diff.status, 0) << a / "optimizer.h5"
                            << " and " << b / "optimizer.h5"
                            << " differ:\n"
                            << tail(diff.output);
}

}  // namespace lockstep::test
