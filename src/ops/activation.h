// Activation functions: element-wise nonlinearities with fused backward kernels, and PReLU with a learned
// slope.
#pragma once

#include "src/tensor/tensor.h"

namespace lockstep {

Tensor sigmoid(const Tensor& x);
Tensor tanh(const Tensor& x);
// min where x < min, max where x > max, else x.
Tensor hardtanh(const Tensor& x, double min = -1.0, double max = 1.0);
Tensor relu(const Tensor& x);
// x where x > 0, else negative_slope * x.
Tensor leaky_relu(const Tensor& x, double negative_slope = 0.01);
// x where x > 0, else weight * x; weight [1] (shared) or [C] for the channel dimension 1 of x [N, C, ...].
// Differentiable in x and weight.
Tensor prelu(const Tensor& x, const Tensor& weight);
// x where x > 0, else alpha * (exp(x) - 1).
Tensor elu(const Tensor& x, double alpha = 1.0);
// log(1 + exp(beta * x)) / beta, and x itself where beta * x > threshold.
Tensor softplus(const Tensor& x, double beta = 1.0, double threshold = 20.0);

}  // namespace lockstep
