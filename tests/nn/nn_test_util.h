// Helpers shared by the nn tests: element-wise comparisons.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "src/tensor/tensor.h"

namespace lockstep::nn::test_util {

inline void expect_near_values(const Tensor& got, const std::vector<double>& want, double tol) {
  const std::vector<double> g = got.to_vector<double>();
  ASSERT_EQ(g.size(), want.size());
  for (std::size_t i = 0; i < g.size(); ++i) {
    EXPECT_NEAR(g[i], want[i], tol * (1.0 + std::abs(want[i]))) << "element " << i;
  }
}

}  // namespace lockstep::nn::test_util
