// Whole jobs under mpirun: data-parallel ranks stay identical (also across two hosts talking TCP); `lockstep
// train` runs as a job of two ranks with one voice. (Jobs that fail are in tests/faults.)
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "src/core/error.h"
#include "tests/support/command.h"
#include "tests/support/fashion_mnist.h"
#include "tests/support/job.h"
#include "tests/support/temp_dir.h"

namespace lockstep::test {
namespace {

namespace fs = std::filesystem;

// The test's own hard limit on any one job (it is killed past it).
constexpr int kLimitS = 60;

struct RankLine {
  int rank = -1;
  int world = 0;
  std::string host;
  std::string hash;
  std::int64_t param_bytes = 0;
};

// The `key=value` fields of every output line that starts with `prefix` (std::regex is avoided: GCC 12
// warns falsely inside it in the sanitizer build).
std::vector<std::map<std::string, std::string>> lines_starting(const std::string& output,
                                                               const std::string& prefix) {
  std::vector<std::map<std::string, std::string>> out;
  std::istringstream lines(output);
  for (std::string line; std::getline(lines, line);) {
    const std::size_t at = line.find(prefix);
    if (at == std::string::npos) continue;
    std::istringstream words(line.substr(at + prefix.size()));
    std::map<std::string, std::string> fields;
    for (std::string word; words >> word;) {
      const std::size_t eq = word.find('=');
      fields[eq == std::string::npos ? "" : word.substr(0, eq)] =
          eq == std::string::npos ? word : word.substr(eq + 1);
    }
    out.push_back(std::move(fields));
  }
  return out;
}

// The probe's "rank r/W host=H params_xxh64=X param_bytes=N" lines, by rank.
std::map<int, RankLine> rank_lines(const std::string& output) {
  std::map<int, RankLine> out;
  for (auto& fields : lines_starting(output, "rank ")) {
    if (fields.count("params_xxh64") == 0) continue;
    const std::string& rw = fields[""];  // "r/W"
    const std::size_t slash = rw.find('/');
    if (slash == std::string::npos) continue;
    RankLine line{std::stoi(rw.substr(0, slash)), std::stoi(rw.substr(slash + 1)), fields["host"],
                  fields["params_xxh64"], std::stoll(fields["param_bytes"])};
    EXPECT_EQ(line.hash.size(), 16u) << "bad hash in:\n" << output;
    EXPECT_EQ(out.count(line.rank), 0u) << "rank " << line.rank << " reported twice:\n" << output;
    out[line.rank] = line;
  }
  return out;
}

TEST(MpiJob, DataParallelRanksEndWithIdenticalParameters) {
  TempDir dir;
  const CommandResult trained =
      run_job(mpirun(LOCKSTEP_MPIEXEC, 3, quote(LOCKSTEP_PROBE) + " train --steps 4 --out " + quote((dir / "out").string())), kLimitS);
  ASSERT_EQ(trained.status, 0) << trained.output;
  const auto lines = rank_lines(trained.output);
  ASSERT_EQ(lines.size(), 3u) << trained.output;
  for (const auto& [rank, line] : lines) {
    EXPECT_EQ(line.world, 3);
    EXPECT_EQ(line.hash, lines.at(0).hash) << "rank " << rank << " diverged from rank 0:\n" << trained.output;
    // Each rank wrote its own line too.
    std::ifstream file(dir / "out" / ("rank" + std::to_string(rank) + ".txt"));
    std::string written;
    std::getline(file, written);
    EXPECT_NE(trained.output.find(written), std::string::npos)
        << "rank " << rank << " wrote '" << written << "'";
    EXPECT_FALSE(written.empty()) << "rank " << rank << " wrote no file";
  }
  // The steps moved the parameters away from the broadcast initial ones (also identical on every rank).
  const CommandResult initial = run_job(mpirun(LOCKSTEP_MPIEXEC, 3, quote(LOCKSTEP_PROBE) + " train --steps 0"), kLimitS);
  ASSERT_EQ(initial.status, 0) << initial.output;
  const auto initial_lines = rank_lines(initial.output);
  ASSERT_EQ(initial_lines.size(), 3u) << initial.output;
  EXPECT_EQ(initial_lines.at(1).hash, initial_lines.at(0).hash);
  EXPECT_EQ(initial_lines.at(2).hash, initial_lines.at(0).hash);
  EXPECT_NE(initial_lines.at(0).hash, lines.at(0).hash);
}

// A config for 20 steps of a small MLP on Fashion-MNIST, writing to `output`; returns its path.
fs::path write_tiny_config(const TempDir& dir, const fs::path& output) {
  const fs::path config = dir / "tiny.toml";
  std::ofstream(config) << "task = \"classifier\"\n"
                           "[run]\nseed = 3\nepochs = 1\nmax_steps = 20\noutput = \""
                        << output.string()
                        << "\"\n"
                           "[data]\npath = \""
                        << fashion_mnist_h5().string()
                        << "\"\nbatch_size = 32\n"
                           "[model]\nname = \"mlp\"\nhidden = [64]\n"
                           "[optimizer]\nname = \"sgd\"\nlr = 0.05\nmomentum = 0.9\n";
  return config;
}

TEST(MpiJob, LockstepTrainRunsAsTwoRanksWithOneVoice) {
  TempDir dir;
  const fs::path run_dir = dir / "run";
  const fs::path config = write_tiny_config(dir, run_dir);
  const CommandResult job =
      run_job(mpirun(LOCKSTEP_MPIEXEC, 2, quote(LOCKSTEP_TOOL) + " train " + quote(config.string()) + " --progress lines"), 2 * kLimitS);
  ASSERT_EQ(job.status, 0) << job.output;
  EXPECT_TRUE(fs::exists(run_dir / "model.h5")) << job.output;
  // Rank 0 speaks for the job; rank 1 prints nothing.
  EXPECT_EQ(count(job.output, "job: 2 ranks (mpi)"), 1u) << job.output;
  EXPECT_EQ(count(job.output, "model mlp"), 1u) << job.output;
  EXPECT_EQ(count(job.output, "done: "), 1u) << job.output;
  std::set<std::string> seen;
  for (const std::string& line : lines_of(job.output)) {
    EXPECT_TRUE(seen.insert(line).second) << "printed twice: " << line << "\n" << job.output;
  }
}

// Whether this process may build network namespaces: root, and `ip netns` works.
std::string netns_unavailable() {
  if (::geteuid() != 0) return "needs root to create network namespaces";
  if (std::system("ip netns list >/dev/null 2>&1") != 0) return "`ip netns` is unavailable";
  return "";
}

TEST(MpiJob, TwoHostsOverTcpKeepIdenticalParameters) {
  if (const std::string why = netns_unavailable(); !why.empty()) GTEST_SKIP() << why;
  constexpr std::int64_t kSteps = 5;
  const std::string script = (fs::path(LOCKSTEP_SOURCE_DIR) / "tests" / "mpi_jobs" / "netns.sh").string();
  const CommandResult job = run_job("bash " + quote(script) + " " + quote(LOCKSTEP_MPIEXEC) + " " +
                                    quote(LOCKSTEP_PROBE) + " train --steps " + std::to_string(kSteps),
                                2 * kLimitS, "TERM");
  ASSERT_EQ(job.status, 0) << job.output;
  const auto lines = rank_lines(job.output);
  ASSERT_EQ(lines.size(), 2u) << job.output;
  const RankLine& r0 = lines.at(0);
  const RankLine& r1 = lines.at(1);
  EXPECT_EQ(r0.world, 2);
  EXPECT_NE(r0.host, r1.host) << "both ranks ran on one host:\n" << job.output;
  EXPECT_EQ(r0.hash, r1.hash) << job.output;

  // Each host's link carried the model broadcast and the gradient all-reduces: with btl tcp,self only, at
  // least half of the parameters' bytes per step each way (shared memory would leave the links nearly idle).
  std::set<std::string> hosts;
  for (auto& fields : lines_starting(job.output, "netns: ")) {
    const std::string& host = fields["host"];
    hosts.insert(host);
    const std::int64_t bound = r0.param_bytes * kSteps / 2;
    EXPECT_GE(std::stoll(fields["rx_bytes"]), bound) << "received by " << host << "\n" << job.output;
    EXPECT_GE(std::stoll(fields["tx_bytes"]), bound) << "sent by " << host << "\n" << job.output;
  }
  EXPECT_EQ(hosts, (std::set<std::string>{r0.host, r1.host})) << job.output;
}

}  // namespace
}  // namespace lockstep::test
