// Shared by the fault-injection tests (see faults.h).
#include "tests/faults/faults.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <cstdio>
#include <fstream>

#include "io/checkpoint/checkpoint_store.h"
#include "tests/support/fashion_mnist.h"
#include "tests/support/job.h"

namespace lockstep::test {

namespace fs = std::filesystem;

std::string lockstep_command(const std::string& args) { return quote(LOCKSTEP_TOOL) + " " + args; }

std::string train_command(const fs::path& config, const std::string& args) {
  return lockstep_command("train " + quote(config.string()) + " --progress lines" + (args.empty() ? "" : " " + args));
}

std::string mpirun_command(int np, const std::string& command) { return mpirun(LOCKSTEP_MPIEXEC, np, command); }

fs::path write_mlp_config(const fs::path& path, const fs::path& output, const std::string& run_keys,
                          const std::string& sections, const std::string& data_keys, const fs::path& data) {
  std::ofstream(path) << "task = \"classifier\"\n[run]\nseed = 3\nthreads = 1\noutput = \"" << output.string()
                      << "\"\n"
                      << run_keys << "[data]\npath = \"" << (data.empty() ? small_fashion_mnist_h5() : data).string()
                      << "\"\nbatch_size = 32\ntest_split = \"\"\n"
                      << data_keys << "[model]\nname = \"mlp\"\nhidden = [64]\n[optimizer]\nname = \"adam\"\nlr = 0.001\n"
                      << sections;
  return path;
}

std::vector<std::int64_t> committed_steps(const fs::path& checkpoints) {
  std::vector<std::int64_t> steps;
  for (const io::CheckpointInfo& info : io::CheckpointStore(checkpoints).list()) steps.push_back(info.step);
  return steps;
}

std::vector<std::string> temporaries(const fs::path& checkpoints) {
  std::vector<std::string> names;
  std::error_code ec;
  for (fs::directory_iterator it(checkpoints, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.rfind("step_", 0) == 0 && name.find(".tmp") != std::string::npos) names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  return names;
}

bool crashed(int status) {
  for (const int signal : {SIGSEGV, SIGABRT, SIGBUS, SIGFPE, SIGILL})
    if (status == 128 + signal) return true;
  return false;
}

void expect_failed_within_bound(const CommandResult& job, int limit_s) {
  EXPECT_NE(job.status, 0) << job.output;
  EXPECT_FALSE(crashed(job.status)) << "crashed with status " << job.status << ":\n" << job.output;
  EXPECT_NE(job.status, 137) << "the job was still running after " << limit_s << " s and was killed:\n"
                             << job.output;
  EXPECT_LT(job.seconds, kEndBoundS) << job.output;
}

void figure(const std::string& text) { std::printf("[  FIGURE  ] %s\n", text.c_str()); }

}  // namespace lockstep::test
