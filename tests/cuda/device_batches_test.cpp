// The training loop's batches on a GPU (io/data/device_batches.h): copied one batch ahead through pinned
// memory on a copy stream; every batch arrives whole and in order, also across epochs begun mid-way.
#include "io/data/device_batches.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "src/ops/elementwise.h"
#include "src/ops/linalg.h"
#include "tests/cuda/cuda_test_util.h"

namespace lockstep::test {
namespace {

// Batch b of an epoch e: images filled with e * 100 + b, labels e, b, b + 1.
class CountingSource final : public io::BatchSource {
 public:
  void start_epoch(std::int64_t epoch, std::int64_t first_batch) override {
    epoch_ = epoch;
    next_ = first_batch;
  }
  std::optional<io::Batch> next() override {
    if (next_ == kBatches) return std::nullopt;
    io::Batch batch;
    batch.images = full({4, 3, 8, 8}, static_cast<double>(epoch_ * 100 + next_));
    batch.labels = from_vector(std::vector<std::int64_t>{epoch_, next_, next_ + 1}, {3});
    batch.indices = {next_};
    ++next_;
    return batch;
  }
  std::int64_t batches_per_epoch() const override { return kBatches; }
  static constexpr std::int64_t kBatches = 5;

 private:
  std::int64_t epoch_ = 0, next_ = 0;
};

TEST(CudaDeviceBatches, EveryBatchArrivesOnTheGpuWholeAndInOrder) {
  LOCKSTEP_REQUIRE_CUDA();
  auto batches = io::on_device(std::make_unique<CountingSource>(), kGpu);
  for (const auto& [epoch, first] : {std::pair<std::int64_t, std::int64_t>{0, 0}, {1, 3}, {2, 0}}) {
    batches->start_epoch(epoch, first);
    std::int64_t b = first;
    while (std::optional<io::Batch> batch = batches->next()) {
      ASSERT_EQ(batch->images.device(), kGpu);
      ASSERT_EQ(batch->labels.device(), kGpu);
      EXPECT_FALSE(batch->tokens.defined());
      EXPECT_EQ(batch->indices, std::vector<std::int64_t>{b});
      // A little compute on the default stream between batches, as a step would queue.
      const std::vector<float> images = (batch->images * 2.0).to_vector<float>();
      for (const float v : images) ASSERT_EQ(v, 2.0f * static_cast<float>(epoch * 100 + b));
      EXPECT_EQ(batch->labels.to_vector<std::int64_t>(), (std::vector<std::int64_t>{epoch, b, b + 1}));
      if (epoch == 2 && b == 2) break;  // an epoch left mid-way
      ++b;
    }
    if (epoch != 2) {
      EXPECT_EQ(b, CountingSource::kBatches);
    }
  }
  batches->start_epoch(3, 4);  // a batch in flight is dropped, and the next epoch's arrives right
  const std::optional<io::Batch> last = batches->next();
  ASSERT_TRUE(last.has_value());
  EXPECT_EQ(last->images.to_vector<float>()[0], 304.0f);
  EXPECT_FALSE(batches->next().has_value());
}

// Batches of 16 MiB of images while the default stream computes results of that size and drops them before
// their kernels have run: the caching allocator hands their blocks to the next batch, whose copy must wait
// for those kernels, or they would overwrite it.
TEST(CudaDeviceBatches, LargeBatchesSurviveTheComputeTheyFollow) {
  LOCKSTEP_REQUIRE_CUDA();
  class Large final : public io::BatchSource {
   public:
    void start_epoch(std::int64_t, std::int64_t first) override { next_ = first; }
    std::optional<io::Batch> next() override {
      if (next_ == 6) return std::nullopt;
      io::Batch batch;
      batch.images = full({1024, 4096}, static_cast<double>(next_++));
      batch.labels = zeros({1024}, DType::i64);
      return batch;
    }
    std::int64_t batches_per_epoch() const override { return 6; }

   private:
    std::int64_t next_ = 0;
  };
  auto batches = io::on_device(std::make_unique<Large>(), kGpu);
  const Tensor weights = cpu_rand({4096, 4096}, DType::f32, 5).to(kGpu);
  const Tensor rows = cpu_rand({1024, 4096}, DType::f32, 6).to(kGpu);
  batches->start_epoch(0, 0);
  for (std::int64_t b = 0;; ++b) {
    for (int k = 0; k < 4; ++k) (void)matmul(rows, weights);  // 16 MiB results, dropped while queued
    const std::optional<io::Batch> batch = batches->next();
    if (!batch) break;
    const std::vector<float> images = batch->images.to_vector<float>();
    const auto wrong =
        std::count_if(images.begin(), images.end(), [&](float v) { return v != static_cast<float>(b); });
    EXPECT_EQ(wrong, 0) << "batch " << b;
  }
}

}  // namespace
}  // namespace lockstep::test
