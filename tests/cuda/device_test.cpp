// CUDA backend without a device: queries, registration without driver calls, size classes, and the error
// raised when a CUDA tensor is created on a machine without a GPU.
#include <gtest/gtest.h>

#include "src/backend/cuda/allocator.h"
#include "src/core/cuda_available.h"
#include "tests/cuda/cuda_test_util.h"

namespace lockstep::test {
namespace {

TEST(CudaDevice, QueriesAgree) {
  EXPECT_EQ(cuda_available(), cuda::cuda_is_available());
  EXPECT_EQ(cuda::cuda_is_available(), cuda::cuda_device_count() > 0);
  EXPECT_EQ(cuda::cuda_is_available(), cuda::cuda_unavailable_reason().empty()) << cuda::cuda_unavailable_reason();
}

TEST(CudaDevice, RegistrationFillsSlotsAndAllocator) {
  ensure_backends_registered();
  EXPECT_NO_THROW(kernels::copy.get(kGpu));
  EXPECT_NO_THROW(kernels::transfer.get(kGpu));
  EXPECT_NO_THROW(kernels::fill.get(kGpu));
  EXPECT_NO_THROW(kernels::binary.get(kGpu));
  EXPECT_NO_THROW(kernels::gemm.get(kGpu));
  EXPECT_EQ(&allocator_for(DeviceType::CUDA), &cuda::cuda_allocator());
}

TEST(CudaDevice, CreatingTensorWithoutGpuRaisesDeviceError) {
  ensure_backends_registered();
  if (cuda::cuda_is_available()) GTEST_SKIP() << "a CUDA device is present; this test covers machines without one";
  try {
    (void)zeros({2, 3}, DType::f32, kGpu);
    FAIL() << "expected DeviceError";
  } catch (const DeviceError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("no CUDA device"), std::string::npos) << what;
    EXPECT_NE(what.find("cuda:0"), std::string::npos) << what;
  }
  const Tensor host = ones({4}, DType::f64);
  EXPECT_THROW((void)host.to(kGpu), DeviceError);
}

TEST(CudaAllocator, SizeClasses) {
  EXPECT_EQ(cuda::cuda_size_class(0), 512u);
  EXPECT_EQ(cuda::cuda_size_class(1), 512u);
  EXPECT_EQ(cuda::cuda_size_class(512), 512u);
  EXPECT_EQ(cuda::cuda_size_class(513), 1024u);
  EXPECT_EQ(cuda::cuda_size_class(2048), 2048u);
  EXPECT_EQ(cuda::cuda_size_class(2049), 2560u);
  EXPECT_EQ(cuda::cuda_size_class(std::size_t{1} << 20), std::size_t{1} << 20);
  EXPECT_EQ(cuda::cuda_size_class((std::size_t{1} << 20) + 1), (std::size_t{1} << 20) + (std::size_t{1} << 18));
  std::size_t previous = 0;
  for (std::size_t bytes = 1; bytes < (std::size_t{1} << 22); bytes = bytes * 5 / 4 + 7) {
    const std::size_t c = cuda::cuda_size_class(bytes);
    EXPECT_GE(c, bytes);
    EXPECT_EQ(c % 512, 0u) << bytes;
    EXPECT_LE(c, bytes + bytes / 4 + 512) << bytes;
    EXPECT_GE(c, previous) << bytes;
    previous = c;
  }
}

}  // namespace
}  // namespace lockstep::test
