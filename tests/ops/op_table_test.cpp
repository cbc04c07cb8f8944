// Drives the op test table: each registered case becomes a forward test in f64 and f32 against its naive
// double reference, a central-difference gradient check in f64, and a second-order check in f64 (OpGradGrad:
// finite differences of the first derivative) unless the case says why it cannot have one.
#include <gtest/gtest.h>

#include <cmath>
#include <iostream>

#include "src/autograd/grad_mode.h"
#include "tests/support/gradcheck.h"
#include "tests/support/op_case.h"

namespace lockstep::test {
namespace {

class OpForward : public ::testing::TestWithParam<const OpCase*> {};
class OpGradient : public ::testing::TestWithParam<const OpCase*> {};
class OpGradGrad : public ::testing::TestWithParam<const OpCase*> {};

void expect_close(const RefArray& want, const Tensor& got, double rtol, double atol, const std::string& what) {
  ASSERT_EQ(got.shape(), want.shape) << what << ": shape " << shape_str(got.shape()) << " vs reference "
                                     << shape_str(want.shape);
  const std::vector<double> g = got.to_vector<double>();
  int bad = 0;
  for (std::size_t i = 0; i < g.size(); ++i) {
    const bool close = std::abs(g[i] - want.data[i]) <= atol + rtol * std::abs(want.data[i]) ||
                       (std::isinf(want.data[i]) && g[i] == want.data[i]);
    if (!close && bad++ < 5) ADD_FAILURE() << what << " element " << i << ": got " << g[i] << ", reference " << want.data[i];
  }
  EXPECT_EQ(bad, 0) << what << ": " << bad << " of " << g.size() << " elements differ";
}

TEST_P(OpForward, MatchesReference) {
  const OpCase& c = *GetParam();
  for (DType dtype : {DType::f64, DType::f32}) {
    std::vector<Tensor> xs;
    std::vector<RefArray> refs;
    make_inputs(c, dtype, xs, refs);
    const RefArray want = c.reference(refs);
    NoGradGuard no_grad;
    const Tensor got = c.fn(xs);
    const bool f64 = dtype == DType::f64;
    expect_close(want, got, f64 ? 1e-10 : c.rtol_f32, f64 ? 1e-12 : c.atol_f32, c.name + (f64 ? " f64" : " f32"));
  }
}

// The case's inputs in f64, the differentiable ones requiring gradients.
std::vector<Tensor> f64_inputs(const OpCase& c) {
  std::vector<Tensor> xs;
  std::vector<RefArray> refs;
  make_inputs(c, DType::f64, xs, refs);
  for (std::size_t i = 0; i < xs.size(); ++i) {
    if (c.inputs[i].differentiable) xs[i].requires_grad_();
  }
  return xs;
}

TEST_P(OpGradient, MatchesFiniteDifferences) {
  const OpCase& c = *GetParam();
  const GradcheckResult r = gradcheck(c.fn, f64_inputs(c), c.grad_rtol, c.grad_atol);
  EXPECT_TRUE(r.ok) << c.name << ":\n" << r.message;
}

TEST_P(OpGradGrad, MatchesFiniteDifferencesOfTheGradient) {
  const OpCase& c = *GetParam();
  const GradcheckResult r = gradgradcheck(c.fn, f64_inputs(c), c.grad_rtol, c.grad_atol);
  EXPECT_TRUE(r.ok) << c.name << ":\n" << r.message;
}

// The table's opt-outs, each with its reason: listed in the log, and none without a reason.
TEST(OpGradGradTable, EveryOptOutSaysWhy) {
  int checked = 0, opted_out = 0;
  for (const auto& c : all_op_cases()) {
    if (!c.check_grad) continue;
    const std::string why = c.no_gradgrad;
    if (why.empty()) {
      ++checked;
    } else {
      ++opted_out;
      std::cout << "[ no gradgrad ] " << c.name << ": " << why << "\n";
    }
  }
  std::cout << "[ gradgrad    ] " << checked << " cases checked, " << opted_out << " opted out\n";
  EXPECT_GT(checked, 0);
}

enum class Which : std::uint8_t { kAll, kDifferentiable, kTwiceDifferentiable };

std::vector<const OpCase*> case_pointers(Which which) {
  std::vector<const OpCase*> out;
  for (const auto& c : all_op_cases()) {
    const bool take = which == Which::kAll ||
                      (c.check_grad && (which == Which::kDifferentiable || c.no_gradgrad.empty()));
    if (take) out.push_back(&c);
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

INSTANTIATE_TEST_SUITE_P(Ops, OpForward, ::testing::ValuesIn(case_pointers(Which::kAll)), case_name);
INSTANTIATE_TEST_SUITE_P(Ops, OpGradient, ::testing::ValuesIn(case_pointers(Which::kDifferentiable)),
                         case_name);
INSTANTIATE_TEST_SUITE_P(Ops, OpGradGrad, ::testing::ValuesIn(case_pointers(Which::kTwiceDifferentiable)),
                         case_name);

}  // namespace
}  // namespace lockstep::test
