// SyncBatchNorm on threaded worlds: the shared case table (tests/distributed/cases, also run under mpirun by
// tests/mpi) at every world size from 1 to 4, and, in one process only, convert_sync_batchnorm on a ResNet
// against the union batch and what it converts.
#include "distributed/sync_batch_norm.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "distributed/threaded.h"
#include "src/core/rng.h"
#include "src/models/resnet.h"
#include "src/nn/linear.h"
#include "src/nn/norm.h"
#include "src/ops/elementwise.h"
#include "src/ops/reduce.h"
#include "src/tensor/factories.h"
#include "tests/distributed/cases/group_case.h"
#include "tests/support/expect_error.h"

namespace lockstep::distributed {
namespace {

using GroupPtr = std::shared_ptr<ProcessGroup>;

using test::expect_close;

class SyncBatchNormCase : public ::testing::TestWithParam<const test::GroupCase*> {};

TEST_P(SyncBatchNormCase, OnThreadedWorldsOfOneToFourRanks) {
  const test::GroupCase& c = *GetParam();
  for (int world = std::max(1, c.min_world); world <= 4; ++world) run_threaded(world, c.run);
}

INSTANTIATE_TEST_SUITE_P(Table, SyncBatchNormCase,
                         ::testing::ValuesIn(test::case_pointers(test::sync_batch_norm_cases())),
                         test::case_name);

TEST(SyncBatchNorm, ConvertsEveryBatchNormOfACifarResNetAndMatchesTheUnionBatch) {
  // ResNet-8: bn1 and two batch norms in each of three basic blocks (identity-padding shortcuts have none).
  constexpr int kWorld = 2;
  constexpr int kBatchNorms = 7;
  manual_seed(5);
  std::vector<std::shared_ptr<models::CifarResNet>> models;
  for (int r = 0; r <= kWorld; ++r) {
    models.push_back(std::make_shared<models::CifarResNet>(8, 3, 4));
    models.back()->to(DType::f64);
    if (r > 0) models.back()->load_state_dict(models[0]->state_dict());
  }
  const auto& reference = models[kWorld];
  int counted = 0;
  for (const auto& [name, m] : reference->named_modules())
    counted += dynamic_cast<nn::BatchNorm*>(m.get()) ? 1 : 0;
  ASSERT_EQ(counted, kBatchNorms);

  Generator gen(9);
  const std::vector<std::int64_t> batches{1, 2};
  const Tensor x_union = randn({3, 3, 8, 8}, 0.0, 1.0, DType::f64, kCPU, &gen);
  const Tensor g_union = randn({3, 4}, 0.0, 1.0, DType::f64, kCPU, &gen);
  const Tensor y_union = reference->forward(x_union);
  sum(y_union * g_union).backward();

  std::vector<int> converted(kWorld);
  std::vector<Tensor> outputs(kWorld);
  std::vector<std::string> summaries(kWorld);
  run_threaded(kWorld, [&](const GroupPtr& group) {
    const int r = group->rank();
    const std::int64_t begin = r == 0 ? 0 : batches[0];
    converted[r] = convert_sync_batchnorm(*models[r], group);
    EXPECT_EQ(convert_sync_batchnorm(*models[r], group), converted[r]);  // idempotent
    summaries[r] = models[r]->summary();
    const Tensor y = models[r]->forward(x_union.slice(0, begin, begin + batches[r]));
    sum(y * g_union.slice(0, begin, begin + batches[r])).backward();
    outputs[r] = y.detach();
  });

  for (int r = 0; r < kWorld; ++r) {
    EXPECT_EQ(converted[r], kBatchNorms);
    std::size_t shown = 0;
    for (std::size_t at = summaries[r].find(", sync"); at != std::string::npos;
         at = summaries[r].find(", sync", at + 1)) {
      ++shown;
    }
    EXPECT_EQ(shown, static_cast<std::size_t>(kBatchNorms)) << summaries[r];
    const std::int64_t begin = r == 0 ? 0 : batches[0];
    expect_close(outputs[r], y_union.detach().slice(0, begin, begin + batches[r]), 1e-10, "logits");
  }
  const auto reference_parameters = reference->named_parameters();
  for (std::size_t i = 0; i < reference_parameters.size(); ++i) {
    const auto& [name, want] = reference_parameters[i];
    Tensor got = zeros(want.shape(), DType::f64);
    for (int r = 0; r < kWorld; ++r) got.add_(models[r]->named_parameters()[i].second.grad());
    expect_close(got, want.grad(), 1e-9, "gradient of " + name);
  }
}

TEST(SyncBatchNorm, ConvertCountsTheModuleItselfAndNothingElse) {
  nn::BatchNorm1d bn(4);
  nn::Linear linear(3, 2);
  run_threaded(1, [&](const GroupPtr& group) {
    EXPECT_EQ(convert_sync_batchnorm(bn, group), 1);
    EXPECT_NE(bn.sync(), nullptr);
    EXPECT_STREQ(bn.sync()->name(), "sync");
    EXPECT_EQ(convert_sync_batchnorm(linear, group), 0);
    lockstep::test::expect_error<ValueError>([&] { convert_sync_batchnorm(bn, nullptr); },
                                             {"convert_sync_batchnorm", "process group"});
  });
}

}  // namespace
}  // namespace lockstep::distributed
