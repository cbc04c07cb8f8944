// Shared helpers of the optimizer tests: the tiny three-step problem and trace comparisons.
#pragma once

#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <string>
#include <vector>

#include "src/nn/module.h"
#include "src/tensor/factories.h"
#include "src/tensor/tensor.h"

namespace lockstep::optim::testing {

// The tiny problem: a [1, 3] parameter starting at kStart and three hand-set gradients, one per step.
inline constexpr std::array<double, 3> kStart{1.0, -2.0, 0.5};
inline constexpr std::array<std::array<double, 3>, 3> kGrads{
    {{0.1, -0.3, 0.2}, {0.4, 0.1, -0.5}, {-0.2, 0.25, 0.05}}};

using Trace = std::vector<std::vector<double>>;  // the parameter's values after each step

inline Tensor tensor_of(const std::array<double, 3>& values, const Shape& shape, DType dtype) {
  return from_vector(std::vector<double>(values.begin(), values.end()), shape, dtype);
}

// Runs three steps of an optimizer made by make(params) on the tiny problem and returns the trace.
template <class Make>
Trace run_tiny(Make make, DType dtype = DType::f64, const Shape& shape = {1, 3}) {
  Tensor p = tensor_of(kStart, shape, dtype).requires_grad_();
  auto opt = make(std::vector<nn::NamedTensor>{{"w", p}});
  Trace trace;
  for (const auto& g : kGrads) {
    p.set_grad(tensor_of(g, shape, dtype));
    opt.step();
    trace.push_back(p.to_vector<double>());
  }
  return trace;
}

inline void expect_trace_near(const Trace& got, const Trace& want, double rel_tol) {
  ASSERT_EQ(got.size(), want.size());
  for (std::size_t t = 0; t < got.size(); ++t) {
    ASSERT_EQ(got[t].size(), want[t].size());
    for (std::size_t i = 0; i < got[t].size(); ++i) {
      EXPECT_NEAR(got[t][i], want[t][i], rel_tol * (std::abs(want[t][i]) + 1e-300))
          << "step " << t + 1 << ", element " << i;
    }
  }
}

}  // namespace lockstep::optim::testing
