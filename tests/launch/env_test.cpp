// Tests of the launch environment: launcher detection from injected environments (mpirun, srun with and
// without PMIx, mpirun inside a Slurm allocation, batch scripts, malformed values), and the stop-signal
// flag with its agreement over a process group.
#include <gtest/gtest.h>

#include <atomic>
#include <csignal>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "distributed/single.h"
#include "distributed/threaded.h"
#include "launch/env/launcher.h"
#include "launch/env/signals.h"
#include "src/core/error.h"
#include "tests/support/expect_error.h"

namespace lockstep::launch {
namespace {

LaunchInfo detect(std::map<std::string, std::string> variables) {
  return detect_launch(environment_of(std::move(variables)));
}

LaunchInfo expected(std::string launcher, int rank, int world, int local_rank, bool mpi) {
  LaunchInfo info;
  info.launcher = std::move(launcher);
  info.rank = rank;
  info.world = world;
  info.local_rank = local_rank;
  info.mpi = mpi;
  return info;
}

// The ConfigError of `variables`, checked to name the variable (message and key) and the value.
void expect_config_error(std::map<std::string, std::string> variables, const std::string& variable,
                         const std::string& value) {
  const auto error =
      test::expect_thrown<ConfigError>([&] { detect(variables); }, {"detect_launch", variable, value});
  if (error) {
    EXPECT_EQ(error->key(), variable);
    EXPECT_EQ(error->file(), "environment");
  }
}

TEST(LaunchDetect, NoLauncherVariablesIsASingleProcess) {
  EXPECT_EQ(detect({}), expected("single", 0, 1, 0, false));
  EXPECT_EQ(detect({{"HOME", "/root"}}), expected("single", 0, 1, 0, false));
  EXPECT_EQ(describe(detect({})), "single process");
}

TEST(LaunchDetect, MpirunSetsOpenMpiVariablesPerRank) {
  const LaunchInfo info = detect({{"OMPI_COMM_WORLD_RANK", "2"},
                                  {"OMPI_COMM_WORLD_SIZE", "4"},
                                  {"OMPI_COMM_WORLD_LOCAL_RANK", "0"},
                                  {"PMIX_RANK", "2"}});
  EXPECT_EQ(info, expected("mpirun", 2, 4, 0, true));
  EXPECT_FALSE(info.unwired_tasks());
  EXPECT_EQ(describe(info), "mpirun rank 2/4 (local 0)");
}

TEST(LaunchDetect, MpirunInsideASlurmAllocationIgnoresSlurmProcid) {
  // Every rank of mpirun inside an allocation inherits the batch step's SLURM_PROCID=0.
  const LaunchInfo info = detect({{"OMPI_COMM_WORLD_RANK", "3"},
                                  {"OMPI_COMM_WORLD_SIZE", "4"},
                                  {"OMPI_COMM_WORLD_LOCAL_RANK", "1"},
                                  {"PMIX_RANK", "3"},
                                  {"SLURM_PROCID", "0"},
                                  {"SLURM_NTASKS", "8"},
                                  {"SLURM_LOCALID", "0"},
                                  {"SLURM_JOB_ID", "1234"}});
  EXPECT_EQ(info, expected("mpirun", 3, 4, 1, true));
}

TEST(LaunchDetect, SrunWithPmixHasNoOpenMpiVariables) {
  const LaunchInfo info = detect({{"PMIX_RANK", "5"},
                                  {"SLURM_PROCID", "5"},
                                  {"SLURM_STEP_NUM_TASKS", "8"},
                                  {"SLURM_NTASKS", "16"},  // the allocation's, larger than this step
                                  {"SLURM_LOCALID", "1"}});
  EXPECT_EQ(info, expected("srun", 5, 8, 1, true));
  EXPECT_EQ(describe(info), "srun rank 5/8 (local 1)");
  // Without the step's count, SLURM_NTASKS gives the world; PMI-2 (srun --mpi=pmi2) sets PMI_RANK.
  EXPECT_EQ(detect({{"PMIX_RANK", "1"}, {"SLURM_PROCID", "1"}, {"SLURM_NTASKS", "2"}}),
            expected("srun", 1, 2, 0, true));
  EXPECT_EQ(detect({{"PMI_RANK", "1"}, {"SLURM_PROCID", "1"}, {"SLURM_STEP_NUM_TASKS", "3"}}),
            expected("srun", 1, 3, 0, true));
}

TEST(LaunchDetect, SrunWithoutAnMpiPluginIsFlaggedAsUnwiredTasks) {
  const LaunchInfo info =
      detect({{"SLURM_PROCID", "1"}, {"SLURM_STEP_NUM_TASKS", "2"}, {"SLURM_LOCALID", "1"}});
  EXPECT_EQ(info, expected("srun", 1, 2, 1, false));
  EXPECT_TRUE(info.unwired_tasks());
  EXPECT_EQ(describe(info), "srun rank 1/2 (local 1), not joined by MPI");
  // A step of one task is fine on its own.
  EXPECT_FALSE(detect({{"SLURM_PROCID", "0"}, {"SLURM_STEP_NUM_TASKS", "1"}}).unwired_tasks());
}

TEST(LaunchDetect, ABatchScriptItselfIsASingleProcess) {
  EXPECT_EQ(detect({{"SLURM_JOB_ID", "99"}, {"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "4"}}),
            expected("single", 0, 1, 0, false));
}

TEST(LaunchDetect, OtherPmiLaunchersAreMpirunWithTheWorldWhenKnown) {
  EXPECT_EQ(detect({{"PMI_RANK", "1"}, {"PMI_SIZE", "3"}, {"MPI_LOCALRANKID", "1"}}),
            expected("mpirun", 1, 3, 1, true));
  const LaunchInfo unknown = detect({{"PMIX_RANK", "2"}});
  EXPECT_EQ(unknown, expected("mpirun", 2, 0, 0, true));
  EXPECT_EQ(describe(unknown), "mpirun rank 2/? (local 0)");
}

TEST(LaunchDetect, MalformedValuesNameTheVariableAndTheValue) {
  expect_config_error({{"OMPI_COMM_WORLD_RANK", "two"}, {"OMPI_COMM_WORLD_SIZE", "4"}},
                      "OMPI_COMM_WORLD_RANK", "'two'");
  expect_config_error({{"OMPI_COMM_WORLD_RANK", "1"}, {"OMPI_COMM_WORLD_SIZE", "-4"}}, "OMPI_COMM_WORLD_SIZE",
                      "'-4'");
  expect_config_error({{"OMPI_COMM_WORLD_RANK", "1 "}, {"OMPI_COMM_WORLD_SIZE", "4"}}, "OMPI_COMM_WORLD_RANK",
                      "'1 '");
  expect_config_error({{"OMPI_COMM_WORLD_RANK", "4"}, {"OMPI_COMM_WORLD_SIZE", "4"}}, "OMPI_COMM_WORLD_RANK",
                      "'4'");
  expect_config_error({{"OMPI_COMM_WORLD_RANK", "0"}, {"OMPI_COMM_WORLD_SIZE", "0"}}, "OMPI_COMM_WORLD_SIZE",
                      "'0'");
  expect_config_error({{"OMPI_COMM_WORLD_SIZE", "4"}}, "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE");
  expect_config_error({{"PMIX_RANK", ""}, {"SLURM_PROCID", "0"}}, "PMIX_RANK", "''");
  expect_config_error(
      {{"PMIX_RANK", "0"}, {"SLURM_PROCID", "0"}, {"SLURM_STEP_NUM_TASKS", "2"}, {"SLURM_LOCALID", "x"}},
      "SLURM_LOCALID", "'x'");
  expect_config_error({{"SLURM_PROCID", "2"}, {"SLURM_STEP_NUM_TASKS", "2"}}, "SLURM_PROCID", "'2'");
  expect_config_error({{"PMIX_RANK", "99999999999"}}, "PMIX_RANK", "'99999999999'");
}

TEST(LaunchDetect, ProcessEnvironmentReadsTheRealEnvironment) {
  const EnvLookup env = process_environment();
  const char* path = std::getenv("PATH");
  ASSERT_NE(path, nullptr);
  EXPECT_EQ(env("PATH"), std::optional<std::string>(path));
  EXPECT_EQ(env("LOCKSTEP_TEST_SURELY_UNSET_VARIABLE_8c1f"), std::nullopt);
}

// ---- stop signals ----

std::atomic<int> g_previous_calls{0};
void previous_handler(int) { g_previous_calls.fetch_add(1); }

TEST(Signals, RaiseSetsTheFlagWithTheSignal) {
  StopSignals signals;
  EXPECT_FALSE(signals.requested());
  EXPECT_EQ(signals.signal(), 0);
  std::raise(SIGUSR1);
  EXPECT_TRUE(signals.requested());
  EXPECT_EQ(signals.signal(), SIGUSR1);
  EXPECT_EQ(signal_name(signals.signal()), "SIGUSR1");
}

TEST(Signals, TheFirstSignalIsKept) {
  StopSignals signals;
  std::raise(SIGTERM);
  std::raise(SIGUSR1);
  EXPECT_EQ(signals.signal(), SIGTERM);
  EXPECT_EQ(signal_name(SIGTERM), "SIGTERM");
}

TEST(Signals, DestructionRestoresThePreviousHandlers) {
  struct sigaction mine {
  }, saved_usr1{}, saved_term{};
  mine.sa_handler = previous_handler;
  sigemptyset(&mine.sa_mask);
  ASSERT_EQ(::sigaction(SIGUSR1, &mine, &saved_usr1), 0);
  ASSERT_EQ(::sigaction(SIGTERM, &mine, &saved_term), 0);
  g_previous_calls = 0;
  {
    StopSignals signals;
    std::raise(SIGUSR1);
    std::raise(SIGTERM);
    EXPECT_EQ(g_previous_calls.load(), 0);  // caught by StopSignals
    EXPECT_TRUE(signals.requested());
  }
  std::raise(SIGUSR1);
  std::raise(SIGTERM);
  EXPECT_EQ(g_previous_calls.load(), 2);  // the earlier handler is back for both
  ::sigaction(SIGUSR1, &saved_usr1, nullptr);
  ::sigaction(SIGTERM, &saved_term, nullptr);
}

TEST(Signals, OneInstanceAtATimeAndEachStartsClear) {
  {
    StopSignals first;
    std::raise(SIGUSR1);
    test::expect_error<ValueError>([] { StopSignals second; }, {"StopSignals", "one"});
    EXPECT_EQ(first.signal(), SIGUSR1);  // the failed second one changed nothing
  }
  StopSignals again;
  EXPECT_FALSE(again.requested());
}

TEST(Signals, AgreeToStopOnOneProcess) {
  distributed::SingleProcessGroup group;
  StopSignals signals;
  EXPECT_EQ(StopVote(group, signals.signal()).result(), 0);
  std::raise(SIGTERM);
  EXPECT_EQ(StopVote(group, signals.signal()).result(), SIGTERM);
}

TEST(Signals, OneRanksSignalMakesEveryRankAgree) {
  constexpr int kWorld = 4;
  StopSignals signals;  // rank 2's: the process-wide flag stands for the one rank that got the signal
  std::raise(SIGUSR1);
  std::mutex mutex;
  std::vector<int> before(kWorld, -1), stop(kWorld, -1), mixed(kWorld, -1);
  distributed::run_threaded(kWorld, [&](const std::shared_ptr<distributed::ProcessGroup>& group) {
    const int rank = group->rank();
    // Step 1: nobody has a signal yet. Step 2: only rank 2 has one. Step 3: ranks 0 and 3 got different ones,
    // voted while a later vote is already in flight (a vote started before a step, read after it).
    const int none = StopVote(*group, 0).result();
    const bool agreed = StopVote(*group, rank == 2 ? signals.signal() : 0).result() != 0;
    StopVote third(*group, rank == 0 ? SIGUSR1 : rank == 3 ? SIGTERM : 0);
    StopVote fourth(*group, 0);
    const int largest = third.result();
    EXPECT_EQ(fourth.result(), 0);
    const std::lock_guard<std::mutex> lock(mutex);
    before[static_cast<std::size_t>(rank)] = none;
    stop[static_cast<std::size_t>(rank)] = agreed ? 1 : 0;
    mixed[static_cast<std::size_t>(rank)] = largest;
  });
  EXPECT_EQ(before, std::vector<int>(kWorld, 0));
  EXPECT_EQ(stop, std::vector<int>(kWorld, 1));
  EXPECT_EQ(mixed, std::vector<int>(kWorld, SIGTERM > SIGUSR1 ? SIGTERM : SIGUSR1));
}

}  // namespace
}  // namespace lockstep::launch
