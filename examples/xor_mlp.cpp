// Trains a 2-8-1 tanh/sigmoid MLP on XOR with plain gradient descent: the smallest end-to-end use of
// Lockstep's tensors and autograd. Prints the loss as it falls and the final predictions.
#include <cstdio>

#include "src/autograd/grad_mode.h"
#include "src/ops/activation.h"
#include "src/ops/elementwise.h"
#include "src/ops/linalg.h"
#include "src/ops/reduce.h"
#include "src/tensor/factories.h"

using namespace lockstep;

int main() {
  try {
    manual_seed(7);
    const Tensor X = from_vector(std::vector<float>{0, 0, 0, 1, 1, 0, 1, 1}, {4, 2});
    const Tensor T = from_vector(std::vector<float>{0, 1, 1, 0}, {4, 1});
    Tensor W1 = randn({8, 2}, 0.0, 1.0).requires_grad_(), b1 = zeros({8}).requires_grad_();
    Tensor W2 = randn({1, 8}, 0.0, 0.5).requires_grad_(), b2 = zeros({1}).requires_grad_();
    const double lr = 0.5;
    for (int step = 0; step <= 2000; ++step) {
      Tensor y = sigmoid(linear(tanh(linear(X, W1, b1)), W2, b2));
      Tensor loss = mean(square(y - T));
      loss.backward();
      {
        NoGradGuard no_grad;
        for (Tensor* p : {&W1, &b1, &W2, &b2}) {
          p->add_(p->grad(), -lr);
          p->set_grad(Tensor());
        }
      }
      if (step % 400 == 0) std::printf("step %4d  loss %.6f\n", step, loss.item());
    }
    NoGradGuard no_grad;
    const Tensor y = sigmoid(linear(tanh(linear(X, W1, b1)), W2, b2));
    std::printf("predictions for (0,0) (0,1) (1,0) (1,1): %s\n", y.reshape({4}).str().c_str());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "xor_mlp: %s\n", e.what());
    return 1;
  }
}
