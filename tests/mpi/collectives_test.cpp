// The MPI process group at the real world size (mpirun -np 2, 3, 4): every collective, op and dtype against
// hand-computed values, large and tiny counts, collectives split into pieces, async order, the desync check,
// and the node-local rank.
#include <gtest/gtest.h>

// The C API only (Open MPI's header would otherwise pull in its deprecated C++ bindings).
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "distributed/mpi.h"
#include "src/tensor/factories.h"
#include "tests/mpi/mpi_env.h"
#include "tests/support/expect_error.h"

namespace lockstep::distributed {
namespace {

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

// Every collective with every op and dtype at `n` elements per rank, on `group`.
void check_collectives(ProcessGroup& group, std::int64_t n) {
  const int world = group.size();
  const int r = group.rank();
  for (DType dtype : kDTypes) {
    for (ReduceOp op : kOps) {
      const std::string what = str_cat(dtype_name(dtype), " ", reduce_op_name(op), " n ", n);
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
    }
    for (int root = 0; root < world; ++root) {
      const Tensor t = ranked(r, n, dtype);
      group.broadcast(t, root)->wait();
      expect_values(
          t, [&](std::int64_t i) { return element(root, i); },
          str_cat("broadcast root ", root, " ", dtype_name(dtype), " n ", n));
    }
    const Tensor input = ranked(r, n, dtype);
    const Tensor output = zeros({world, n}, dtype);
    group.all_gather(input, output)->wait();
    expect_values(
        output, [&](std::int64_t i) { return element(static_cast<int>(i / n), i % n); },
        str_cat("all_gather ", dtype_name(dtype), " n ", n));
  }
}

std::shared_ptr<MpiProcessGroup> world_mpi() {
  auto group = std::dynamic_pointer_cast<MpiProcessGroup>(test::mpi_world());
  if (!group) throw std::logic_error("test_mpi: the world group is not an MpiProcessGroup");
  return group;
}

TEST(MpiCollectives, WorldMatchesTheLauncher) {
  const auto group = world_mpi();
  EXPECT_STREQ(group->backend(), "mpi");
  ASSERT_NE(std::getenv("OMPI_COMM_WORLD_SIZE"), nullptr);
  EXPECT_EQ(group->size(), std::atoi(std::getenv("OMPI_COMM_WORLD_SIZE")));
  EXPECT_EQ(group->rank(), std::atoi(std::getenv("OMPI_COMM_WORLD_RANK")));
  EXPECT_TRUE(mpi_launched());
  EXPECT_GE(group->thread_level(), MPI_THREAD_SERIALIZED);
  EXPECT_FALSE(group->host().empty());
}

TEST(MpiCollectives, LocalRanksNumberEachHostsRanks) {
  const auto group = world_mpi();
  ASSERT_GE(group->local_size(), 1);
  ASSERT_LE(group->local_size(), group->size());
  ASSERT_GE(group->local_rank(), 0);
  ASSERT_LT(group->local_rank(), group->local_size());
  // Gather (host hash, local rank, local size) from every rank: each host's ranks number 0..k-1, k = local
  // size.
  const std::int64_t host_hash = static_cast<std::int64_t>(std::hash<std::string>{}(group->host()) >> 1);
  const Tensor mine =
      from_vector(std::vector<std::int64_t>{host_hash, group->local_rank(), group->local_size()}, {3});
  const Tensor all = zeros({group->size(), 3}, DType::i64);
  group->all_gather(mine, all)->wait();
  const auto v = all.to_vector<std::int64_t>();
  std::map<std::int64_t, std::vector<std::int64_t>> local_ranks;
  std::map<std::int64_t, std::int64_t> local_sizes;
  for (int r = 0; r < group->size(); ++r) {
    local_ranks[v[3 * r]].push_back(v[3 * r + 1]);
    local_sizes[v[3 * r]] = v[3 * r + 2];
  }
  for (auto& [host, ranks] : local_ranks) {
    std::sort(ranks.begin(), ranks.end());
    ASSERT_EQ(static_cast<std::int64_t>(ranks.size()), local_sizes[host]);
    for (std::size_t k = 0; k < ranks.size(); ++k) EXPECT_EQ(ranks[k], static_cast<std::int64_t>(k));
  }
}

TEST(MpiCollectives, EveryCollectiveOpAndDtype) { check_collectives(*world_mpi(), 13); }

TEST(MpiCollectives, TinyCounts) {
  const auto group = world_mpi();
  check_collectives(*group, 1);
  check_collectives(*group, 0);
  group->barrier()->wait();
}

TEST(MpiCollectives, LargeCounts) {
  const auto group = world_mpi();
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

TEST(MpiCollectives, CollectivesSplitIntoPiecesGiveTheSameResults) {
  const auto group = MpiProcessGroup::world();
  group->set_max_chunk(1000);
  check_collectives(*group, 2500);  // pieces of 1000, 1000 and 500
  // Gathering in place from this rank's block of the output, in pieces.
  const Tensor output = zeros({group->size() * 2500}, DType::f64);
  Tensor block = output.slice(0, group->rank() * 2500, (group->rank() + 1) * 2500);
  block.copy_(ranked(group->rank(), 2500, DType::f64));
  group->all_gather(block, output)->wait();
  expect_values(
      output, [&](std::int64_t i) { return element(static_cast<int>(i / 2500), i % 2500); },
      "all_gather in place, in pieces");
}

TEST(MpiCollectives, AllGatherInPlace) {
  const auto group = world_mpi();
  const Tensor output = zeros({group->size() * 4});
  Tensor block = output.slice(0, group->rank() * 4, (group->rank() + 1) * 4);
  block.fill_(group->rank() + 0.5);
  group->all_gather(block, output)->wait();
  expect_values(
      output, [&](std::int64_t i) { return static_cast<double>(i / 4) + 0.5; }, "all_gather in place");
}

TEST(MpiCollectives, ManyAsyncCollectivesCompleteInCallOrder) {
  const auto group = MpiProcessGroup::world();
  const int world = group->size();
  std::vector<std::uint64_t> started;
  std::vector<std::uint64_t> finished;
  group->set_observer([&](const CollectiveCall& call, CollectiveEvent event) {
    (event == CollectiveEvent::kStart ? started : finished).push_back(call.sequence);
  });
  std::vector<Tensor> tensors;
  std::vector<WorkPtr> works;
  constexpr int kWorks = 30;
  for (int k = 0; k < kWorks; ++k) {
    tensors.push_back(full({5000}, (k + 1.0) * (group->rank() + 1)));
    works.push_back(group->all_reduce(tensors.back(), k % 2 == 0 ? ReduceOp::kSum : ReduceOp::kMax));
  }
  for (int k = kWorks - 1; k >= 0; --k) works[static_cast<std::size_t>(k)]->wait();
  std::vector<std::uint64_t> expected;
  for (int k = 1; k <= kWorks; ++k) expected.push_back(static_cast<std::uint64_t>(k));
  EXPECT_EQ(started, expected);
  EXPECT_EQ(finished, expected);
  for (int k = 0; k < kWorks; ++k) {
    const double value = k % 2 == 0 ? (k + 1.0) * world * (world + 1) / 2 : (k + 1.0) * world;
    expect_values(
        tensors[static_cast<std::size_t>(k)], [&](std::int64_t) { return value; }, str_cat("work ", k));
  }
}

TEST(MpiCollectives, DesyncFailsOnEveryRankNamingEachCall) {
  // On a group of its own, so that the world group's sequence stays in step whatever happens here.
  const auto group = MpiProcessGroup::world();
  const Tensor t = zeros({10});
  const std::string others = group->size() > 2 ? str_cat("ranks 1-", group->size() - 1) : "rank 1";
  test::expect_error<DistributedError>(
      [&] { (group->rank() == 0 ? group->all_reduce(t) : group->broadcast(t, 0))->wait(); },
      {str_cat("[rank ", group->rank(), "/", group->size(), "] "), "collective #1",
       "rank 0 called all_reduce (sum, f32 x 10)", others + " called broadcast (root 0, f32 x 10)"});
  // The check ran before any data moved: the group goes on working.
  const Tensor ones_t = ones({3});
  group->all_reduce(ones_t)->wait();
  expect_values(
      ones_t, [&](std::int64_t) { return group->size(); }, "all_reduce after a desync");
}

}  // namespace
}  // namespace lockstep::distributed
