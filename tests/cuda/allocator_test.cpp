// The caching CUDA allocator: freed blocks are reused without cudaMalloc, statistics add up, and
// cuda_empty_cache returns the cached blocks.
#include <gtest/gtest.h>

#include "src/backend/cuda/allocator.h"
#include "tests/cuda/cuda_test_util.h"

namespace lockstep::test {
namespace {

TEST(CudaAllocator, ReusesFreedBlocks) {
  LOCKSTEP_REQUIRE_CUDA();
  cuda::cuda_empty_cache();
  const AllocatorStats before = cuda::cuda_allocator_stats(0);
  void* first = nullptr;
  {
    const Tensor t = empty({1000}, DType::f32, kGpu);
    first = t.data();
    const AllocatorStats live = cuda::cuda_allocator_stats(0);
    EXPECT_EQ(live.system_allocations, before.system_allocations + 1);
    EXPECT_EQ(live.allocated_bytes, before.allocated_bytes + cuda::cuda_size_class(4000));
  }
  const AllocatorStats freed = cuda::cuda_allocator_stats(0);
  EXPECT_EQ(freed.allocated_bytes, before.allocated_bytes);
  EXPECT_EQ(freed.cached_bytes, before.cached_bytes + cuda::cuda_size_class(4000));
  {
    // 3990 bytes fall in the same size class as 4000: the cached block comes back.
    const Tensor t = empty({3990}, DType::u8, kGpu);
    EXPECT_EQ(t.data(), first);
    EXPECT_EQ(cuda::cuda_allocator_stats(0).system_allocations, freed.system_allocations);
  }
  cuda::cuda_empty_cache();
  EXPECT_EQ(cuda::cuda_allocator_stats(0).cached_bytes, 0u);
  const Tensor again = ones({1000}, DType::f32, kGpu);
  EXPECT_EQ(cuda::cuda_allocator_stats(0).system_allocations, freed.system_allocations + 1);
  EXPECT_EQ(again.to(kCPU).to_vector<float>(), std::vector<float>(1000, 1.0f));
}

TEST(CudaAllocator, PeakTracksLiveBytes) {
  LOCKSTEP_REQUIRE_CUDA();
  cuda::cuda_allocator_reset_peak(0);
  const std::size_t base = cuda::cuda_allocator_stats(0).allocated_bytes;
  {
    const Tensor a = empty({1 << 20}, DType::f32, kGpu);
    const Tensor b = empty({1 << 20}, DType::f32, kGpu);
  }
  EXPECT_EQ(cuda::cuda_allocator_stats(0).peak_allocated_bytes, base + 2 * cuda::cuda_size_class(4u << 20));
  EXPECT_EQ(cuda::cuda_allocator_stats(0).allocated_bytes, base);
}

}  // namespace
}  // namespace lockstep::test
