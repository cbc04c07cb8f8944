// The course's worked examples, checked exactly: the ReLU network that computes XOR, and the gradient of a
// small MLP against the chain rule written out by hand.
#include <gtest/gtest.h>

#include "src/ops/activation.h"
#include "src/ops/elementwise.h"
#include "src/ops/linalg.h"
#include "src/ops/reduce.h"
#include "src/tensor/factories.h"

namespace lockstep {
namespace {

TEST(CourseExamples, ReluNetworkComputesXor) {
  // h = relu(X W + c), y = h w + b with W = [[1,1],[1,1]], c = [0,-1], w = [1,-2], b = 0.
  Tensor X = from_vector(std::vector<double>{0, 0, 0, 1, 1, 0, 1, 1}, {4, 2});
  Tensor W = from_vector(std::vector<double>{1, 1, 1, 1}, {2, 2});
  Tensor c = from_vector(std::vector<double>{0, -1}, {2});
  Tensor w = from_vector(std::vector<double>{1, -2}, {2});
  Tensor h = relu(matmul(X, W) + c);
  EXPECT_EQ(h.to_vector<double>(), (std::vector<double>{0, 0, 1, 0, 1, 0, 2, 1}));
  Tensor y = matmul(h, w) + 0.0;
  EXPECT_EQ(y.to_vector<double>(), (std::vector<double>{0, 1, 1, 0}));
}

TEST(CourseExamples, TwoLayerNetworkGradientsMatchTheChainRuleByHand) {
  // loss = sum((relu(x W1) W2 - t)^2) / 2 for one sample; backprop by hand:
  // e = y - t, dW2 = h^T e, dh = e W2^T * [z > 0], dW1 = x^T dh.
  Tensor x = from_vector(std::vector<double>{1.0, -2.0, 0.5}, {1, 3});
  Tensor W1 = from_vector(std::vector<double>{0.2, -0.4, 0.1, 0.3, -0.5, 0.6}, {3, 2}).requires_grad_();
  Tensor W2 = from_vector(std::vector<double>{0.7, -1.1}, {2, 1}).requires_grad_();
  Tensor t = from_vector(std::vector<double>{0.25}, {1, 1});
  Tensor z = matmul(x, W1);
  Tensor h = relu(z);
  Tensor y = matmul(h, W2);
  Tensor loss = sum(square(y - t)) * 0.5;
  loss.backward();

  const std::vector<double> xv{1.0, -2.0, 0.5}, w1{0.2, -0.4, 0.1, 0.3, -0.5, 0.6}, w2{0.7, -1.1};
  double zv[2], hv[2];
  for (int j = 0; j < 2; ++j) {
    zv[j] = 0;
    for (int i = 0; i < 3; ++i) zv[j] += xv[static_cast<std::size_t>(i)] * w1[static_cast<std::size_t>(i * 2 + j)];
    hv[j] = zv[j] > 0 ? zv[j] : 0;
  }
  const double e = hv[0] * w2[0] + hv[1] * w2[1] - 0.25;
  EXPECT_NEAR(loss.item(), 0.5 * e * e, 1e-15);
  const std::vector<double> dW2 = W2.grad().to_vector<double>();
  const std::vector<double> dW1 = W1.grad().to_vector<double>();
  for (int j = 0; j < 2; ++j) {
    EXPECT_NEAR(dW2[static_cast<std::size_t>(j)], hv[j] * e, 1e-15);
    const double dh = e * w2[static_cast<std::size_t>(j)] * (zv[j] > 0 ? 1.0 : 0.0);
    for (int i = 0; i < 3; ++i) {
      EXPECT_NEAR(dW1[static_cast<std::size_t>(i * 2 + j)], xv[static_cast<std::size_t>(i)] * dh, 1e-15);
    }
  }
}

}  // namespace
}  // namespace lockstep
