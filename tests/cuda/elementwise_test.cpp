// CUDA element-wise kernels against the CPU: add/sub/mul/div with broadcasting and strides, fill, copies
// and transfers (round trips must be bit-identical), and the errors of mixed devices and missing ops.
#include "src/ops/elementwise.h"

#include <gtest/gtest.h>

#include "src/autograd/grad_mode.h"
#include "src/ops/unary.h"
#include "tests/cuda/cuda_test_util.h"

namespace lockstep::test {
namespace {

struct BroadcastCase {
  Shape a, b;
};

const std::vector<BroadcastCase> kBroadcastCases = {
    {{7}, {7}},                       // contiguous fast path
    {{2, 3, 4}, {3, 1}},              // b broadcast over the first and last dimensions
    {{4, 1, 5}, {1, 3, 5}},           // both broadcast
    {{1}, {2, 3}},                    // a broadcast
    {{}, {3, 2}},                     // 0-dim a
    {{1000, 33}, {33}},               // enough elements for many blocks
    {{2, 1, 3, 1, 2, 1, 2}, {2, 2}},  // more than 6 dimensions, merged before launch
};

TEST(CudaBinary, MatchesCpuWithBroadcasting) {
  LOCKSTEP_REQUIRE_CUDA();
  NoGradGuard no_grad;
  std::uint64_t seed = 1;
  for (DType dtype : {DType::f32, DType::f64}) {
    for (const auto& c : kBroadcastCases) {
      const Tensor a = cpu_rand(c.a, dtype, seed++);
      const Tensor b = cpu_rand(c.b, dtype, seed++, 0.5, 2.0);  // away from zero for div
      const Tensor ga = a.to(kGpu), gb = b.to(kGpu);
      const std::string what =
          std::string(dtype_name(dtype)) + " " + shape_str(c.a) + " op " + shape_str(c.b);
      expect_identical(add(ga, gb), add(a, b), "add " + what);
      expect_identical(sub(ga, gb), sub(a, b), "sub " + what);
      // a + alpha * b: identical unless the CPU build contracts it into an FMA; allow one rounding.
      const double ulp = dtype == DType::f32 ? 1e-6 : 1e-15;
      expect_close(add(ga, gb, 0.5), add(a, b, 0.5), ulp, "add alpha " + what);
      expect_close(sub(ga, gb, 3.0), sub(a, b, 3.0), ulp, "sub alpha " + what);
      expect_identical(mul(ga, gb), mul(a, b), "mul " + what);
      expect_identical(div(ga, gb), div(a, b), "div " + what);
      EXPECT_EQ(add(ga, gb).device(), kGpu);
    }
  }
}

TEST(CudaBinary, ScalarsStridedViewsAndInPlace) {
  LOCKSTEP_REQUIRE_CUDA();
  NoGradGuard no_grad;
  for (DType dtype : {DType::f32, DType::f64}) {
    const Tensor a = cpu_rand({5, 6}, dtype, 11, 0.5, 2.0);
    const Tensor ga = a.to(kGpu);
    expect_identical(ga * 2.5, a * 2.5, "tensor * scalar");
    expect_identical(1.0 / ga, 1.0 / a, "scalar / tensor");
    expect_identical(ga - 0.25, a - 0.25, "tensor - scalar");
    // Transposed and sliced operands (non-contiguous strides).
    const Tensor t = a.transpose(0, 1), s = a.slice(1, 0, 6, 2);
    const Tensor tg = ga.transpose(0, 1), gs = ga.slice(1, 0, 6, 2);
    expect_identical(tg * tg, t * t, "transposed");
    expect_identical(gs / (gs + 1.0), s / (s + 1.0), "sliced");
    // In place, with a broadcast operand, into a strided view.
    Tensor h = a.clone(), g = ga.clone();
    const Tensor row = cpu_rand({6}, dtype, 12);
    h.add_(row, 0.75);
    g.add_(row.to(kGpu), 0.75);
    expect_close(g, h, dtype == DType::f32 ? 1e-6 : 1e-15, "add_ broadcast");
    h.transpose(0, 1).mul_(row.slice(0, 0, 5).to(kCPU).unsqueeze(0));
    g.transpose(0, 1).mul_(row.slice(0, 0, 5).to(kGpu).unsqueeze(0));
    expect_close(g, h, dtype == DType::f32 ? 1e-6 : 1e-15, "mul_ on a transposed view");
    h.div_(wrapped_scalar(3.0));
    g.div_(wrapped_scalar(3.0));
    expect_close(g, h, dtype == DType::f32 ? 1e-6 : 1e-15, "div_ scalar");
  }
}

TEST(CudaBinary, TooManyStridedDimensionsRaiseNotImplemented) {
  LOCKSTEP_REQUIRE_CUDA();
  NoGradGuard no_grad;
  const Tensor x = zeros({2, 2, 2, 2, 2, 2, 2}, DType::f32, kGpu).permute({6, 5, 4, 3, 2, 1, 0});
  EXPECT_THROW((void)(x + x), NotImplementedError);
}

// A kernel slot without a CUDA function raises NotImplementedError naming the kernel and the device (a slot
// made here, with only a CPU function: no GPU needed).
void cpu_only_kernel(const Tensor&) {}

TEST(CudaKernels, KernelWithoutCudaVersionRaisesNotImplementedNamingIt) {
  KernelSlot<void(const Tensor&)> slot("test_cpu_only");
  slot.set(DeviceType::CPU, cpu_only_kernel);
  EXPECT_EQ(slot.get(kCPU), &cpu_only_kernel);
  try {
    (void)slot.get(Device{DeviceType::CUDA, 0});
    FAIL() << "expected NotImplementedError";
  } catch (const NotImplementedError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("kernel test_cpu_only"), std::string::npos) << what;
    EXPECT_NE(what.find("CUDA"), std::string::npos) << what;
  }
}

// Comparisons give u8 on the GPU as on the CPU, and where selects with them.
TEST(CudaBinary, ComparisonsAndWhereMatchCpu) {
  LOCKSTEP_REQUIRE_CUDA();
  NoGradGuard no_grad;
  const Tensor a = cpu_rand({4, 5}, DType::f32, 21), b = cpu_rand({5}, DType::f32, 22);
  const Tensor ga = a.to(kGpu), gb = b.to(kGpu);
  const Tensor gt_cpu = gt(a, b), gt_gpu = gt(ga, gb);
  EXPECT_EQ(gt_gpu.dtype(), DType::u8);
  EXPECT_EQ(gt_gpu.to_vector<double>(), gt_cpu.to_vector<double>());
  expect_identical(where(gt_gpu, ga, gb.unsqueeze(0).expand({4, 5})),
                   where(gt_cpu, a, b.unsqueeze(0).expand({4, 5})), "where");
  expect_close(pow(abs(ga) + 0.5, gb), pow(abs(a) + 0.5, b), 1e-6, "pow");
}

TEST(CudaBinary, MixedDevicesRaiseDeviceErrorNamingBoth) {
  LOCKSTEP_REQUIRE_CUDA();
  const Tensor cpu = ones({2, 3});
  const Tensor gpu = ones({2, 3}, DType::f32, kGpu);
  for (int order = 0; order < 2; ++order) {
    try {
      (void)(order == 0 ? add(cpu, gpu) : mul(gpu, cpu));
      FAIL() << "expected DeviceError";
    } catch (const DeviceError& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find("cpu"), std::string::npos) << what;
      EXPECT_NE(what.find("cuda:0"), std::string::npos) << what;
    }
  }
}

