// The op table's CUDA-versus-CPU tests: every case whose op has CUDA kernels (the families listed below) runs
// on the GPU from the same inputs and must match the CPU result, and where the backward has CUDA kernels too,
// so must the input gradients. Extending CUDA coverage = adding a prefix.
#include <gtest/gtest.h>

#include "src/autograd/grad_mode.h"
#include "src/core/precision.h"
#include "tests/cuda/cuda_test_util.h"
#include "tests/support/op_case.h"

namespace lockstep::test {
namespace {

// Ops with CUDA kernels for forward and backward (the unary ones from the formulas the CPU runs).
#define LOCKSTEP_CUDA_BACKWARD_FAMILIES                                                                  \
  "activation.", "binary.", "conv.", "index.", "linalg.", "loss.", "pad.", "recurrent.", "shape.",       \
      "softmax.", "pool.avg_pool2d", "pool.global_avg_pool2d", "pool.max_pool2d", "pool.max_unpool2d",   \
      "pool.upsample_nearest2d", "pool.upsample_bilinear2d", "reduce.sum", "reduce.mean", "reduce.var",  \
      "norm.batch_norm", "norm.layer_norm", "norm.instance_norm", "unary.neg", "unary.exp", "unary.log", \
      "unary.sqrt", "unary.abs", "unary.square", "unary.clamp", "unary.pow_scalar", "unary.reciprocal",  \
      "unary.sign"

// Ops with CUDA kernels for their forward pass (src/backend/cuda).
const char* const kCudaFamilies[] = {"reduce.", "unary.pow_tensor", LOCKSTEP_CUDA_BACKWARD_FAMILIES};
// Ops whose input gradients are compared too.
const char* const kCudaBackwardFamilies[] = {LOCKSTEP_CUDA_BACKWARD_FAMILIES};

// The case's result on the GPU against the CPU's, in `dtype`, within rtol.
void expect_forward_matches(const OpCase& c, DType dtype, double rtol, const std::string& what) {
  std::vector<Tensor> cpu_inputs;
  std::vector<RefArray> refs;
  make_inputs(c, dtype, cpu_inputs, refs);
  std::vector<Tensor> gpu_inputs;
  for (const auto& t : cpu_inputs) gpu_inputs.push_back(t.to(kGpu));
  NoGradGuard no_grad;
  const Tensor want = c.fn(cpu_inputs);
  const Tensor got = c.fn(gpu_inputs);
  EXPECT_EQ(got.device(), kGpu) << what;
  expect_close(got, want, rtol, what);
}

// The gradients of the case's differentiable inputs for one random upstream gradient, on the GPU against the
// CPU's, in `dtype`, within rtol.
void expect_gradients_match(const OpCase& c, DType dtype, double rtol, const std::string& what) {
  std::vector<Tensor> made;
  std::vector<RefArray> refs;
  make_inputs(c, dtype, made, refs);
  std::vector<Tensor> cpu_inputs, gpu_inputs;
  for (const auto& t : made) {
    const bool grad = t.requires_grad();
    cpu_inputs.push_back(t.detach());
    gpu_inputs.push_back(t.detach().to(kGpu));
    if (grad) {
      cpu_inputs.back().requires_grad_();
      gpu_inputs.back().requires_grad_();
    }
  }
  const Tensor want = c.fn(cpu_inputs);
  if (!want.requires_grad()) return;
  const Tensor upstream = cpu_rand(want.shape(), dtype, 7);
  want.backward(upstream);
  c.fn(gpu_inputs).backward(upstream.to(kGpu));
  for (std::size_t i = 0; i < made.size(); ++i) {
    if (!cpu_inputs[i].requires_grad()) continue;
    ASSERT_TRUE(gpu_inputs[i].grad().defined()) << what << " input " << i;
    EXPECT_EQ(gpu_inputs[i].grad().device(), kGpu) << what;
    expect_close(gpu_inputs[i].grad(), cpu_inputs[i].grad(), rtol,
                 what + " gradient of input " + std::to_string(i));
  }
}

class OpCuda : public ::testing::TestWithParam<const OpCase*> {};

TEST_P(OpCuda, MatchesCpu) {
  LOCKSTEP_REQUIRE_CUDA();
  const OpCase& c = *GetParam();
  expect_forward_matches(c, DType::f64, 1e-12, c.name + " f64");
  expect_forward_matches(c, DType::f32, 1e-5, c.name + " f32");
}

class OpCudaGrad : public ::testing::TestWithParam<const OpCase*> {};

TEST_P(OpCudaGrad, MatchesCpu) {
  LOCKSTEP_REQUIRE_CUDA();
  const OpCase& c = *GetParam();
  expect_gradients_match(c, DType::f64, 1e-12, c.name + " f64");
  expect_gradients_match(c, DType::f32, 1e-5, c.name + " f32");
}

// run.precision = "bf16": the ops on convolutions and GEMMs, f32 tensors, both devices in bf16. cuBLAS
// multiplies the same rounded operands as the CPU; cuDNN's bf16 configuration also rounds each convolution's
// result to bf16 (2^-9 relative), hence the looser tolerance.
const char* const kBf16Families[] = {"conv.", "linalg.", "recurrent."};

class OpCudaBf16 : public ::testing::TestWithParam<const OpCase*> {};

TEST_P(OpCudaBf16, MatchesCpuInBf16) {
  LOCKSTEP_REQUIRE_CUDA();
  const OpCase& c = *GetParam();
  MatmulPrecisionScope bf16(MatmulPrecision::kBf16);
  expect_forward_matches(c, DType::f32, 2e-2, c.name + " bf16");
  if (c.check_grad) expect_gradients_match(c, DType::f32, 2e-2, c.name + " bf16");
}

template <std::size_t N>
std::vector<const OpCase*> cases_of(const char* const (&families)[N], bool differentiable) {
  std::vector<const OpCase*> out;
  for (const auto& c : all_op_cases()) {
    if (differentiable && !c.check_grad) continue;
    for (const char* family : families) {
      if (c.name.rfind(family, 0) == 0) {
        out.push_back(&c);
        break;
      }
    }
  }
  return out;
}

std::string case_name(const ::testing::TestParamInfo<const OpCase*>& info) {
  std::string s = info.param->name;
  for (auto& ch : s) {
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  }
  return s;
}

INSTANTIATE_TEST_SUITE_P(Ops, OpCuda, ::testing::ValuesIn(cases_of(kCudaFamilies, false)), case_name);
INSTANTIATE_TEST_SUITE_P(Ops, OpCudaGrad, ::testing::ValuesIn(cases_of(kCudaBackwardFamilies, true)),
                         case_name);
INSTANTIATE_TEST_SUITE_P(Ops, OpCudaBf16, ::testing::ValuesIn(cases_of(kBf16Families, false)), case_name);

}  // namespace
}  // namespace lockstep::test
