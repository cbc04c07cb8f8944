// StepSums on the CPU: figures of host numbers and of tensors are added at once, in f64, in order.
#include "launch/train/step_sums.h"

#include <gtest/gtest.h>

#include <vector>

#include "io/data/device_batches.h"
#include "src/core/error.h"
#include "src/tensor/factories.h"

namespace lockstep::launch {
namespace {

TEST(StepSums, AddsNumbersAndTensorsAtOnceAsTheHostWould) {
  StepSums sums(3);
  double loss = 0.0, steps = 0.0;
  for (int k = 1; k <= 50; ++k) {
    const float value = 1.0f / static_cast<float>(k);  // an f32 loss, as a step's mean loss is
    sums.add(0, scalar_tensor(value), 32.0);  // a power of two: exact products, so only the order counts
    loss += static_cast<double>(value) * 32.0;
    sums.add(1, 1);
    steps += 1;
    EXPECT_FALSE(sums.pending());
  }
  sums.add(2, from_vector(std::vector<std::int64_t>{7}, {1}));  // an integer tensor of one element
  const auto values = sums.values();
  EXPECT_EQ(values[0], loss);  // the same bits as adding on the host in turn
  EXPECT_EQ(values[1], steps);
  EXPECT_EQ(values[2], 7.0);
}

TEST(StepSums, AssignReplacesEverySumAndBadInputIsRefused) {
  StepSums sums(2);
  sums.add(0, 3.0);
  sums.assign(std::vector<double>{1.5, 2.5});
  EXPECT_EQ(sums.values()[0], 1.5);
  EXPECT_EQ(sums.values()[1], 2.5);
  EXPECT_THROW(sums.add(2, 1.0), ValueError);
  EXPECT_THROW(sums.add(0, zeros({2})), ValueError);
  EXPECT_THROW(sums.assign(std::vector<double>{1.0}), ValueError);
}

// On the CPU the loop's batches are the source's own (io/data/device_batches.h; the GPU's are tested in
// tests/cuda/device_batches_test.cpp).
TEST(DeviceBatches, CpuBatchesAreTheSourcesOwn) {
  class Empty final : public io::BatchSource {
   public:
    void start_epoch(std::int64_t, std::int64_t) override {}
    std::optional<io::Batch> next() override { return std::nullopt; }
    std::int64_t batches_per_epoch() const override { return 0; }
  };
  auto source = std::make_unique<Empty>();
  const io::BatchSource* raw = source.get();
  EXPECT_EQ(io::on_device(std::move(source), kCPU).get(), raw);
  EXPECT_THROW(io::on_device(nullptr, kCPU), ValueError);
}

}  // namespace
}  // namespace lockstep::launch