TEST(CudaFill, ContiguousAndStrided) {
  LOCKSTEP_REQUIRE_CUDA();
  NoGradGuard no_grad;
  for (DType dtype : {DType::f32, DType::f64, DType::i64, DType::u8}) {
    const std::string what = dtype_name(dtype);
    expect_identical(full({3, 5}, 7.0, dtype, kGpu), full({3, 5}, 7.0, dtype), "full " + what);
    Tensor h = zeros({4, 6}, dtype), g = zeros({4, 6}, dtype, kGpu);
    h.slice(1, 1, 6, 2).fill_(3.0);
    g.slice(1, 1, 6, 2).fill_(3.0);
    expect_identical(g, h, "strided fill " + what);
    h.transpose(0, 1).select(0, 2).fill_(9.0);
    g.transpose(0, 1).select(0, 2).fill_(9.0);
    expect_identical(g, h, "column fill " + what);
  }
  expect_identical(zeros({0, 3}, DType::f32, kGpu), zeros({0, 3}), "empty");
  expect_identical(full({}, 2.0, DType::f32, kGpu), full({}, 2.0), "0-dim");
}

TEST(CudaCopy, RoundTripsAreIdentical) {
  LOCKSTEP_REQUIRE_CUDA();
  NoGradGuard no_grad;
  for (DType dtype : {DType::f32, DType::f64, DType::i64, DType::u8}) {
    const Tensor x = cpu_rand({37, 129}, DType::f64, 21, 0.0, 250.0).to(dtype);
    const Tensor g = x.to(kGpu);
    EXPECT_EQ(g.device(), kGpu);
    EXPECT_EQ(g.dtype(), dtype);
    expect_identical(g.to(kCPU), x, std::string("round trip ") + dtype_name(dtype));
    expect_identical(x.transpose(0, 1).to(kGpu).to(kCPU), x.transpose(0, 1).contiguous(), "strided source");
  }
  expect_identical(zeros({0}, DType::f32).to(kGpu).to(kCPU), zeros({0}, DType::f32), "empty");
}

