// Gradient clipping by global norm and FGSM examples on a GPU against the CPU: the training features that
// `run.device = "cuda"` allows once these agree.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "src/models/adversarial.h"
#include "src/models/lenet.h"
#include "src/optim/clip.h"
#include "tests/cuda/cuda_test_util.h"

namespace lockstep::test {
namespace {

// Leaves with the given gradients on `device`.
std::vector<Tensor> leaves_with_grads(const std::vector<Tensor>& grads, Device device) {
  std::vector<Tensor> params;
  for (const Tensor& g : grads) {
    Tensor p = zeros(g.shape(), g.dtype(), device);
    p.requires_grad_(true);
    p.set_grad(g.clone().to(device));  // its own copy: clipping scales it in place
    params.push_back(p);
  }
  return params;
}

TEST(CudaClip, GradNormScalesLikeTheCpuAndLeavesANonFiniteNormAlone) {
  LOCKSTEP_REQUIRE_CUDA();
  const std::vector<Tensor> grads = {cpu_rand({64, 33}, DType::f32, 1, -3.0, 3.0),
                                     cpu_rand({7}, DType::f32, 2)};
  for (const double max_norm : {1.0, 1e9}) {  // clipped, and left as it is
    std::vector<Tensor> cpu = leaves_with_grads(grads, kCPU), gpu = leaves_with_grads(grads, kGpu);
    const Tensor want = optim::clip_grad_norm_(cpu, max_norm), got = optim::clip_grad_norm_(gpu, max_norm);
    EXPECT_EQ(got.device(), kGpu);
    expect_close(got, want, 1e-12, "the norm");
    for (std::size_t i = 0; i < cpu.size(); ++i)
      expect_close(gpu[i].grad(), cpu[i].grad(), 1e-6, "a gradient");
  }
  Tensor bad = grads[0].clone();
  bad.fill_(std::numeric_limits<double>::infinity());
  std::vector<Tensor> gpu = leaves_with_grads({bad, grads[1]}, kGpu);
  EXPECT_TRUE(std::isinf(optim::clip_grad_norm_(gpu, 1.0).item()));
  expect_close(gpu[1].grad(), grads[1], 0.0, "a gradient beside an infinite one");
}

TEST(CudaAdversarial, FgsmExamplesMatchTheCpu) {
  LOCKSTEP_REQUIRE_CUDA();
  models::LeNet5 cpu(1, 28, 10), gpu(1, 28, 10);
  gpu.load_state_dict(cpu.state_dict());
  gpu.to(kGpu);
  const Tensor images = cpu_rand({8, 1, 28, 28}, DType::f32, 3, -0.4, 2.8);
  const Tensor labels = from_vector(std::vector<std::int64_t>{0, 1, 2, 3, 4, 5, 6, 7}, {8});
  const models::InputNormalization norm{{0.286}, {0.353}};
  const Tensor want = models::fgsm(cpu, images, labels, 0.1, norm);
  const Tensor got = models::fgsm(gpu, images.to(kGpu), labels.to(kGpu), 0.1, norm);
  EXPECT_EQ(got.device(), kGpu);
  // The sign of each input gradient decides a step of epsilon / std: equal up to the rare sign of a gradient
  // within rounding of zero.
  const std::vector<float> g = got.to_vector<float>(), w = want.to_vector<float>();
  std::size_t differ = 0;
  for (std::size_t i = 0; i < g.size(); ++i) differ += std::abs(g[i] - w[i]) > 1e-5f;
  EXPECT_LE(differ, g.size() / 1000) << differ << " of " << g.size() << " pixels differ";
}

}  // namespace
}  // namespace lockstep::test
