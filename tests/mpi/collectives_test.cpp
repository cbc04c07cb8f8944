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
#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "distributed/mpi.h"
#include "src/ops/elementwise.h"
#include "src/tensor/factories.h"
#include "tests/distributed/cases/group_case.h"
#include "tests/mpi/mpi_env.h"

namespace lockstep::distributed {
namespace {

ProcessGroupOptions options() {
  ProcessGroupOptions o;
  o.timeout = std::chrono::minutes(2);
  return o;
}

// The collective case table (tests/distributed/cases, also run on threaded worlds by tests/distributed), each
// case on a fresh world group.
class CollectivesMpi : public ::testing::TestWithParam<const test::GroupCase*> {};

TEST_P(CollectivesMpi, OnTheWorld) {
  const test::GroupCase& c = *GetParam();
  const std::shared_ptr<ProcessGroup> world = MpiProcessGroup::world(options());
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
