// Process groups in one process: the shared collective case table (every collective, op and dtype, async
// ordering, desync; also run under mpirun) on threaded worlds of sizes 1-4 and the single-process group, and
// what only one process can check: argument errors, barriers, timeouts, run_threaded's error handling, the
// single-process group's inline completion.
#include "distributed/process_group.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "distributed/init.h"
#include "distributed/single.h"
#include "distributed/threaded.h"
#include "src/tensor/factories.h"
#include "tests/distributed/cases/group_case.h"
#include "tests/support/expect_error.h"

namespace lockstep::distributed {
namespace {

using GroupPtr = std::shared_ptr<ProcessGroup>;
using lockstep::test::expect_error;
using lockstep::test::expect_thrown;

constexpr DType kDTypes[] = {DType::f32, DType::f64, DType::i64};
constexpr ReduceOp kOps[] = {ReduceOp::kSum, ReduceOp::kAvg, ReduceOp::kMax, ReduceOp::kMin};

ProcessGroupOptions short_timeout(std::chrono::milliseconds timeout) {
  ProcessGroupOptions options;
  options.timeout = timeout;
  return options;
}

// The collective case table (tests/distributed/cases, also run under mpirun by tests/mpi) on threaded worlds
// of every size from 1 to 4 and on the single-process group.
class CollectiveCase : public ::testing::TestWithParam<const test::GroupCase*> {};

TEST_P(CollectiveCase, OnThreadedWorldsOfOneToFourRanks) {
  const test::GroupCase& c = *GetParam();
  for (int world = std::max(1, c.min_world); world <= 4; ++world) run_threaded(world, c.run);
}

INSTANTIATE_TEST_SUITE_P(Table, CollectiveCase,
                         ::testing::ValuesIn(test::case_pointers(test::collective_cases())), test::case_name);

// The cases that make sense on one rank.
std::vector<const test::GroupCase*> single_rank_cases() {
  std::vector<const test::GroupCase*> cases;
  for (const test::GroupCase* c : test::case_pointers(test::collective_cases())) {
    if (c->min_world <= 1) cases.push_back(c);
  }
  return cases;
}

class CollectiveCaseOnOneRank : public ::testing::TestWithParam<const test::GroupCase*> {};

TEST_P(CollectiveCaseOnOneRank, OnTheSingleProcessGroup) {
  GetParam()->run(std::make_shared<SingleProcessGroup>());
}

INSTANTIATE_TEST_SUITE_P(Table, CollectiveCaseOnOneRank, ::testing::ValuesIn(single_rank_cases()),
                         test::case_name);

TEST(ProcessGroup, CollectiveCallDescribesItself) {
  const CollectiveCall reduce{Collective::kAllReduce, DType::f32, 262144, ReduceOp::kSum, 0, 17};
  EXPECT_EQ(reduce.describe(), "all_reduce #17 (sum, f32 x 262144, 1.00 MiB)");
  EXPECT_EQ(reduce.signature(), "all_reduce (sum, f32 x 262144)");
  const CollectiveCall bcast{Collective::kBroadcast, DType::i64, 10, ReduceOp::kSum, 2, 3};
  EXPECT_EQ(bcast.describe(), "broadcast #3 (root 2, i64 x 10, 80 B)");
  const CollectiveCall barrier{Collective::kBarrier, DType::f32, 0, ReduceOp::kSum, 0, 4};
  EXPECT_EQ(barrier.describe(), "barrier #4");
  EXPECT_TRUE(
      reduce.matches(CollectiveCall{Collective::kAllReduce, DType::f32, 262144, ReduceOp::kSum, 0, 99}));
  EXPECT_FALSE(
      reduce.matches(CollectiveCall{Collective::kAllReduce, DType::f32, 262144, ReduceOp::kMax, 0, 17}));
  EXPECT_FALSE(
      reduce.matches(CollectiveCall{Collective::kAllReduce, DType::f64, 262144, ReduceOp::kSum, 0, 17}));
  EXPECT_FALSE(bcast.matches(CollectiveCall{Collective::kBroadcast, DType::i64, 10, ReduceOp::kSum, 1, 3}));
  const std::vector<CollectiveCall> calls = {
      {Collective::kAllReduce, DType::f32, 10, ReduceOp::kSum, 0, 5},
      {Collective::kBroadcast, DType::f32, 10, ReduceOp::kSum, 0, 5},
      {Collective::kAllReduce, DType::f32, 10, ReduceOp::kSum, 0, 5},
  };
  EXPECT_EQ(describe_desync(calls),
            "collective #5: ranks 0, 2 called all_reduce (sum, f32 x 10), rank 1 called broadcast (root 0, "
            "f32 x 10)");
}

TEST(ProcessGroup, ReduceIntoAndDivideByComputeElementwise) {
  std::vector<float> a = {1, -2, 3};
  const std::vector<float> b = {4, 5, -6};
  reduce_into(a.data(), b.data(), 3, DType::f32, ReduceOp::kMax);
  EXPECT_EQ(a, (std::vector<float>{4, 5, 3}));
  reduce_into(a.data(), b.data(), 3, DType::f32, ReduceOp::kMin);
  EXPECT_EQ(a, (std::vector<float>{4, 5, -6}));
  reduce_into(a.data(), b.data(), 3, DType::f32, ReduceOp::kAvg);  // sums
  EXPECT_EQ(a, (std::vector<float>{8, 10, -12}));
  divide_by(a.data(), 3, DType::f32, 4);
  EXPECT_EQ(a, (std::vector<float>{2, 2.5f, -3}));
  std::vector<std::int64_t> i = {7, -7, 8};
  divide_by(i.data(), 3, DType::i64, 2);
  EXPECT_EQ(i, (std::vector<std::int64_t>{3, -3, 4}));
  std::vector<std::uint8_t> u = {1};
  expect_error<TypeError>([&] { reduce_into(u.data(), u.data(), 1, DType::u8, ReduceOp::kSum); }, {"u8"});
}

// Powers of two divide by multiplying with the reciprocal: the quotients must be the very bits of x / d, for
// normal, subnormal and huge values alike; other divisors divide.
TEST(ProcessGroup, DivideByGivesTheQuotientsBitsForEveryWorldSize) {
  std::vector<float> values;
  std::vector<double> doubles;
  std::uint32_t state = 12345;
  for (int k = 0; k < 4000; ++k) {
    state = state * 1664525u + 1013904223u;
    float f;
    std::memcpy(&f, &state, sizeof(f));
    if (!std::isfinite(f)) continue;
    values.push_back(f);
    doubles.push_back(static_cast<double>(f) * 1e-300);
  }
  values.push_back(std::numeric_limits<float>::denorm_min());
  values.push_back(std::numeric_limits<float>::max());
  for (const std::int64_t world : {1, 2, 3, 4, 6, 8, 64}) {
    std::vector<float> got = values;
    divide_by(got.data(), static_cast<std::int64_t>(got.size()), DType::f32, world);
    std::vector<double> got64 = doubles;
    divide_by(got64.data(), static_cast<std::int64_t>(got64.size()), DType::f64, world);
    for (std::size_t i = 0; i < values.size(); ++i) {
      const float want = values[i] / static_cast<float>(world);
      ASSERT_EQ(std::memcmp(&got[i], &want, sizeof(float)), 0)
          << values[i] << " / " << world << ": got " << got[i] << ", expected " << want;
    }
    for (std::size_t i = 0; i < doubles.size(); ++i) {
      const double want = doubles[i] / static_cast<double>(world);
      ASSERT_EQ(std::memcmp(&got64[i], &want, sizeof(double)), 0) << doubles[i] << " / " << world;
    }
  }
  std::vector<float> one = {1.0f};
  expect_error<ValueError>([&] { divide_by(one.data(), 1, DType::f32, 0); }, {"positive divisor"});
}

TEST(Threaded, BarrierWaitsForEveryRank) {
  for (int world = 1; world <= 4; ++world) {
    std::atomic<int> arrived{0};
    run_threaded(world, [&](const GroupPtr& group) {
      for (int round = 1; round <= 3; ++round) {
        ++arrived;
        group->barrier()->wait();
        EXPECT_GE(arrived.load(), round * world) << "round " << round;
        group->barrier()->wait();  // nobody starts the next round before everyone has checked
      }
    });
    EXPECT_EQ(arrived.load(), 3 * world);
  }
}

TEST(ProcessGroup, BadArgumentsThrowNamingTheCollective) {
  ThreadedWorld world(2);
  for (const GroupPtr& group : {GroupPtr(world.group(0)), GroupPtr(std::make_shared<SingleProcessGroup>())}) {
    SCOPED_TRACE(group->backend());
    const Tensor matrix = zeros({4, 3});
    expect_error<ValueError>([&] { group->all_reduce(matrix.transpose(0, 1)); },
                             {"all_reduce", "contiguous", "[3, 4]", "f32"});
    expect_error<TypeError>([&] { group->broadcast(zeros({4}, DType::u8)); },
                            {"broadcast", "u8", "f32, f64 or i64"});
    expect_error<ValueError>([&] { group->all_gather(zeros({3}), zeros({group->size() * 3 + 1})); },
                             {"all_gather", "[3]", str_cat("[", group->size() * 3 + 1, "]"), "world size"});
    expect_error<ValueError>([&] { group->reduce_scatter(zeros({group->size() * 2 + 1}), zeros({2})); },
                             {"reduce_scatter", str_cat("[", group->size() * 2 + 1, "]"), "[2]"});
    expect_error<TypeError>([&] { group->all_gather(zeros({2}), zeros({group->size() * 2}, DType::f64)); },
                            {"all_gather", "f32", "f64"});
    expect_error<TypeError>(
        [&] { group->reduce_scatter(zeros({group->size() * 2}, DType::i64), zeros({2})); },
        {"reduce_scatter", "i64", "f32"});
    expect_error<ValueError>([&] { group->broadcast(zeros({2}), group->size()); }, {"broadcast", "root"});
    expect_error<ValueError>([&] { group->all_reduce(Tensor()); }, {"all_reduce", "undefined"});
    const Tensor whole = zeros({group->size() * 2});
    expect_error<ValueError>([&] { group->reduce_scatter(whole, whole.slice(0, 0, 2)); },
                             {"reduce_scatter", "overlap"});
    // Rejected calls are not collectives: nothing was issued.
    EXPECT_EQ(group->sequence(), 0u);
  }
}

TEST(Threaded, DifferentSizesOrOpsAreADesync) {
  expect_error<DistributedError>(
      [] {
        run_threaded(3, [](const GroupPtr& group) {
          group->all_reduce(zeros({group->rank() == 2 ? 11 : 10}))->wait();
        });
      },
      {"[rank 0/3]", "ranks 0-1 called all_reduce (sum, f32 x 10)",
       "rank 2 called all_reduce (sum, f32 x 11)"});
  expect_error<DistributedError>(
      [] {
        run_threaded(2, [](const GroupPtr& group) {
          group->all_reduce(zeros({4}), group->rank() == 0 ? ReduceOp::kMax : ReduceOp::kMin)->wait();
        });
      },
      {"rank 0 called all_reduce (max, f32 x 4)", "rank 1 called all_reduce (min, f32 x 4)"});
}

TEST(Threaded, DifferentRootsKindsOrDtypesAreADesync) {
  expect_error<DistributedError>(
      [] {
        run_threaded(3, [](const GroupPtr& group) {
          group->broadcast(zeros({5}), group->rank() == 0 ? 0 : 2)->wait();
        });
      },
      {"collectives out of step at collective #1", "rank 0 called broadcast (root 0, f32 x 5)",
       "ranks 1-2 called broadcast (root 2, f32 x 5)"});
  expect_error<DistributedError>(
      [] {
        run_threaded(2, [](const GroupPtr& group) {
          if (group->rank() == 0) {
            group->barrier()->wait();
          } else {
            const Tensor whole = zeros({2 * 3});
            group->all_gather(zeros({3}), whole)->wait();
          }
        });
      },
      {"rank 0 called barrier", "rank 1 called all_gather (f32 x 3)"});
  expect_error<DistributedError>(
      [] {
        run_threaded(2, [](const GroupPtr& group) {
          group->all_reduce(zeros({4}, group->rank() == 0 ? DType::f32 : DType::f64))->wait();
        });
      },
      {"rank 0 called all_reduce (sum, f32 x 4)", "rank 1 called all_reduce (sum, f64 x 4)"});
}

// The threaded backend compares calls whatever check_desync says (moving data between mismatched buffers is
// unsafe): turning the option off changes neither results nor the error.
TEST(Threaded, CheckDesyncOffStillComparesAndGivesTheSameResults) {
  ProcessGroupOptions off;
  off.check_desync = false;
  std::vector<std::vector<float>> results(2);
  for (const bool check : {true, false}) {
    run_threaded(
        3,
        [&](const GroupPtr& group) {
          const Tensor t = full({7}, 0.1 * (group->rank() + 1));
          group->all_reduce(t, ReduceOp::kAvg)->wait();
          if (group->rank() == 0) results[check ? 0 : 1] = t.to_vector<float>();
        },
        check ? ProcessGroupOptions{} : off);
  }
  EXPECT_EQ(results[0], results[1]);
  expect_error<DistributedError>(
      [&] {
        run_threaded(
            2, [](const GroupPtr& group) { group->all_reduce(zeros({group->rank() == 0 ? 2 : 3}))->wait(); },
            off);
      },
      {"rank 0 called all_reduce (sum, f32 x 2)", "rank 1 called all_reduce (sum, f32 x 3)"});
}

TEST(Threaded, ARankThatNeverCallsLeavesTheOtherWithTheTimeoutError) {
  ThreadedWorld world(2, short_timeout(std::chrono::milliseconds(300)));
  const GroupPtr group = world.group(0);
  const GroupPtr other = world.group(1);
  const Tensor mine = ones({4});
  const Tensor theirs = ones({4});
  std::thread rank1([&] {
    for (int k = 0; k < 2; ++k) other->all_reduce(theirs)->wait();
  });
  for (int k = 0; k < 2; ++k) group->all_reduce(mine)->wait();
  rank1.join();
  EXPECT_EQ(mine.to_vector<float>(), (std::vector<float>{4, 4, 4, 4}));
  // Rank 1 stops calling: collective #3 fails within the timeout, naming itself.
  const auto error =
      expect_thrown<DistributedError>([&] { group->all_reduce(mine)->wait(); },
                                      {"[rank 0/2] ", "all_reduce #3 (sum, f32 x 4, 16 B)", "300 ms"});
  if (error) {
    EXPECT_EQ(error->collective(), "all_reduce");
  }
}

TEST(Threaded, ARankThatReturnsWithoutCallingFailsTheOthersAtOnce) {
  // The timeout is long: the error must come from rank 1 having finished, not from the watchdog.
  expect_error<DistributedError>(
      [] {
        run_threaded(
            3,
            [](const GroupPtr& group) {
              if (group->rank() == 1) return;
              group->all_reduce(zeros({2}))->wait();
            },
            short_timeout(std::chrono::minutes(2)));
      },
      {"[rank 0/3] ", "all_reduce #1", "rank 1 finished after 0 collectives without calling it"});
}

TEST(Threaded, RunThreadedRethrowsTheFailingRanksErrorWithItsPrefix) {
  // Ranks 0 and 1 wait in an all_reduce that rank 2 never joins: the abort must free them.
  const auto error = expect_thrown<ValueError>(
      [] {
        run_threaded(
            3,
            [](const GroupPtr& group) {
              if (group->rank() == 2) throw ValueError("model: expected 3 inputs, but got 4");
              group->all_reduce(zeros({2}))->wait();
            },
            short_timeout(std::chrono::minutes(2)));
      },
      {"[rank 2/3] model: expected 3 inputs, but got 4"});
  EXPECT_TRUE(error.has_value());
}

TEST(Threaded, RunThreadedPrefersTheLowestFirstHandFailure) {
  expect_error<TypeError>(
      [] {
        run_threaded(4, [](const GroupPtr& group) {
          if (group->rank() == 0) group->barrier()->wait();  // fails because of the others' abort
          if (group->rank() == 2) throw TypeError("second");
          if (group->rank() == 3) throw TypeError("third");
        });
      },
      {"[rank 2/4] second"});
  // Non-lockstep exceptions keep their message under the prefix.
  expect_error<std::runtime_error>(
      [] {
        run_threaded(2, [](const GroupPtr& group) {
          if (group->rank() == 1) throw std::out_of_range("index 9");
        });
      },
      {"[rank 1/2] index 9"});
  // Success: every rank ran.
  std::atomic<int> ran{0};
  run_threaded(4, [&](const GroupPtr&) { ++ran; });
  EXPECT_EQ(ran.load(), 4);
}

TEST(Threaded, AbortFailsPendingAndFutureCollectives) {
  ThreadedWorld world(2);
  const GroupPtr group = world.group(0);
  const WorkPtr pending = group->all_reduce(zeros({3}));  // rank 1 never joins
  world.abort("the data loader of rank 1 failed");
  expect_error<DistributedError>([&] { pending->wait(); },
                                 {"[rank 0/2] ", "all_reduce #1", "the data loader of rank 1 failed"});
  expect_error<DistributedError>([&] { group->barrier()->wait(); },
                                 {"barrier #2", "the data loader of rank 1 failed"});
  expect_error<DistributedError>([&] { world.group(1)->broadcast(zeros({3}))->wait(); },
                                 {"[rank 1/2] ", "broadcast #1", "the data loader of rank 1 failed"});
}

TEST(Threaded, DestroyingAGroupFailsItsQueuedCollectives) {
  std::vector<WorkPtr> works;
  {
    ThreadedWorld world(2);
    const GroupPtr group = world.group(0);
    const Tensor t = zeros({3});
    for (int k = 0; k < 3; ++k) works.push_back(group->all_reduce(t));
  }
  for (const WorkPtr& work : works) {
    EXPECT_TRUE(work->completed());
    expect_error<DistributedError>([&] { work->wait(); }, {"[rank 0/2] ", "all_reduce #"});
  }
}

TEST(Single, IsRankZeroOfOneAndRunsInline) {
  SingleProcessGroup group;
  EXPECT_EQ(group.rank(), 0);
  EXPECT_EQ(group.size(), 1);
  EXPECT_STREQ(group.backend(), "single");
  std::vector<CollectiveEvent> events;
  group.set_observer([&](const CollectiveCall&, CollectiveEvent event) { events.push_back(event); });
  for (DType dtype : kDTypes) {
    for (ReduceOp op : kOps) {
      const Tensor t = from_vector(std::vector<double>{3, -1, 7}, {3}, dtype);
      const WorkPtr work = group.all_reduce(t, op);
      EXPECT_TRUE(work->completed());  // inline: done before the call returns
      work->wait();
      EXPECT_EQ(t.to_vector<double>(), (std::vector<double>{3, -1, 7}))
          << dtype_name(dtype) << reduce_op_name(op);
    }
    const Tensor b = from_vector(std::vector<double>{5, 6}, {2}, dtype);
    group.broadcast(b, 0)->wait();
    EXPECT_EQ(b.to_vector<double>(), (std::vector<double>{5, 6}));
    const Tensor gathered = zeros({1, 2}, dtype);
    group.all_gather(b, gathered)->wait();
    EXPECT_EQ(gathered.to_vector<double>(), (std::vector<double>{5, 6}));
    const Tensor scattered = zeros({2}, dtype);
    group.reduce_scatter(gathered, scattered, ReduceOp::kAvg)->wait();
    EXPECT_EQ(scattered.to_vector<double>(), (std::vector<double>{5, 6}));
  }
  group.barrier()->wait();
  EXPECT_EQ(group.sequence(), 3u * 7u + 1u);
  EXPECT_EQ(events.size(), 2u * group.sequence());
  EXPECT_EQ(events.front(), CollectiveEvent::kStart);
  EXPECT_EQ(events.back(), CollectiveEvent::kFinish);
  expect_error<ValueError>([&] { group.broadcast(zeros({2}), 1); }, {"broadcast", "root", "[0, 1)", "1"});
}

// Sets environment variables for one scope and restores them.
class ScopedEnv {
 public:
  void set(const char* name, const char* value) {
    const char* old = std::getenv(name);
    saved_.emplace_back(name, old ? std::optional<std::string>(old) : std::nullopt);
    ::setenv(name, value, 1);
  }
  void unset(const char* name) {
    const char* old = std::getenv(name);
    saved_.emplace_back(name, old ? std::optional<std::string>(old) : std::nullopt);
    ::unsetenv(name);
  }
  ~ScopedEnv() {
    for (auto it = saved_.rbegin(); it != saved_.rend(); ++it) {
      if (it->second)
        ::setenv(it->first.c_str(), it->second->c_str(), 1);
      else
        ::unsetenv(it->first.c_str());
    }
  }

