// The collective case table (run by tests/distributed on threaded worlds and by tests/mpi under mpirun):
// every collective, op and dtype against closed forms, tiny and large counts, views and in-place gathers,
// asynchronous completion order, and desync detection, on whatever process group it is given.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "distributed/process_group.h"
#include "src/tensor/factories.h"
#include "tests/distributed/cases/group_case.h"
#include "tests/support/expect_error.h"

namespace lockstep::distributed::test {
namespace {

using GroupPtr = std::shared_ptr<ProcessGroup>;

constexpr DType kDTypes[] = {DType::f32, DType::f64, DType::i64};
constexpr ReduceOp kOps[] = {ReduceOp::kSum, ReduceOp::kAvg, ReduceOp::kMax, ReduceOp::kMin};

// Rank r's element i: (r + 1) * (i % 17 + 1), negated for every third i (exact in every dtype).
double element(int rank, std::int64_t i) {
  return (i % 3 == 1 ? -1.0 : 1.0) * (rank + 1) * static_cast<double>(i % 17 + 1);
}

// The reduction of element(r, i) over ranks 0..world-1, by its closed form.
double reduced(int world, std::int64_t i, ReduceOp op, DType dtype) {
  const double sign = i % 3 == 1 ? -1.0 : 1.0;
  const std::int64_t magnitude = i % 17 + 1;
  const std::int64_t sum = magnitude * world * (world + 1) / 2;
  switch (op) {
    case ReduceOp::kSum:
      return sign * static_cast<double>(sum);
    case ReduceOp::kAvg:
      // Integers divide with truncation (towards zero, so the sign factors out).
      return dtype == DType::i64 ? sign * static_cast<double>(sum / world)
                                 : sign * static_cast<double>(sum) / world;
    case ReduceOp::kMax:
      return sign > 0 ? static_cast<double>(world * magnitude) : -static_cast<double>(magnitude);
    case ReduceOp::kMin:
      return sign > 0 ? static_cast<double>(magnitude) : -static_cast<double>(world * magnitude);
  }
  return 0.0;
}

Tensor ranked(int rank, std::int64_t n, DType dtype) {
  std::vector<double> values(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) values[static_cast<std::size_t>(i)] = element(rank, i);
  return from_vector(values, {n}, dtype);
}

// Expects t[i] == expected(i) for every i; reports only the first few mismatches.
void expect_values(const Tensor& t, const std::function<double(std::int64_t)>& expected,
                   const std::string& what) {
  const auto got = t.to_vector<double>();
  int reported = 0;
  for (std::int64_t i = 0; i < static_cast<std::int64_t>(got.size()) && reported < 5; ++i) {
    if (got[static_cast<std::size_t>(i)] != expected(i)) {
      ADD_FAILURE() << what << ": element " << i << " is " << got[static_cast<std::size_t>(i)]
                    << ", expected " << expected(i);
      ++reported;
    }
  }
}

std::string where(const ProcessGroup& group) {
  return str_cat(group.backend(), " world ", group.size(), " rank ", group.rank());
}

void tiny_counts(const GroupPtr& group) {
  check_collectives(*group, 1);
  check_collectives(*group, 0);
  group->barrier()->wait();
}

void large_counts(const GroupPtr& group) {
  const int world = group->size();
  const int r = group->rank();
  constexpr std::int64_t n = 3'000'000;
  const Tensor t = ranked(r, n, DType::f32);
  group->all_reduce(t, ReduceOp::kSum)->wait();
  expect_values(
      t, [&](std::int64_t i) { return reduced(world, i, ReduceOp::kSum, DType::f32); }, "all_reduce 3M f32");
  const Tensor d = ranked(r, n, DType::f64);
  group->broadcast(d, world - 1)->wait();
  expect_values(
      d, [&](std::int64_t i) { return element(world - 1, i); }, "broadcast 3M f64");
  const std::int64_t block = n / world;
  const Tensor input = ranked(r, block * world, DType::i64);
  const Tensor output = zeros({block}, DType::i64);
  group->reduce_scatter(input, output, ReduceOp::kMax)->wait();
  expect_values(
      output, [&](std::int64_t i) { return reduced(world, r * block + i, ReduceOp::kMax, DType::i64); },
      "reduce_scatter 3M i64");
  const Tensor gathered = zeros({world * block}, DType::i64);
  group->all_gather(output, gathered)->wait();
  expect_values(
      gathered, [&](std::int64_t i) { return reduced(world, i, ReduceOp::kMax, DType::i64); },
      "all_gather 3M i64");
}

// An average of values that are not exact in f32 comes out with the same bits on every rank: the maximum and
// the minimum over ranks of the result are the result.
void average_is_identical_on_every_rank(const GroupPtr& group) {
  constexpr std::int64_t n = 262144;
  std::vector<float> values(n);
  for (std::int64_t i = 0; i < n; ++i)
    values[static_cast<std::size_t>(i)] = 0.001f * static_cast<float>(i % 1000) * (group->rank() + 1);
  const Tensor t = from_vector(values, {512, 512});
  group->all_reduce(t, ReduceOp::kAvg)->wait();
  const Tensor high = t.clone(), low = t.clone();
  group->all_reduce(high, ReduceOp::kMax)->wait();
  group->all_reduce(low, ReduceOp::kMin)->wait();
  const std::vector<float> got = t.to_vector<float>();
  EXPECT_EQ(high.to_vector<float>(), got) << where(*group);
  EXPECT_EQ(low.to_vector<float>(), got) << where(*group);
  // (1 + ... + world) / world = (world + 1) / 2 times rank 0's value.
  const float factor = static_cast<float>(group->size() + 1) / 2.0f;
  for (std::int64_t i = 0; i < n; i += 4099)
    EXPECT_NEAR(got[static_cast<std::size_t>(i)], factor * 0.001f * static_cast<float>(i % 1000), 1e-5f) << i;
}

void all_gather_in_place(const GroupPtr& group) {
  const Tensor output = zeros({group->size() * 4});
  Tensor block = output.slice(0, group->rank() * 4, (group->rank() + 1) * 4);
  block.fill_(group->rank() + 0.5);
  group->all_gather(block, output)->wait();
  expect_values(
      output, [&](std::int64_t i) { return static_cast<double>(i / 4) + 0.5; }, "all_gather in place");
}

void all_reduce_of_a_view(const GroupPtr& group) {
  const Tensor base = full({2, 4}, group->rank() + 1.0);
  group->all_reduce(base.select(0, 1))->wait();
  const double mine = group->rank() + 1.0;
  const double summed = group->size() * (group->size() + 1) / 2.0;
  expect_values(
      base, [&](std::int64_t i) { return i < 4 ? mine : summed; }, "all_reduce of row 1 of [2, 4]");
}

// Asynchronous collectives start and finish in call order whatever order they are waited in.
void async_in_call_order(const GroupPtr& group) {
  constexpr int kWorks = 24;
  const int world = group->size();
  const int r = group->rank();
  const std::uint64_t first = group->sequence() + 1;
  std::vector<std::pair<std::uint64_t, CollectiveEvent>> events;
  group->set_observer(
      [&](const CollectiveCall& call, CollectiveEvent event) { events.emplace_back(call.sequence, event); });
  std::vector<Tensor> tensors;
  std::vector<WorkPtr> works;
  for (int k = 0; k < kWorks; ++k) {
    tensors.push_back(full({1000}, k * (r + 1.0), DType::f64));
    const int root = k % world;
    works.push_back(k % 3 == 2 ? group->broadcast(tensors.back(), root) : group->all_reduce(tensors.back()));
  }
  EXPECT_EQ(group->sequence(), first + kWorks - 1);
  for (int k = kWorks - 1; k >= 0; --k) works[static_cast<std::size_t>(k)]->wait();  // any order of waits
  group->set_observer({});
  for (int k = 0; k < kWorks; ++k) {
    EXPECT_TRUE(works[static_cast<std::size_t>(k)]->completed());
    EXPECT_EQ(works[static_cast<std::size_t>(k)]->call().sequence, first + static_cast<std::uint64_t>(k));
    // A broadcast leaves the root's k * (root + 1); an all_reduce sums k * (r + 1) over ranks.
    const double expected = k % 3 == 2 ? k * (k % world + 1.0) : k * world * (world + 1) / 2.0;
    EXPECT_EQ(tensors[static_cast<std::size_t>(k)].to_vector<double>()[999], expected) << "work " << k;
  }
  ASSERT_EQ(events.size(), 2u * kWorks) << where(*group);
  for (int k = 0; k < kWorks; ++k) {
    const std::uint64_t sequence = first + static_cast<std::uint64_t>(k);
    EXPECT_EQ(events[2 * static_cast<std::size_t>(k)], std::make_pair(sequence, CollectiveEvent::kStart));
    EXPECT_EQ(events[2 * static_cast<std::size_t>(k) + 1],
              std::make_pair(sequence, CollectiveEvent::kFinish));
  }
}

// Rank 0 all_reduces while the others broadcast: a DistributedError on every rank naming each call, raised
// before any data moved, so that the group goes on working.
void desync_fails_on_every_rank(const GroupPtr& group) {
  const Tensor t = zeros({10});
  const int world = group->size();
  const std::string others = world > 2 ? str_cat("ranks 1-", world - 1) : "rank 1";
  const std::string number = str_cat("collective #", group->sequence() + 1);
  const auto error = lockstep::test::expect_thrown<DistributedError>(
      [&] { (group->rank() == 0 ? group->all_reduce(t) : group->broadcast(t, 0))->wait(); },
      {str_cat("[rank ", group->rank(), "/", world, "] "), number, "rank 0 called all_reduce (sum, f32 x 10)",
       others + " called broadcast (root 0, f32 x 10)"});
  if (error) {
    EXPECT_EQ(error->rank(), group->rank());
    EXPECT_EQ(error->world_size(), world);
  }
  const Tensor ones_t = ones({3});
  group->all_reduce(ones_t)->wait();
  expect_values(
      ones_t, [&](std::int64_t) { return world; }, "all_reduce after a desync");
}

std::vector<GroupCase> make_cases() {
  std::vector<GroupCase> cases;
  cases.push_back(
      {"EveryCollectiveOpAndDtype", [](const GroupPtr& group) { check_collectives(*group, 13); }});
  cases.push_back({"TinyCounts", tiny_counts});
  cases.push_back({"LargeCounts", large_counts});
  cases.push_back({"AverageIsIdenticalOnEveryRank", average_is_identical_on_every_rank});
  cases.push_back({"AllGatherInPlace", all_gather_in_place});
  cases.push_back({"AllReduceOfAViewChangesOnlyThatPartOfItsBase", all_reduce_of_a_view});
  cases.push_back({"ManyAsyncCollectivesCompleteInCallOrder", async_in_call_order});
  cases.push_back({"DesyncFailsOnEveryRankNamingEachCall", desync_fails_on_every_rank, 2});
  return cases;
}

}  // namespace

void check_collectives(ProcessGroup& group, std::int64_t n) {
  const int world = group.size();
  const int r = group.rank();
  for (DType dtype : kDTypes) {
    for (ReduceOp op : kOps) {
      const std::string what =
          str_cat(dtype_name(dtype), " ", reduce_op_name(op), " n ", n, ", ", where(group));
      const Tensor t = ranked(r, n, dtype);
      group.all_reduce(t, op)->wait();
      expect_values(
          t, [&](std::int64_t i) { return reduced(world, i, op, dtype); }, "all_reduce " + what);

      const Tensor input = ranked(r, world * n, dtype);
      const Tensor output = full({n}, -99.0, dtype);
      group.reduce_scatter(input, output, op)->wait();
      expect_values(
          output, [&](std::int64_t i) { return reduced(world, r * n + i, op, dtype); },
          "reduce_scatter " + what);
      expect_values(
          input, [&](std::int64_t i) { return element(r, i); }, "reduce_scatter's input " + what);
    }
    for (int root = 0; root < world; ++root) {
      const Tensor t = ranked(r, n, dtype);
      group.broadcast(t, root)->wait();
      expect_values(
          t, [&](std::int64_t i) { return element(root, i); },
          str_cat("broadcast root ", root, " ", dtype_name(dtype), " n ", n, ", ", where(group)));
    }
    const Tensor input = ranked(r, n, dtype);
    const Tensor output = zeros({world, n}, dtype);
    group.all_gather(input, output)->wait();
    expect_values(
        output, [&](std::int64_t i) { return element(static_cast<int>(i / n), i % n); },
        str_cat("all_gather ", dtype_name(dtype), " n ", n, ", ", where(group)));
    expect_values(
        input, [&](std::int64_t i) { return element(r, i); }, str_cat("all_gather's input, ", where(group)));
  }
}

const std::vector<GroupCase>& collective_cases() {
  static const std::vector<GroupCase> cases = make_cases();
  return cases;
}

}  // namespace lockstep::distributed::test
