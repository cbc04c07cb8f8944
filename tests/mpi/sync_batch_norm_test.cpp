// SyncBatchNorm across the real MPI world (mpirun -np 2, 3, 4): the shared case table of
// tests/distributed/cases, which tests/distributed runs on threaded worlds, each case on a fresh world group.
#include <gtest/gtest.h>

#include <chrono>
#include <memory>

#include "distributed/mpi.h"
#include "tests/distributed/cases/group_case.h"

namespace lockstep::distributed {
namespace {

class SyncBatchNormMpi : public ::testing::TestWithParam<const test::GroupCase*> {};

TEST_P(SyncBatchNormMpi, OnTheWorld) {
  const test::GroupCase& c = *GetParam();
  ProcessGroupOptions options;
  options.timeout = std::chrono::minutes(2);
  const std::shared_ptr<ProcessGroup> world = MpiProcessGroup::world(options);
  if (world->size() < c.min_world) GTEST_SKIP() << c.name << " needs at least " << c.min_world << " ranks";
  c.run(world);
}

INSTANTIATE_TEST_SUITE_P(Table, SyncBatchNormMpi,
                         ::testing::ValuesIn(test::case_pointers(test::sync_batch_norm_cases())),
                         test::case_name);

}  // namespace
}  // namespace lockstep::distributed
