// The MPI process group at the real world size (mpirun -np 2, 3, 4): the shared collective case table of
// tests/distributed/cases (every collective, op and dtype, tiny and large counts, async order, desync), and
// what only MPI has: the launcher's world, node-local ranks, collectives split into pieces.
#include <gtest/gtest.h>

// The C API only (Open MPI's header would otherwise pull in its deprecated C++ bindings).
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "distributed/mpi.h"
#include "src/core/strings.h"
#include "src/ops/elementwise.h"
#include "src/tensor/factories.h"
#include "tests/distributed/cases/group_case.h"
#include "tests/mpi/mpi_env.h"
#include "tests/support/expect_error.h"

namespace lockstep::distributed {
namespace {

// The collective case table (tests/distributed/cases, also run on threaded worlds by tests/distributed), each
// case on a fresh world group.
class CollectivesMpi : public ::testing::TestWithParam<const test::GroupCase*> {};

TEST_P(CollectivesMpi, OnTheWorld) {
  const test::GroupCase& c = *GetParam();
  const std::shared_ptr<ProcessGroup> world = MpiProcessGroup::world(lockstep::test::test_group_options());
  if (world->size() < c.min_world) GTEST_SKIP() << c.name << " needs at least " << c.min_world << " ranks";
  c.run(world);
}

INSTANTIATE_TEST_SUITE_P(Table, CollectivesMpi,
                         ::testing::ValuesIn(test::case_pointers(test::collective_cases())), test::case_name);

std::shared_ptr<MpiProcessGroup> world_mpi() {
  auto group = std::dynamic_pointer_cast<MpiProcessGroup>(lockstep::test::mpi_world());
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

// The ranks other than 0, as the desync message groups them: "rank 1", "ranks 1-2".
std::string others(int world) { return world > 2 ? lockstep::str_cat("ranks 1-", world - 1) : "rank 1"; }

// Rank 0 issues `mine`, every other rank `theirs`: each rank gets the desync error naming both calls at the
// same collective number (the header exchange caught it before any data call), and the group goes on
// working afterwards.
void expect_desync_everywhere(ProcessGroup& group, const std::function<WorkPtr()>& mine,
                              const std::function<WorkPtr()>& theirs, const std::string& rank0_called,
                              const std::string& others_called) {
  const int world = group.size();
  const std::string number =
      lockstep::str_cat("collectives out of step at collective #", group.sequence() + 1);
  const auto error = lockstep::test::expect_thrown<DistributedError>(
      [&] { (group.rank() == 0 ? mine() : theirs())->wait(); },
      {lockstep::str_cat("[rank ", group.rank(), "/", world, "] ", number, ": "),
       "rank 0 called " + rank0_called, others(world) + " called " + others_called,
       "Every rank must issue the same collectives in the same order"});
  if (error) {
    EXPECT_EQ(error->rank(), group.rank());
    EXPECT_EQ(error->world_size(), world);
  }
  const Tensor after = ones({1000});  // past the header: a data call of its own
  group.all_reduce(after)->wait();
  EXPECT_EQ(after.to_vector<float>(), std::vector<float>(1000, static_cast<float>(world)))
      << "all_reduce after a desync";
}

// A mismatch of each part of the call, on small collectives (carried by the header) and large ones (data
// after the header), and across the two: every rank reports it and no data call of mismatched shape is made
// (which MPI would truncate or hang on).
TEST(MpiCollectives, EveryKindOfMismatchIsReportedOnEveryRank) {
  const auto group = MpiProcessGroup::world(lockstep::test::test_group_options());
  const int world = group->size();
  for (const std::int64_t n : {std::int64_t{10}, std::int64_t{100000}}) {
    SCOPED_TRACE(lockstep::str_cat("count ", n));
    const std::string f32n = lockstep::str_cat("f32 x ", n);
    const Tensor t = ones({n});
    // Different op.
    expect_desync_everywhere(
        *group, [&] { return group->all_reduce(t, ReduceOp::kSum); },
        [&] { return group->all_reduce(t, ReduceOp::kMax); }, "all_reduce (sum, " + f32n + ")",
        "all_reduce (max, " + f32n + ")");
    // Different count: one element more on the other ranks, then small against large.
    const Tensor longer = ones({n + 1});
    expect_desync_everywhere(
        *group, [&] { return group->all_reduce(t); }, [&] { return group->all_reduce(longer); },
        "all_reduce (sum, " + f32n + ")", lockstep::str_cat("all_reduce (sum, f32 x ", n + 1, ")"));
    const Tensor other_size = ones({n == 10 ? 100000 : 10});
    expect_desync_everywhere(
        *group, [&] { return group->all_reduce(t); }, [&] { return group->all_reduce(other_size); },
        "all_reduce (sum, " + f32n + ")",
        lockstep::str_cat("all_reduce (sum, f32 x ", other_size.numel(), ")"));
    // Different dtype, same count.
    const Tensor doubles = ones({n}, DType::f64);
    expect_desync_everywhere(
        *group, [&] { return group->all_reduce(t); }, [&] { return group->all_reduce(doubles); },
        "all_reduce (sum, " + f32n + ")", lockstep::str_cat("all_reduce (sum, f64 x ", n, ")"));
    // Different kind: all_reduce against broadcast, all_gather against reduce_scatter, against a barrier.
    expect_desync_everywhere(
        *group, [&] { return group->all_reduce(t); }, [&] { return group->broadcast(t, 0); },
        "all_reduce (sum, " + f32n + ")", "broadcast (root 0, " + f32n + ")");
    const Tensor gathered = zeros({world * n});
    expect_desync_everywhere(
        *group, [&] { return group->all_gather(t, gathered); },
        [&] { return group->reduce_scatter(gathered, t); }, "all_gather (" + f32n + ")",
        "reduce_scatter (sum, " + f32n + ")");
    expect_desync_everywhere(
        *group, [&] { return group->barrier(); }, [&] { return group->all_reduce(t); }, "barrier",
        "all_reduce (sum, " + f32n + ")");
    // Different root.
    expect_desync_everywhere(
        *group, [&] { return group->broadcast(t, 0); }, [&] { return group->broadcast(t, 1); },
        "broadcast (root 0, " + f32n + ")", "broadcast (root 1, " + f32n + ")");
  }
}

// The same collectives on two groups, one checking and one not: the results are the same bits (the check
// changes no data path), for every collective, op and dtype, at counts carried by the header, at its edge
// and past it, on values whose sums depend on the order of addition.
TEST(MpiCollectives, CheckedAndUncheckedCollectivesGiveTheSameBits) {
  ProcessGroupOptions off = lockstep::test::test_group_options();
  off.check_desync = false;
  const auto checked = MpiProcessGroup::world(lockstep::test::test_group_options());
  const auto unchecked = MpiProcessGroup::world(off);
  const int world = checked->size();
  const int rank = checked->rank();
  // Per rank, per element: values of very different magnitudes and signs (their f32 sum depends on order).
  const auto values = [&](std::int64_t n, DType dtype, int salt) {
    std::vector<double> v(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) {
      const double k = static_cast<double>((i * 7919 + rank * 104729 + salt * 13) % 1000);
      v[static_cast<std::size_t>(i)] = (k - 500.0) * (i % 3 == 0 ? 1e6 : 1.0) / 7.0;
    }
    const Tensor t = from_vector(v, {n});
    return t.to(dtype);
  };
  const auto same_bits = [](const Tensor& a, const Tensor& b, const std::string& what) {
    ASSERT_EQ(a.numel(), b.numel()) << what;
    const auto bytes = static_cast<std::size_t>(a.numel()) * element_size(a.dtype());
    EXPECT_EQ(std::memcmp(a.data(), b.data(), bytes), 0) << what;
  };
  for (const std::int64_t n : {std::int64_t{1}, std::int64_t{13}, std::int64_t{56}, std::int64_t{57},
                               std::int64_t{4099}, std::int64_t{300007}}) {
    for (const DType dtype : {DType::f32, DType::f64, DType::i64}) {
      for (const ReduceOp op : {ReduceOp::kSum, ReduceOp::kAvg, ReduceOp::kMax, ReduceOp::kMin}) {
        const std::string what = lockstep::str_cat(dtype_name(dtype), " x ", n, " ", reduce_op_name(op));
        const Tensor a = values(n, dtype, 1);
        const Tensor b = a.clone();
        checked->all_reduce(a, op)->wait();
        unchecked->all_reduce(b, op)->wait();
        same_bits(a, b, "all_reduce " + what);
        const Tensor input = values(world * n, dtype, 2);
        const Tensor out_a = zeros({n}, dtype);
        const Tensor out_b = zeros({n}, dtype);
        checked->reduce_scatter(input, out_a, op)->wait();
        unchecked->reduce_scatter(input, out_b, op)->wait();
        same_bits(out_a, out_b, "reduce_scatter " + what);
      }
      const std::string what = lockstep::str_cat(dtype_name(dtype), " x ", n);
      const Tensor mine = values(n, dtype, 3);
      const Tensor all_a = zeros({world * n}, dtype);
      const Tensor all_b = zeros({world * n}, dtype);
      checked->all_gather(mine, all_a)->wait();
      unchecked->all_gather(mine, all_b)->wait();
      same_bits(all_a, all_b, "all_gather " + what);
      for (int root = 0; root < world; ++root) {
        const Tensor a = values(n, dtype, 4);
        const Tensor b = a.clone();
        checked->broadcast(a, root)->wait();
        unchecked->broadcast(b, root)->wait();
        same_bits(a, b, lockstep::str_cat("broadcast from ", root, " ", what));
      }
    }
  }
  checked->barrier()->wait();
  unchecked->barrier()->wait();
}

TEST(MpiCollectives, CollectivesSplitIntoPiecesGiveTheSameResults) {
  const auto group = MpiProcessGroup::world();
  group->set_max_chunk(1000);
  test::check_collectives(*group, 2500);  // pieces of 1000, 1000 and 500
  // Gathering in place from this rank's block of the output, in pieces: rank r's element i is r * 10^4 + i.
  const Tensor output = zeros({group->size() * 2500}, DType::f64);
  Tensor block = output.slice(0, group->rank() * 2500, (group->rank() + 1) * 2500);
  block.copy_(arange(2500, DType::f64) + group->rank() * 1e4);
  group->all_gather(block, output)->wait();
  const std::vector<double> got = output.to_vector<double>();
  for (std::int64_t i = 0; i < static_cast<std::int64_t>(got.size()); ++i) {
    ASSERT_EQ(got[static_cast<std::size_t>(i)],
              static_cast<double>(i / 2500) * 1e4 + static_cast<double>(i % 2500))
        << "all_gather in place, in pieces, element " << i;
  }
}

}  // namespace
}  // namespace lockstep::distributed