 private:
  std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};

TEST(ProcessGroupInit, WithoutALauncherTheJobIsOneProcess) {
  ScopedEnv env;
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK"})
    env.unset(name);
  const auto group = init_process_group();
  EXPECT_STREQ(group->backend(), "single");
  EXPECT_EQ(group->size(), 1);
  EXPECT_EQ(rank_prefix(), "[rank 0/1] ");
  // Before MPI starts, the prefix comes from the launcher's environment.
  env.set("OMPI_COMM_WORLD_RANK", "2");
  env.set("OMPI_COMM_WORLD_SIZE", "5");
  EXPECT_EQ(rank_prefix(), "[rank 2/5] ");
}

TEST(ProcessGroupInit, AbortJobPrintsOnePrefixedLineAndExitsWithTheCode) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  ScopedEnv env;
  env.unset("OMPI_COMM_WORLD_RANK");
  env.unset("OMPI_COMM_WORLD_SIZE");
  EXPECT_EXIT(abort_job("train: the loss is NaN at step 3", 3), ::testing::ExitedWithCode(3),
              "^\\[rank 0/1\\] train: the loss is NaN at step 3\n$");
  // A message that already carries the prefix (a DistributedError's) is not prefixed twice.
  EXPECT_EXIT(abort_job("[rank 0/1] all_reduce #2 (sum, f32 x 4, 16 B) failed"), ::testing::ExitedWithCode(1),
              "^\\[rank 0/1\\] all_reduce #2 \\(sum, f32 x 4, 16 B\\) failed\n$");
}

}  // namespace
}  // namespace lockstep::distributed
