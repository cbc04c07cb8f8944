// CUDA random fills against the CPU from the same generator state: uniform values and the dropout mask are
// the same bits on both devices, normal values agree to rounding (CUDA's log, sin and cos are within 1-2 ulp
// of the host's), and both streams advance alike.
#include <gtest/gtest.h>

#include "src/autograd/grad_mode.h"
#include "src/ops/dropout.h"
#include "src/tensor/factories.h"
#include "tests/cuda/cuda_test_util.h"

namespace lockstep::test {
namespace {

TEST(CudaRandom, UniformAndDropoutMaskAreTheCpuBitsAndNormalMatches) {
  LOCKSTEP_REQUIRE_CUDA();
  NoGradGuard no_grad;
  for (DType dtype : {DType::f32, DType::f64}) {
    const std::string what = dtype_name(dtype);
    Generator cpu_gen(99), gpu_gen(99);
    (void)cpu_gen.take(13);  // an offset that is not a multiple of 4
    (void)gpu_gen.take(13);
    // Odd sizes: the last Philox block is partly used.
    expect_identical(rand({1001, 3}, -2.0, 5.0, dtype, kGpu, &gpu_gen),
                     rand({1001, 3}, -2.0, 5.0, dtype, kCPU, &cpu_gen), "rand " + what);
    expect_close(randn({4097}, 1.5, 3.0, dtype, kGpu, &gpu_gen),
                 randn({4097}, 1.5, 3.0, dtype, kCPU, &cpu_gen), dtype == DType::f32 ? 1e-6 : 1e-13,
                 "randn " + what);
    const Tensor ones_cpu = ones({37, 11}, dtype);
    expect_identical(dropout(ones_cpu.to(kGpu), 0.3, DropoutMode::kTrain, &gpu_gen),
                     dropout(ones_cpu, 0.3, DropoutMode::kTrain, &cpu_gen), "dropout mask " + what);
    EXPECT_EQ(gpu_gen.offset(), cpu_gen.offset()) << what;
  }
}

}  // namespace
}  // namespace lockstep::test
