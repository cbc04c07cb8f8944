// StepSums on a GPU: a step's figures are summed on the device, nothing is read back until values(), and the
// sums then hold the bits of adding each figure on the host in turn.
#include "launch/train/step_sums.h"

#include <gtest/gtest.h>

#include "tests/cuda/cuda_test_util.h"

namespace lockstep::test {
namespace {

TEST(CudaStepSums, FiguresWaitOnTheDeviceAndEndWithTheHostsBits) {
  LOCKSTEP_REQUIRE_CUDA();
  launch::StepSums sums(2);
  sums.add(0, 0.25);  // a host figure before the first device figure starts the device sum
  double want = 0.25;
  for (int k = 1; k <= 40; ++k) {
    const float value = 1.0f / static_cast<float>(3 * k);
    sums.add(0, scalar_tensor(value, DType::f32, kGpu), 64.0);  // a power of two: only the order counts
    want += static_cast<double>(value) * 64.0;
    sums.add(0, 1.0);  // a host number added to a sum that waits on the device stays in order
    want += 1.0;
    EXPECT_TRUE(sums.pending());
  }
  sums.add(1, 2.0);
  const auto values = sums.values();
  EXPECT_FALSE(sums.pending());
  EXPECT_EQ(values[0], want);
  EXPECT_EQ(values[1], 2.0);
}

}  // namespace
}  // namespace lockstep::test
