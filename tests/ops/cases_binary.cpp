// Op cases: broadcasting binary arithmetic (add, sub, mul, div, maximum, minimum), where, and comparisons.
#include <cmath>
#include <tuple>

#include "src/ops/elementwise.h"
#include "tests/support/reference.h"

namespace lockstep::test {
namespace {
using Ts = std::vector<Tensor>;
using Rs = std::vector<RefArray>;
}  // namespace

LOCKSTEP_OP_CASES(binary) {
  std::vector<OpCase> cases;
  auto arith = [&](std::string name, std::function<Tensor(const Tensor&, const Tensor&)> f,
                   std::function<double(double, double)> r, InputSpec a, InputSpec b) {
    cases.push_back({name, {a, b}, [f](const Ts& x) { return f(x[0], x[1]); },
                     [r](const Rs& x) { return ref_map2(x[0], x[1], r); }});
  };
  auto add_f = [](const Tensor& a, const Tensor& b) { return add(a, b); };
  auto sub_f = [](const Tensor& a, const Tensor& b) { return a - b; };
  auto mul_f = [](const Tensor& a, const Tensor& b) { return a * b; };
  auto div_f = [](const Tensor& a, const Tensor& b) { return a / b; };
  arith("binary.add/same", add_f, std::plus<double>(), uniform({3, 4}), uniform({3, 4}));
  arith("binary.add/broadcast_row", add_f, std::plus<double>(), uniform({3, 4}), uniform({4}));
  arith("binary.add/broadcast_both", add_f, std::plus<double>(), uniform({3, 1, 5}), uniform({1, 4, 1}));
  arith("binary.add/alpha", [](const Tensor& a, const Tensor& b) { return add(a, b, 2.5); },
        [](double a, double b) { return a + 2.5 * b; }, uniform({2, 3}), uniform({2, 3}));
  arith("binary.sub/broadcast", sub_f, std::minus<double>(), uniform({2, 3, 4}), uniform({3, 1}));
  arith("binary.mul/broadcast", mul_f, std::multiplies<double>(), uniform({2, 3, 4}), uniform({1, 3, 1}));
  arith("binary.mul/scalar_tensor", mul_f, std::multiplies<double>(), uniform({5, 2}), uniform({}));
  arith("binary.div/broadcast", div_f, std::divides<double>(), uniform({4, 3}), away_from_zero({3}, 0.5, 2.0));
  arith("binary.maximum", [](const Tensor& a, const Tensor& b) { return maximum(a, b); },
        [](double a, double b) { return std::max(a, b); }, distinct({3, 4}), distinct({3, 4}, -0.97, 1.03));
  arith("binary.minimum", [](const Tensor& a, const Tensor& b) { return minimum(a, b); },
        [](double a, double b) { return std::min(a, b); }, distinct({3, 4}), distinct({4}, -0.97, 1.03));
  cases.push_back({"binary.mul/python_scalar", {uniform({2, 5})}, [](const Ts& x) { return 3.0 * x[0] - 1.5; },
                   [](const Rs& x) { return ref_map(x[0], [](double a) { return 3.0 * a - 1.5; }); }});
  cases.push_back({"binary.mul/permuted_view", {uniform({3, 4})}, [](const Ts& x) { return x[0].transpose(0, 1) * 2.0; },
                   [](const Rs& x) {
                     RefArray out({4, 3});
                     for (std::int64_t i = 0; i < 3; ++i)
                       for (std::int64_t j = 0; j < 4; ++j) out.at({j, i}) = 2.0 * x[0].at({i, j});
                     return out;
                   }});
  // where(cond, a, b) broadcasting all three: cond [3, 4] (u8), a [2, 1, 4], b [3, 1] -> [2, 3, 4].
  cases.push_back({"binary.where/broadcast",
                   {mask({3, 4}), uniform({2, 1, 4}), uniform({3, 1})},
                   [](const Ts& x) { return where(x[0], x[1] * x[1], x[2] * x[1]); },
                   [](const Rs& x) {
                     RefArray out({2, 3, 4});
                     for (std::int64_t i = 0; i < 2; ++i)
                       for (std::int64_t j = 0; j < 3; ++j)
                         for (std::int64_t k = 0; k < 4; ++k) {
                           const double a = x[1].at({i, 0, k}), b = x[2].at({j, 0});
                           out.at({i, j, k}) = x[0].at({j, k}) != 0.0 ? a * a : b * a;
                         }
                     return out;
                   }});
  cases.push_back({"binary.where/scalar_branch",
                   {mask({3, 4}), uniform({3, 4})},
                   [](const Ts& x) { return where(x[0], x[1], wrapped_scalar(0.5)) * x[1]; },
                   [](const Rs& x) {
                     return ref_map2(x[0], x[1], [](double c, double a) { return (c != 0.0 ? a : 0.5) * a; });
                   }});
  auto cmp = [&](std::string name, std::function<Tensor(const Tensor&, const Tensor&)> f,
                 std::function<bool(double, double)> r) {
    OpCase c{name, {distinct({3, 4}), distinct({4}, -0.95, 1.05)}, [f](const Ts& x) { return f(x[0], x[1]); },
             [r](const Rs& x) { return ref_map2(x[0], x[1], [r](double a, double b) { return r(a, b) ? 1.0 : 0.0; }); }};
    c.check_grad = false;
    cases.push_back(c);
  };
  for (auto [name, f, r] : {std::tuple{"binary.eq/i64", &eq, std::function<bool(double, double)>(std::equal_to<double>())},
                             std::tuple{"binary.ne/i64", &ne, std::function<bool(double, double)>(std::not_equal_to<double>())}}) {
    OpCase c{name, {index({3, 4}, 3), index({4}, 3)}, [f](const Ts& x) { return f(x[0], x[1]); },
             [r](const Rs& x) { return ref_map2(x[0], x[1], [r](double a, double b) { return r(a, b) ? 1.0 : 0.0; }); }};
    c.check_grad = false;
    cases.push_back(c);
  }
  cmp("binary.lt", [](const Tensor& a, const Tensor& b) { return lt(a, b); }, std::less<double>());
  cmp("binary.le", [](const Tensor& a, const Tensor& b) { return le(a, b); }, std::less_equal<double>());
  cmp("binary.gt", [](const Tensor& a, const Tensor& b) { return gt(a, b); }, std::greater<double>());
  cmp("binary.ge", [](const Tensor& a, const Tensor& b) { return ge(a, b); }, std::greater_equal<double>());
  return cases;
}

}  // namespace lockstep::test
