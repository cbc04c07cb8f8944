// Helpers shared by the nn tests: typed-error expectations and element-wise comparisons.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <initializer_list>
#include <string>
#include <vector>

#include "src/tensor/tensor.h"

namespace lockstep::nn::test_util {

// Expects `fn` to throw E whose message contains every one of `parts`; returns the message.
template <class E, class Fn>
std::string expect_error(Fn&& fn, std::initializer_list<std::string> parts) {
  try {
    fn();
  } catch (const E& e) {
    const std::string what = e.what();
    for (const auto& p : parts)
      EXPECT_NE(what.find(p), std::string::npos) << "message '" << what << "' lacks '" << p << "'";
    return what;
  }
  ADD_FAILURE() << "expected an exception";
  return {};
}

inline void expect_near_values(const Tensor& got, const std::vector<double>& want, double tol) {
  const std::vector<double> g = got.to_vector<double>();
  ASSERT_EQ(g.size(), want.size());
  for (std::size_t i = 0; i < g.size(); ++i) {
    EXPECT_NEAR(g[i], want[i], tol * (1.0 + std::abs(want[i]))) << "element " << i;
  }
}

}  // namespace lockstep::nn::test_util
