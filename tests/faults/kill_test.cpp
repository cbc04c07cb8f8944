// SIGKILL of the whole job at 20 random moments while it writes and prunes checkpoints (one process: the
// writes are rank 0's alone, so one rank exercises every one of them): after each kill every visible
// checkpoint verifies (`lockstep inspect`), the next start removes the temporaries the kill left and resumes
// from the newest committed checkpoint, and the chain of killed runs ends bit for bit where a straight run ends.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "io/checkpoint/checkpoint_store.h"
#include "src/core/error.h"
#include "tests/faults/faults.h"
#include "tests/support/job.h"
#include "tests/support/temp_dir.h"

namespace lockstep::test {
namespace {

namespace fs = std::filesystem;

constexpr int kKills = 20;
constexpr std::int64_t kSteps = 400;

// The small MLP on the small Fashion-MNIST (40 epochs of 10 steps), a checkpoint every step and the newest
// two kept: most of a run's time after its start is spent writing, committing and pruning checkpoints.
fs::path kill_config(const fs::path& path, const fs::path& output) {
  return write_mlp_config(path, output, str_cat("epochs = 100\nmax_steps = ", kSteps, "\n"),
                          "[checkpoint]\nevery_steps = 1\nkeep_last = 2\n");
}

// Where a kill landed, by what it left under checkpoints/.
std::string landed(const std::vector<std::string>& left) {
  for (const std::string& name : left)
    if (name.find(".tmp.pruned") != std::string::npos) return "in pruning";
  for (const std::string& name : left)
    if (name.size() >= 4 && name.compare(name.size() - 4, 4, ".tmp") == 0) return "in a write";
  return left.empty() ? "between checkpoints" : "in a replacement";
}

TEST(Faults, WholeJobKilledAt20MomentsOfCheckpointWritesAndPruningLosesNothing) {
  const auto t0 = std::chrono::steady_clock::now();
  TempDir dir;
  const fs::path straight_out = dir / "straight", out = dir / "killed";
  const CommandResult straight = run_job(train_command(kill_config(dir / "straight.toml", straight_out)));
  ASSERT_EQ(straight.status, 0) << straight.output;

  const fs::path config = kill_config(dir / "killed.toml", out);
  const fs::path checkpoints = out / "checkpoints";
  const std::string command = train_command(config);
  std::mt19937 random(20261205);
  std::uniform_int_distribution<int> delay_us(0, 40000);
  std::map<std::string, int> where;
  std::vector<std::string> left;    // the temporaries the previous kill left
  std::int64_t newest = 0;          // the newest committed step before this run
  std::int64_t most_redone = 0;     // steps a resume had to train again, at most
  for (int kill = 0; kill < kKills; ++kill) {
    // The moment: a random 0-40 ms after the run's first checkpoint activity (a temporary, or a commit).
    const int wait_us = delay_us(random);
    std::chrono::steady_clock::time_point active{};
    bool seen = false;
    std::int64_t highest_tmp = newest;
    const auto moment = [&] {
      const std::vector<std::string> now = temporaries(checkpoints);
      for (const std::string& name : now)
        if (std::find(left.begin(), left.end(), name) == left.end())
          highest_tmp = std::max<std::int64_t>(highest_tmp, std::stoll(name.substr(5, name.find('.') - 5)));
      if (!seen) {
        const std::vector<std::int64_t> steps = committed_steps(checkpoints);
        const bool fresh_tmp = std::any_of(now.begin(), now.end(), [&](const std::string& name) {
          return std::find(left.begin(), left.end(), name) == left.end();
        });
        if (!fresh_tmp && (steps.empty() || steps.back() <= newest)) return false;
        seen = true;
        active = std::chrono::steady_clock::now();
      }
      return std::chrono::steady_clock::now() - active >= std::chrono::microseconds(wait_us);
    };
    const KilledJob job = run_until_then_kill(command, moment, config.string(), dir / "killed.log", kJobLimitS, 0.2);
    ASSERT_TRUE(job.reached) << "kill " << kill << ": the run ended (status " << job.status << ") first:\n"
                             << tail(job.output);
    // The start of the run: it removed what the previous kill left, and resumed from the newest checkpoint.
    for (const std::string& name : left) {
      EXPECT_NE(job.output.find(str_cat("removed ", (checkpoints / name).string(),
                                        " (a checkpoint a killed run did not finish)")),
                std::string::npos)
          << "kill " << kill << ": the start did not remove " << name << ":\n"
          << tail(job.output);
    }
    if (newest > 0) {
      EXPECT_NE(job.output.find(str_cat("resumed from ", (checkpoints / io::CheckpointStore::directory_name(newest)).string(),
                                        ": step ", newest, ",")),
                std::string::npos)
          << "kill " << kill << ": expected a resume from step " << newest << ":\n"
          << tail(job.output);
    }
    // After the kill: nothing committed is lost, and every checkpoint in sight verifies.
    left = temporaries(checkpoints);
    ++where[landed(left)];
    const std::vector<std::int64_t> steps = committed_steps(checkpoints);
    ASSERT_FALSE(steps.empty() && newest > 0) << "kill " << kill << ": every checkpoint is gone";
    if (!steps.empty()) {
      EXPECT_GE(steps.back(), newest) << "kill " << kill << ": the newest checkpoint went back";
      const CommandResult inspect = run_command(lockstep_command("inspect " + quote(checkpoints.string())), 60);
      EXPECT_EQ(inspect.status, 0) << "kill " << kill << ":\n" << inspect.output;
      for (const std::int64_t step : steps) {
        const std::string name = io::CheckpointStore::directory_name(step);
        bool ok = false;
        for (const std::string& line : lines_of(inspect.output))
          ok = ok || (line.find(name) != std::string::npos && line.find(" ok ") != std::string::npos);
        EXPECT_TRUE(ok) << "kill " << kill << ": " << name << " is not ok:\n" << inspect.output;
      }
      most_redone = std::max(most_redone, highest_tmp - steps.back());
      newest = steps.back();
    }
    std::printf("[   KILL   ] %2d after %5.1f ms of checkpointing: %s; newest step %lld%s\n", kill, wait_us / 1000.0,
                landed(left).c_str(), static_cast<long long>(newest), left.empty() ? "" : str_cat(", left ", left.size(), " temporary").c_str());
  }
  ASSERT_LT(newest, kSteps) << "the kills came too late to test the end of the run";
  // At least one kill must have landed inside a save, or the test tested nothing.
  EXPECT_GT(kKills - where["between checkpoints"], 0);

  // The last run, undisturbed: cleans up, resumes and ends exactly where the straight run ended.
  const CommandResult last = run_job(command);
  ASSERT_EQ(last.status, 0) << last.output;
  EXPECT_EQ(temporaries(checkpoints), std::vector<std::string>{});
  const fs::path a = straight_out / "checkpoints" / io::CheckpointStore::directory_name(kSteps);
  const fs::path b = checkpoints / io::CheckpointStore::directory_name(kSteps);
  ASSERT_TRUE(fs::is_directory(b)) << last.output;
  expect_same_checkpoint_contents(a, b, "model");
  EXPECT_EQ(read_text(straight_out / "metrics.jsonl"), read_text(out / "metrics.jsonl"));
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::string counts;
  for (const auto& [place, n] : where) counts += str_cat(counts.empty() ? "" : ", ", n, " ", place);
  figure(str_cat(kKills, " kills of the whole job (", counts, "): every checkpoint verified, every temporary "
                 "removed at the next start, at most ", most_redone, " step(s) trained again, the end bitwise "
                 "identical; ", seconds, " s in all"));
}

}  // namespace
}  // namespace lockstep::test
