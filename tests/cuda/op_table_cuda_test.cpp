// The op table's CUDA-versus-CPU test: every case whose op has CUDA kernels (the families listed below) runs
// on the GPU from the same inputs and must match the CPU result. Extending CUDA coverage = adding a prefix.
#include <gtest/gtest.h>

#include "src/autograd/grad_mode.h"
#include "tests/cuda/cuda_test_util.h"
#include "tests/support/op_case.h"

namespace lockstep::test {
namespace {

// Ops with CUDA kernels for their forward pass (src/backend/cuda).
const char* const kCudaFamilies[] = {"binary.add", "binary.sub", "binary.mul", "binary.div", "linalg.matmul",
                                     "linalg.linear"};

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
    expect_close(got, want, dtype == DType::f64 ? 1e-12 : 1e-5, c.name + (dtype == DType::f64 ? " f64" : " f32"));
  }
}

std::vector<const OpCase*> cuda_cases() {
  std::vector<const OpCase*> out;
  for (const auto& c : all_op_cases()) {
    for (const char* family : kCudaFamilies) {
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

INSTANTIATE_TEST_SUITE_P(Ops, OpCuda, ::testing::ValuesIn(cuda_cases()), case_name);

}  // namespace
}  // namespace lockstep::test
