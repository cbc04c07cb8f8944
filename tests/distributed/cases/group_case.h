// The distributed case tables: per-rank test bodies that one list holds and both process-group backends run,
// the threaded world in one process (tests/distributed, world sizes 1-4) and the MPI world under mpirun
// (tests/mpi, -np 2-4). A body runs on every rank of the group it is given and issues the same collectives on
// every rank whatever its checks find (EXPECT, not ASSERT, before the last collective), so that a failure
// cannot leave the other ranks waiting.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "distributed/process_group.h"

namespace lockstep::distributed::test {

struct GroupCase {
  std::string name;  // letters, digits and '_'
  std::function<void(const std::shared_ptr<ProcessGroup>&)> run;
  int min_world = 1;  // the smallest world size the case makes sense at
};

// Every collective, op and dtype against closed forms; counts 0, 1, 13 and 3M; views; in-place gathers;
// asynchronous order; desync detection.
const std::vector<GroupCase>& collective_cases();
// SyncBatchNorm against plain BatchNorm on the union batch (outputs, gradients, running statistics) for
// even, uneven and empty per-rank batches; eval mode; too few values; no second derivatives.
const std::vector<GroupCase>& sync_batch_norm_cases();

// Every collective with every op and dtype at `n` elements per rank (0 included), broadcast from every root.
void check_collectives(ProcessGroup& group, std::int64_t n);

// |got - want| <= tol * (1 + |want|) element-wise, with the shapes equal (a gtest failure otherwise).
void expect_close(const Tensor& got, const Tensor& want, double tol, const std::string& what);

// For INSTANTIATE_TEST_SUITE_P.
std::vector<const GroupCase*> case_pointers(const std::vector<GroupCase>& cases);
std::string case_name(const ::testing::TestParamInfo<const GroupCase*>& info);

}  // namespace lockstep::distributed::test