TEST(CudaCopy, StridedAndConvertingCopiesOnDevice) {
  LOCKSTEP_REQUIRE_CUDA();
  NoGradGuard no_grad;
  const Tensor x = cpu_rand({6, 4, 5}, DType::f32, 31, -50.0, 50.0);
  const Tensor g = x.to(kGpu);
  expect_identical(g.clone(), x.clone(), "contiguous clone");
  expect_identical(g.permute({2, 0, 1}).contiguous(), x.permute({2, 0, 1}).contiguous(), "permuted");
  expect_identical(g.slice(0, 1, 6, 2).select(2, 3).contiguous(),
                   x.slice(0, 1, 6, 2).select(2, 3).contiguous(), "sliced");
  for (DType to : {DType::f64, DType::i64, DType::u8}) {
    // Negative values have no u8 conversion (undefined behaviour in C++): shift them first.
    const Tensor hs = to == DType::u8 ? x + 60.0 : x;
    const Tensor gs = hs.to(kGpu);
    expect_identical(gs.to(to), hs.to(to), std::string("f32 -> ") + dtype_name(to));
    expect_identical(gs.to(to).to(DType::f32), hs.to(to).to(DType::f32),
                     std::string(dtype_name(to)) + " -> f32");
  }
  expect_identical(g.transpose(0, 2).to(DType::f64), x.transpose(0, 2).to(DType::f64), "strided converting");
  // copy_ with a broadcast source into a strided destination.
  Tensor h = zeros({4, 6}, DType::f64), d = zeros({4, 6}, DType::f64, kGpu);
  const Tensor row = cpu_rand({3}, DType::f64, 32);
  h.slice(1, 0, 6, 2).copy_(row);
  d.slice(1, 0, 6, 2).copy_(row.to(kGpu));
  expect_identical(d, h, "broadcast copy_");
}

TEST(CudaCopy, BetweenDevices) {
  LOCKSTEP_REQUIRE_CUDA();
  if (cuda::cuda_device_count() < 2) GTEST_SKIP() << "needs two CUDA devices";
  NoGradGuard no_grad;
  const Tensor x = cpu_rand({300, 7}, DType::f32, 41);
  const Tensor on1 = x.to(kGpu).to(cuda_device(1));
  EXPECT_EQ(on1.device(), cuda_device(1));
  expect_identical((on1 * 2.0).to(kCPU), x * 2.0, "cuda:0 -> cuda:1");
  expect_identical(on1.to(kGpu).to(kCPU), x, "cuda:1 -> cuda:0");
}

}  // namespace
}  // namespace lockstep::test
