// Central-difference gradient checking in f64: compares autograd's gradients of sum(f(inputs) * r), for a
// fixed random r, with (L(x + eps) - L(x - eps)) / 2 eps for every element of every differentiable input; and
// the same for the second derivative.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "src/nn/module.h"
#include "src/tensor/tensor.h"

namespace lockstep::test {

struct GradcheckResult {
  bool ok = true;
  std::string message;  // the first mismatches, for the test log
};

// `inputs` are f64 tensors; those with requires_grad set are checked. `fn` must be deterministic.
GradcheckResult gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& fn, const std::vector<Tensor>& inputs,
                          double rtol = 1e-5, double atol = 1e-6, double eps = 1e-6);

// Second-order check (PyTorch's gradgradcheck): with a fixed random v of the output's shape, the first
// derivative g = grad(sum(f(inputs) * v), inputs, create_graph) is differentiated again through
// sum(g_i * u_i) for fixed random u_i, with respect to every differentiable input and to v itself (the
// backward must be differentiable in its incoming gradient too), and compared with central differences of
// that first derivative.
GradcheckResult gradgradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& fn,
                              const std::vector<Tensor>& inputs, double rtol = 1e-5, double atol = 1e-6,
                              double eps = 1e-6);

// Central differences of `loss` (f64, step 1e-6) against the .grad autograd left on every element of every
// parameter of `module` whose name starts with `prefix`: a gtest failure, labelled `label` + name + index,
// where |analytic - numeric| > atol + 1e-5 |numeric|. `loss` runs with grad mode on (a loss may take
// gradients itself, as a Jacobian penalty does). Returns the number of elements checked.
std::int64_t expect_weights_match_central_differences(const nn::Module& module,
                                                      const std::function<double()>& loss,
                                                      const std::string& label, double atol = 1e-6,
                                                      const std::string& prefix = "");

}  // namespace lockstep::test
