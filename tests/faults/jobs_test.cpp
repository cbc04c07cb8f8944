// Faults of whole jobs under mpirun: a rank that throws (mid-run, or at the first step while the others wait
// in a collective), desynchronised collectives, a rank that never joins a collective, one rank killed with
// SIGKILL, a checkpoint that cannot be written (one process; two ranks mid-run), a damaged newest checkpoint.
// Each job ends by itself within the bound with the cause named, and nothing committed is lost.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "io/checkpoint/checkpoint_store.h"
#include "src/core/error.h"
#include "tests/faults/faults.h"
#include "tests/support/fashion_mnist.h"
#include "tests/support/job.h"
#include "tests/support/temp_dir.h"

namespace lockstep::test {
namespace {

namespace fs = std::filesystem;

// The probe program's fault modes (tests/mpi_jobs/probe) as a job of `np` ranks.
CommandResult probe_job(int np, const std::string& args) {
  return run_job(mpirun_command(np, quote(LOCKSTEP_PROBE) + " " + args), kJobLimitS);
}

fs::path checkpoint_dir(const fs::path& output, std::int64_t step) {
  return output / "checkpoints" / io::CheckpointStore::directory_name(step);
}

TEST(Faults, RankThatThrowsMidStepEndsTheWholeJob) {
  const CommandResult job = probe_job(3, "throw --rank 1 --step 5 --steps 40");
  expect_failed_within_bound(job, kJobLimitS);
  figure(str_cat("a rank that throws mid-run: the 3-rank job ended in ", job.seconds, " s"));
  // abort_job's one line, with the failing rank's prefix.
  EXPECT_NE(job.output.find("[rank 1/3] injected failure at step 5"), std::string::npos) << job.output;
  EXPECT_EQ(job.output.find("without the injected failure"), std::string::npos) << job.output;
}

TEST(Faults, RankThatThrowsAtTheFirstStepEndsTheWholeJob) {
  // Rank 2 fails while the others wait in the very first gradient all-reduce.
  const CommandResult job = probe_job(3, "throw --rank 2 --step 0 --steps 40");
  expect_failed_within_bound(job, kJobLimitS);
  figure(str_cat("a rank that throws at the first step: the 3-rank job ended in ", job.seconds, " s"));
  EXPECT_NE(job.output.find("[rank 2/3] injected failure at step 0"), std::string::npos) << job.output;
}

TEST(Faults, DesynchronisedCollectivesFailNamingBothCalls) {
  const CommandResult job = probe_job(3, "desync");
  expect_failed_within_bound(job, kJobLimitS);
  figure(str_cat("mismatched collectives: the 3-rank job ended in ", job.seconds, " s"));
  EXPECT_NE(job.output.find("all_reduce (sum, f32 x 10)"), std::string::npos) << job.output;
  EXPECT_NE(job.output.find("broadcast (root 0, f32 x 10)"), std::string::npos) << job.output;
  EXPECT_EQ(job.output.find("mismatched collectives completed"), std::string::npos) << job.output;
}

TEST(Faults, WatchdogNamesTheCollectiveTheWaitingRankAndItsSize) {
  const CommandResult job = probe_job(3, "hang --timeout-ms 2000");
  expect_failed_within_bound(job, kJobLimitS);
  figure(
      str_cat("a rank that never joins a collective (watchdog 2 s): the job ended in ", job.seconds, " s"));
  // Rank 0 waited for the group's fourth collective, an all-reduce of 10 f32 (40 bytes) that rank 1 never
  // called.
  EXPECT_NE(job.output.find("[rank 0/3] all_reduce #4 (sum, f32 x 10, 40 B)"), std::string::npos)
      << job.output;
  EXPECT_EQ(job.output.find("rank 1 skipped completed"), std::string::npos) << job.output;
}

// 300 steps of the MLP on 2 ranks (16 images each), a checkpoint every 25: long enough for a fault to land
// mid-run. On the whole Fashion-MNIST: no epoch ends (which write model.h5) before the last step.
fs::path two_rank_config(const fs::path& path, const fs::path& output) {
  return write_mlp_config(path, output, "max_steps = 300\n", "[checkpoint]\nevery_steps = 25\n", "",
                          fashion_mnist_h5());
}

// Runs `config` again as a 2-rank job and expects it to resume from checkpoint `newest` and end (step 300)
// identical to `straight_out`'s run.
void expect_rerun_resumes_exactly(const fs::path& config, const fs::path& out, std::int64_t newest,
                                  const fs::path& straight_out) {
  const CommandResult resumed = run_job(mpirun_command(2, train_command(config)), kJobLimitS);
  ASSERT_EQ(resumed.status, 0) << resumed.output;
  EXPECT_NE(resumed.output.find(
                str_cat("resumed from ", checkpoint_dir(out, newest).string(), ": step ", newest, ",")),
            std::string::npos)
      << resumed.output;
  ASSERT_TRUE(fs::is_directory(checkpoint_dir(out, 300))) << resumed.output;
  expect_same_checkpoint_contents(checkpoint_dir(straight_out, 300), checkpoint_dir(out, 300), "model");
  EXPECT_EQ(read_text(straight_out / "metrics.jsonl"), read_text(out / "metrics.jsonl"));
}

TEST(Faults, OneRankKilledEndsTheJobWithinTheBoundAndTheRerunResumesExactly) {
  TempDir dir;
  const fs::path straight_out = dir / "straight", out = dir / "killed";
  const CommandResult straight = run_job(
      mpirun_command(2, train_command(two_rank_config(dir / "straight.toml", straight_out))), kJobLimitS);
  ASSERT_EQ(straight.status, 0) << straight.output;

  // SIGKILL to rank 1 alone once checkpoint 25 is committed; mpirun must end the job.
  const fs::path config = two_rank_config(dir / "killed.toml", out);
  SpawnedJob job(mpirun_command(2, train_command(config)), dir / "killed.log", config.string());
  while (!fs::exists(checkpoint_dir(out, 25)) && !job.ended() && job.seconds() < kJobLimitS)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  ASSERT_FALSE(job.ended()) << "the job ended (status " << job.status() << ") before the kill:\n"
                            << job.output();
  const pid_t rank1 = job.rank_process(1);
  ASSERT_GT(rank1, 0) << "no process of rank 1 found";
  const double killed_at = job.seconds();
  ASSERT_EQ(::kill(rank1, SIGKILL), 0);
  const bool ended = job.wait(kJobLimitS);
  const double to_end = job.seconds() - killed_at;
  if (!ended) job.kill_all();
  std::printf("[   JOB    ] rank 1 killed after %.2f s; mpirun exited %d %.2f s later\n", killed_at,
              job.status(), to_end);
  figure(
      str_cat("SIGKILL of one rank of 2: the job ended ", to_end, " s after the kill, exit ", job.status()));
  ASSERT_TRUE(ended) << "the job was still running " << kJobLimitS << " s after rank 1 was killed:\n"
                     << job.output();
  EXPECT_NE(job.status(), 0) << job.output();
  EXPECT_LT(to_end, kEndBoundS) << job.output();
  // Rank 0 may still be tearing down when mpirun has exited; none may be left a few seconds later.
  for (int i = 0; i < 500 && !job.processes().empty(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_TRUE(job.processes().empty()) << "a rank outlived the job by 5 s";
  ASSERT_FALSE(fs::exists(checkpoint_dir(out, 300))) << "the job finished before the kill";
  // Every committed checkpoint verifies; the rerun resumes from the newest and ends as the straight run.
  const std::vector<std::int64_t> saved = committed_steps(out / "checkpoints");
  ASSERT_FALSE(saved.empty());
  for (const std::int64_t step : saved) {
    std::string why;
    EXPECT_TRUE(io::CheckpointStore::verify(checkpoint_dir(out, step), &why)) << why;
  }
  expect_rerun_resumes_exactly(config, out, saved.back(), straight_out);
}

// A checkpoint that cannot be written (a file-size limit, under which `lockstep` ignores SIGXFSZ: the writes
// fail with EFBIG, as they do with ENOSPC on a full disk) ends the run with exit 1 and the cause in one line:
// no crash at exit (HDF5's exit handler used to crash on the file whose close had failed) and no temporary
// left behind.
TEST(Faults, ACheckpointThatCannotBeWrittenEndsTheRunCleanly) {
  TempDir dir;
  const fs::path run_dir = dir / "run";
  const fs::path config = dir / "gan.toml";
  std::ofstream(config)
      << "task = \"gan\"\n[run]\nseed = 1\nmax_steps = 4\nthreads = 1\noutput = \"" << run_dir.string()
      << "\"\n[data]\npath = \"" << fashion_mnist_h5().string()
      << "\"\nbatch_size = 16\npad_to = 32\nnormalize = \"tanh\"\n[gan]\nlatent = 16\nsamples = 4\n"
         "[generator]\nname = \"dcgan\"\nwidth = 16\n[discriminator]\nname = \"dcgan\"\nwidth = 16\n"
         "[checkpoint]\nevery_steps = 2\n";
  // 600 KiB per file: the checkpoint's model file (170k parameters in f32) does not fit.
  const CommandResult job =
      run_job("bash -c " + quote("ulimit -f 600; exec " + train_command(config)), kJobLimitS);
  figure(str_cat("a checkpoint that cannot be written (DCGAN, one process): exit ", job.status, " after ",
                 job.seconds, " s"));
  EXPECT_EQ(job.status, 1) << job.output;  // not 139: SIGSEGV
  EXPECT_NE(job.output.find("could not save step 2"), std::string::npos) << job.output;
  EXPECT_NE(job.output.find("File too large"), std::string::npos) << job.output;
  EXPECT_EQ(job.output.find("bytes actually written"), std::string::npos) << job.output;  // HDF5's raw report
  if (fs::exists(run_dir / "checkpoints"))
    for (const auto& entry : fs::directory_iterator(run_dir / "checkpoints"))
      ADD_FAILURE() << "left behind: " << entry.path() << "\n" << job.output;
}

// The same fault mid-run on rank 0 of 2 (the limit lowered with prlimit once checkpoint 25 is committed):
// the job ends within the bound, every line about it leads with the cause (the other rank's too), the
// committed checkpoint stays intact, nothing temporary is left, and the rerun resumes it exactly.
TEST(Faults, ACheckpointThatCannotBeWrittenMidRunNamesTheCauseFirstAndKeepsThePreviousOne) {
  TempDir dir;
  const fs::path straight_out = dir / "straight", out = dir / "full";
  const CommandResult straight = run_job(
      mpirun_command(2, train_command(two_rank_config(dir / "straight.toml", straight_out))), kJobLimitS);
  ASSERT_EQ(straight.status, 0) << straight.output;

  const fs::path config = two_rank_config(dir / "full.toml", out);
  SpawnedJob job(mpirun_command(2, train_command(config)), dir / "full.log", config.string());
  while (!fs::exists(checkpoint_dir(out, 25)) && !job.ended() && job.seconds() < kJobLimitS)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  ASSERT_FALSE(job.ended()) << "the job ended (status " << job.status() << ") first:\n" << job.output();
  const pid_t rank0 = job.rank_process(0);
  ASSERT_GT(rank0, 0) << "no process of rank 0 found";
  // 64 KiB per file from now on: the model (51k parameters in f32) no longer fits.
  const CommandResult limited = run_command(str_cat("prlimit --pid ", rank0, " --fsize=65536"), 30);
  ASSERT_EQ(limited.status, 0) << limited.output;
  const double limited_at = job.seconds();
  const bool ended = job.wait(kJobLimitS);
  const double to_end = job.seconds() - limited_at;
  if (!ended) job.kill_all();
  const std::string output = job.output();
  figure(str_cat("a checkpoint that cannot be written mid-run on rank 0 of 2: the job ended ", to_end,
                 " s after the limit, exit ", job.status()));
  ASSERT_TRUE(ended) << output;
  EXPECT_NE(job.status(), 0) << output;
  EXPECT_FALSE(crashed(job.status())) << output;
  EXPECT_LT(to_end, kEndBoundS) << output;
  // Every rank's line names the cause, so the job's first line does, whichever rank prints first.
  std::size_t lines = 0;
  for (const std::string& line : lines_of(output)) {
    if (line.find("could not save step") == std::string::npos) continue;
    ++lines;
    std::printf("[  OUTPUT  ] %s\n", line.c_str());
    EXPECT_NE(line.find("File too large"), std::string::npos) << "a line without the cause:\n" << output;
  }
  EXPECT_GE(lines, 1u) << output;
  EXPECT_EQ(temporaries(out / "checkpoints"), std::vector<std::string>{}) << output;
  const std::vector<std::int64_t> saved = committed_steps(out / "checkpoints");
  ASSERT_FALSE(saved.empty()) << output;
  EXPECT_LT(saved.back(), 300) << output;
  for (const std::int64_t step : saved) {
    std::string why;
    EXPECT_TRUE(io::CheckpointStore::verify(checkpoint_dir(out, step), &why)) << why;
  }
  expect_rerun_resumes_exactly(config, out, saved.back(), straight_out);
}

TEST(Faults, ADamagedNewestCheckpointIsSetAsideForTheOlderOne) {
  TempDir dir;
  const fs::path out = dir / "run";
  const fs::path config =
      write_mlp_config(dir / "run.toml", out, "max_steps = 3\n", "[checkpoint]\nevery_steps = 1\n");
  const CommandResult first = run_job(train_command(config), kJobLimitS);
  ASSERT_EQ(first.status, 0) << first.output;
  ASSERT_EQ(committed_steps(out / "checkpoints"), (std::vector<std::int64_t>{1, 2, 3})) << first.output;
  const fs::path damaged = checkpoint_dir(out, 3);
  {
    std::fstream file(damaged / "model.h5", std::ios::in | std::ios::out | std::ios::binary);
    file.seekg(0, std::ios::end);
    const std::streamoff middle = file.tellg() / 2;
    file.seekg(middle);
    const char byte = static_cast<char>(file.get());
    file.seekp(middle);
    file.put(static_cast<char>(byte ^ 0x5a));
    ASSERT_TRUE(file.good()) << "could not flip a byte of " << damaged / "model.h5";
  }
  const CommandResult resumed = run_job(train_command(config, "run.max_steps=4"), kJobLimitS);
  ASSERT_EQ(resumed.status, 0) << resumed.output;
  bool warned = false;
  for (const std::string& line : lines_of(resumed.output))
    warned = warned || (line.rfind("warning:", 0) == 0 && line.find(damaged.string()) != std::string::npos);
  EXPECT_TRUE(warned) << "expected a 'warning:' line naming " << damaged << ":\n" << resumed.output;
  fs::path aside = damaged;
  aside += ".damaged";
  EXPECT_TRUE(fs::is_directory(aside)) << resumed.output;
  EXPECT_NE(resumed.output.find(str_cat("resumed from ", checkpoint_dir(out, 2).string(), ": step 2,")),
            std::string::npos)
      << resumed.output;
  EXPECT_EQ(committed_steps(out / "checkpoints").back(), 4) << resumed.output;
}

}  // namespace
}  // namespace lockstep::test
