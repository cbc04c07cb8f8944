// Op cases: unary math (neg, exp, log, sqrt, abs, square, pow, clamp, and the kernel-only log1p, reciprocal,
// sign and scalar power of unary_op), on contiguous and strided inputs.
#include <cmath>

#include "src/ops/elementwise.h"
#include "src/ops/unary.h"
#include "tests/support/reference.h"

namespace lockstep::test {
namespace {
using Ts = std::vector<Tensor>;
using Rs = std::vector<RefArray>;

RefArray transposed(const RefArray& x) {
  RefArray out({x.size(1), x.size(0)});
  for (std::int64_t i = 0; i < x.size(0); ++i)
    for (std::int64_t j = 0; j < x.size(1); ++j) out.at({j, i}) = x.at({i, j});
  return out;
}
}  // namespace

LOCKSTEP_OP_CASES(unary) {
  std::vector<OpCase> cases;
  auto unary = [&](std::string name, InputSpec in, std::function<Tensor(const Tensor&)> f,
                   std::function<double(double)> r) {
    cases.push_back(
        {name, {in}, [f](const Ts& x) { return f(x[0]); }, [r](const Rs& x) { return ref_map(x[0], r); }});
  };
  // The same op applied to a transposed view: the kernel's strided path.
  auto unary_t = [&](std::string name, InputSpec in, std::function<Tensor(const Tensor&)> f,
                     std::function<double(double)> r) {
    cases.push_back({name,
                     {in},
                     [f](const Ts& x) { return f(x[0].transpose(0, 1)); },
                     [r](const Rs& x) { return ref_map(transposed(x[0]), r); }});
  };
  auto neg_f = [](const Tensor& x) { return neg(x); };
  auto exp_f = [](const Tensor& x) { return exp(x); };
  auto log_f = [](const Tensor& x) { return log(x); };
  auto sqrt_f = [](const Tensor& x) { return sqrt(x); };
  auto abs_f = [](const Tensor& x) { return abs(x); };
  auto square_f = [](const Tensor& x) { return square(x); };

  unary("unary.neg", uniform({3, 4}), neg_f, [](double v) { return -v; });
  unary(
      "unary.neg/operator", uniform({7}), [](const Tensor& x) { return -x; }, [](double v) { return -v; });
  unary("unary.exp", uniform({2, 3, 4}, -2.0, 2.0), exp_f, [](double v) { return std::exp(v); });
  unary_t("unary.exp/transposed", uniform({3, 5}, -2.0, 2.0), exp_f, [](double v) { return std::exp(v); });
  unary("unary.exp/scalar", uniform({}, -1.0, 1.0), exp_f, [](double v) { return std::exp(v); });
  unary("unary.log", uniform({3, 4}, 0.1, 3.0), log_f, [](double v) { return std::log(v); });
  unary_t("unary.log/transposed", uniform({4, 3}, 0.5, 2.0), log_f, [](double v) { return std::log(v); });
  unary("unary.sqrt", uniform({3, 5}, 0.1, 4.0), sqrt_f, [](double v) { return std::sqrt(v); });
  unary("unary.abs", away_from_zero({4, 5}), abs_f, [](double v) { return std::fabs(v); });
  unary_t("unary.abs/transposed", away_from_zero({3, 4}), abs_f, [](double v) { return std::fabs(v); });
  unary("unary.square", uniform({3, 4}, -2.0, 2.0), square_f, [](double v) { return v * v; });
  unary(
      "unary.pow_scalar/2.5", uniform({3, 4}, 0.2, 2.0), [](const Tensor& x) { return pow(x, 2.5); },
      [](double v) { return std::pow(v, 2.5); });
  unary(
      "unary.pow_scalar/square_negative_base", uniform({2, 5}, -2.0, 2.0),
      [](const Tensor& x) { return pow(x, 2.0); }, [](double v) { return v * v; });
  unary(
      "unary.pow_scalar/reciprocal", uniform({6}, 0.5, 2.0), [](const Tensor& x) { return pow(x, -1.0); },
      [](double v) { return 1.0 / v; });
  unary(
      "unary.pow_scalar/half", uniform({6}, 0.5, 2.0), [](const Tensor& x) { return pow(x, 0.5); },
      [](double v) { return std::sqrt(v); });
  cases.push_back(
      {"unary.pow_tensor/same",
       {uniform({3, 4}, 0.3, 2.0), uniform({3, 4}, -1.5, 2.5)},
       [](const Ts& x) { return pow(x[0], x[1]); },
       [](const Rs& x) { return ref_map2(x[0], x[1], [](double a, double b) { return std::pow(a, b); }); }});
  cases.push_back(
      {"unary.pow_tensor/broadcast_exponent",
       {uniform({2, 3, 4}, 0.3, 2.0), uniform({3, 1}, -1.0, 3.0)},
       [](const Ts& x) { return pow(x[0], x[1]); },
       [](const Rs& x) { return ref_map2(x[0], x[1], [](double a, double b) { return std::pow(a, b); }); }});
  cases.push_back(
      {"unary.pow_tensor/broadcast_base",
       {uniform({4}, 0.3, 2.0), uniform({3, 4}, -1.0, 2.0)},
       [](const Ts& x) { return pow(x[0], x[1]); },
       [](const Rs& x) { return ref_map2(x[0], x[1], [](double a, double b) { return std::pow(a, b); }); }});
  // Clamp bounds sit between grid points of the distinct inputs, which lie on both sides of each bound.
  auto clamp_ref = [](double lo, double hi) {
    return [lo, hi](double v) { return v < lo ? lo : (v > hi ? hi : v); };
  };
  unary(
      "unary.clamp", distinct({4, 6}, -2.0, 2.0), [](const Tensor& x) { return clamp(x, -0.5, 0.7); },
      clamp_ref(-0.5, 0.7));
  unary(
      "unary.clamp/asymmetric", distinct({3, 5}, -1.0, 3.0),
      [](const Tensor& x) { return clamp(x, 0.1, 2.05); }, clamp_ref(0.1, 2.05));
  unary_t(
      "unary.clamp/transposed", distinct({4, 6}, -2.0, 2.0),
      [](const Tensor& x) { return clamp(x, -1.0, 1.0); }, clamp_ref(-1.0, 1.0));
  unary(
      "unary.clamp/all_inside", distinct({5}, -0.5, 0.5), [](const Tensor& x) { return clamp(x, -1.0, 1.0); },
      clamp_ref(-1.0, 1.0));
  // The unary kernel's ops that no public function uses directly (pow(x, double) goes through the binary
  // pow).
  unary(
      "unary.log1p", uniform({3, 4}, -0.5, 2.0),
      [](const Tensor& x) { return unary_op("log1p", UnaryOp::kLog1p, x, SaveForBackward::kInput); },
      [](double v) { return std::log1p(v); });
  unary(
      "unary.reciprocal", away_from_zero({3, 4}, 0.5, 2.0),
      [](const Tensor& x) {
        return unary_op("reciprocal", UnaryOp::kReciprocal, x, SaveForBackward::kOutput);
      },
      [](double v) { return 1.0 / v; });
  unary(
      "unary.pow_scalar/kernel", uniform({3, 4}, 0.3, 2.0),
      [](const Tensor& x) { return unary_op("pow", UnaryOp::kPowScalar, x, SaveForBackward::kInput, 2.5); },
      [](double v) { return std::pow(v, 2.5); });
  // sign is flat away from 0: the product keeps a gradient to check (sign's own is 0).
  unary(
      "unary.sign", away_from_zero({3, 4}),
      [](const Tensor& x) { return unary_op("sign", UnaryOp::kSign, x, SaveForBackward::kNone) * x; },
      [](double v) { return std::fabs(v); });
  // A strided (every other column) input.
  cases.push_back({"unary.exp/strided_slice",
                   {uniform({3, 6}, -1.0, 1.0)},
                   [](const Ts& x) { return exp(x[0].slice(1, 0, 6, 2)); },
                   [](const Rs& x) {
                     RefArray out({3, 3});
                     for (std::int64_t i = 0; i < 3; ++i)
                       for (std::int64_t j = 0; j < 3; ++j) out.at({i, j}) = std::exp(x[0].at({i, 2 * j}));
                     return out;
                   }});
  return cases;
}

}  // namespace lockstep::test
