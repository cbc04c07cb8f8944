// The op table's CUDA-versus-CPU tests: every case whose op has CUDA kernels (the families listed below) runs
// on the GPU from the same inputs and must match the CPU result, and where the backward has CUDA kernels too,
// so must the input gradients. Extending CUDA coverage = adding a prefix.
#include <gtest/gtest.h>

#include "src/autograd/grad_mode.h"
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

class OpCuda : public ::testing::TestWithParam<const OpCase*> {};

TEST_P(OpCuda, MatchesCpu) {
  LOCKSTEP_REQUIRE_CUDA();
  const OpCase& c = *GetParam();
  for (DType dtype : {DType::f64, DType::f32}) {
    std::vector<Tensor> cpu_inputs;
    std::vector<RefArray> refs;
    make_inputs(c, dtype, cpu_inputs, refs);
    std::vector<Tensor> gpu_inputs;
    for (const auto& t : cpu_inputs) gpu_inputs.push_back(t.to(kGpu));
    NoGradGuard no_grad;
    const Tensor want = c.fn(cpu_inputs);
    const Tensor got = c.fn(gpu_inputs);
    EXPECT_EQ(got.device(), kGpu) << c.name;
    expect_close(got, want, dtype == DType::f64 ? 1e-12 : 1e-5,
                 c.name + (dtype == DType::f64 ? " f64" : " f32"));
  }
}

// The gradients of the case's differentiable inputs for one random upstream gradient, on the GPU, must match
// the CPU's.
class OpCudaGrad : public ::testing::TestWithParam<const OpCase*> {};

TEST_P(OpCudaGrad, MatchesCpu) {
  LOCKSTEP_REQUIRE_CUDA();
  const OpCase& c = *GetParam();
  for (DType dtype : {DType::f64, DType::f32}) {
    const std::string what = c.name + (dtype == DType::f64 ? " f64" : " f32");
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
    if (!want.requires_grad()) continue;
    const Tensor upstream = cpu_rand(want.shape(), dtype, 7);
    want.backward(upstream);
    c.fn(gpu_inputs).backward(upstream.to(kGpu));
    for (std::size_t i = 0; i < made.size(); ++i) {
      if (!cpu_inputs[i].requires_grad()) continue;
      ASSERT_TRUE(gpu_inputs[i].grad().defined()) << what << " input " << i;
      EXPECT_EQ(gpu_inputs[i].grad().device(), kGpu) << what;
      expect_close(gpu_inputs[i].grad(), cpu_inputs[i].grad(), dtype == DType::f64 ? 1e-12 : 1e-5,
                   what + " gradient of input " + std::to_string(i));
    }
  }
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

}  // namespace
}  // namespace lockstep::test
