// Op cases: reductions (sum, mean, max, min, argmax, argmin, var, sum_to) with keepdim, negative and multiple
// dimensions, non-contiguous inputs, full reductions, and large inputs for the kernel's split paths.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "src/ops/reduce.h"
#include "tests/support/reference.h"

namespace lockstep::test {
namespace {
using Ts = std::vector<Tensor>;
using Rs = std::vector<RefArray>;
using Dims = std::vector<std::int64_t>;
using Fold = std::function<double(const std::vector<double>&)>;

// Applies `f` to the values of each group of elements that differ only along `dims` (all when empty), in
// row-major order within the group; keeps the reduced dimensions as size 1 when `keep`.
RefArray ref_reduce(const RefArray& x, Dims dims, bool keep, const Fold& f) {
  const std::int64_t nd = static_cast<std::int64_t>(x.shape.size());
  std::vector<bool> reduced(static_cast<std::size_t>(nd), dims.empty());
  for (auto d : dims) reduced[static_cast<std::size_t>(d < 0 ? d + nd : d)] = true;
  Shape kept = x.shape, out_shape;
  for (std::int64_t d = 0; d < nd; ++d) {
    if (reduced[static_cast<std::size_t>(d)])
      kept[static_cast<std::size_t>(d)] = 1;
    else
      out_shape.push_back(x.size(d));
  }
  std::vector<std::vector<double>> groups(static_cast<std::size_t>(numel_of(kept)));
  for (std::int64_t i = 0; i < x.numel(); ++i) {
    std::int64_t rem = i, group = 0, scale = 1;
    for (std::int64_t d = nd - 1; d >= 0; --d) {
      const std::int64_t idx = rem % x.size(d);
      rem /= x.size(d);
      if (!reduced[static_cast<std::size_t>(d)]) group += idx * scale;
      scale *= kept[static_cast<std::size_t>(d)];
    }
    groups[static_cast<std::size_t>(group)].push_back(x[i]);
  }
  RefArray out(keep ? kept : out_shape);
  for (std::size_t g = 0; g < groups.size(); ++g) out.data[g] = f(groups[g]);
  return out;
}

RefArray ref_transpose(const RefArray& x) {
  RefArray out({x.size(1), x.size(0)});
  for (std::int64_t i = 0; i < x.size(0); ++i)
    for (std::int64_t j = 0; j < x.size(1); ++j) out.at({j, i}) = x.at({i, j});
  return out;
}

double fold_sum(const std::vector<double>& v) {
  double s = 0;
  for (double e : v) s += e;
  return s;
}
double fold_mean(const std::vector<double>& v) { return fold_sum(v) / static_cast<double>(v.size()); }
double fold_max(const std::vector<double>& v) { return *std::max_element(v.begin(), v.end()); }
double fold_min(const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); }
double fold_argmax(const std::vector<double>& v) {
  return static_cast<double>(std::max_element(v.begin(), v.end()) - v.begin());
}
double fold_argmin(const std::vector<double>& v) {
  return static_cast<double>(std::min_element(v.begin(), v.end()) - v.begin());
}
Fold fold_var(double correction) {
  return [correction](const std::vector<double>& v) {
    const double m = fold_mean(v);
    double s = 0;
    for (double e : v) s += (e - m) * (e - m);
    return s / (static_cast<double>(v.size()) - correction);
  };
}
}  // namespace

LOCKSTEP_OP_CASES(reduce) {
  std::vector<OpCase> cases;
  const auto yes = KeepDim::kYes;
  // One case: fn on input spec, reference ref_reduce(x, dims, keep, fold), optionally through a transpose.
  auto add = [&](std::string name, InputSpec in, std::function<Tensor(const Tensor&)> f, Dims dims, bool keep,
                 Fold fold, bool transpose = false, bool grad = true) {
    OpCase c{name,
             {in},
             [f, transpose](const Ts& x) { return f(transpose ? x[0].transpose(0, 1) : x[0]); },
             [dims, keep, fold, transpose](const Rs& x) {
               return ref_reduce(transpose ? ref_transpose(x[0]) : x[0], dims, keep, fold);
             }};
    c.check_grad = grad;
    cases.push_back(c);
  };

  // sum / mean.
  add(
      "reduce.sum/all", uniform({3, 4}), [](const Tensor& x) { return sum(x); }, {}, false, fold_sum);
  add(
      "reduce.sum/dim1", uniform({3, 4, 5}), [](const Tensor& x) { return sum(x, {1}); }, {1}, false,
      fold_sum);
  add(
      "reduce.sum/dim_neg1_keepdim", uniform({3, 4, 5}), [=](const Tensor& x) { return sum(x, {-1}, yes); },
      {-1}, true, fold_sum);
  add(
      "reduce.sum/dims_0_2", uniform({3, 4, 5}),
      [](const Tensor& x) {
        return sum(x, {0, 2});
      },
      {0, 2}, false, fold_sum);
  add(
      "reduce.sum/dims_0_2_keepdim", uniform({2, 3, 4}),
      [=](const Tensor& x) {
        return sum(x, {2, 0}, yes);
      },
      {0, 2}, true, fold_sum);
  add(
      "reduce.sum/transposed", uniform({3, 5}), [](const Tensor& x) { return sum(x, {1}); }, {1}, false,
      fold_sum, true);
  add(
      "reduce.mean/all", uniform({2, 3, 4}), [](const Tensor& x) { return mean(x); }, {}, false, fold_mean);
  add(
      "reduce.mean/dim0_keepdim", uniform({4, 3}), [=](const Tensor& x) { return mean(x, {0}, yes); }, {0},
      true, fold_mean);
  add(
      "reduce.mean/dims_neg", uniform({2, 3, 4}),
      [](const Tensor& x) {
        return mean(x, {-1, -2});
      },
      {-1, -2}, false, fold_mean);
  add(
      "reduce.mean/transposed", uniform({3, 5}), [](const Tensor& x) { return mean(x, {0}); }, {0}, false,
      fold_mean, true);

  // max / min along a dimension (distinct values: no ties) and over everything.
  add(
      "reduce.max/dim1", distinct({3, 4, 5}), [](const Tensor& x) { return max(x, 1); }, {1}, false,
      fold_max);
  add(
      "reduce.max/dim0_keepdim", distinct({4, 3}), [=](const Tensor& x) { return max(x, 0, yes); }, {0}, true,
      fold_max);
  add(
      "reduce.max/dim_neg1", distinct({2, 3, 4}), [](const Tensor& x) { return max(x, -1); }, {-1}, false,
      fold_max);
  add(
      "reduce.max/dim_neg2_keepdim", distinct({2, 3, 4}), [=](const Tensor& x) { return max(x, -2, yes); },
      {-2}, true, fold_max);
  add(
      "reduce.max/transposed", distinct({3, 5}), [](const Tensor& x) { return max(x, 1); }, {1}, false,
      fold_max, true);
  add(
      "reduce.max/1d", distinct({7}), [](const Tensor& x) { return max(x, 0); }, {0}, false, fold_max);
  add(
      "reduce.max/all", distinct({3, 4}), [](const Tensor& x) { return max(x); }, {}, false, fold_max);
  add(
      "reduce.max/all_transposed", distinct({3, 4}), [](const Tensor& x) { return max(x); }, {}, false,
      fold_max, true);
  add(
      "reduce.min/dim1", distinct({3, 4, 5}), [](const Tensor& x) { return min(x, 1); }, {1}, false,
      fold_min);
  add(
      "reduce.min/dim_neg1_keepdim", distinct({4, 3}), [=](const Tensor& x) { return min(x, -1, yes); }, {-1},
      true, fold_min);
  add(
      "reduce.min/transposed", distinct({3, 5}), [=](const Tensor& x) { return min(x, 0, yes); }, {0}, true,
      fold_min, true);
  add(
      "reduce.min/all", distinct({2, 3, 2}), [](const Tensor& x) { return min(x); }, {}, false, fold_min);

  // argmax / argmin: i64, not differentiable.
  add(
      "reduce.argmax/dim1", distinct({3, 4, 5}), [](const Tensor& x) { return argmax(x, 1); }, {1}, false,
      fold_argmax, false, false);
  add(
      "reduce.argmax/dim_neg1_keepdim", distinct({4, 6}), [=](const Tensor& x) { return argmax(x, -1, yes); },
      {-1}, true, fold_argmax, false, false);
  add(
      "reduce.argmax/transposed", distinct({3, 5}), [](const Tensor& x) { return argmax(x, 1); }, {1}, false,
      fold_argmax, true, false);
  add(
      "reduce.argmin/dim0", distinct({5, 3}), [](const Tensor& x) { return argmin(x, 0); }, {0}, false,
      fold_argmin, false, false);
  add(
      "reduce.argmin/dim_neg2_keepdim", distinct({2, 5, 3}),
      [=](const Tensor& x) { return argmin(x, -2, yes); }, {-2}, true, fold_argmin, false, false);

  // var.
  add(
      "reduce.var/all_unbiased", uniform({3, 4}), [](const Tensor& x) { return var(x); }, {}, false,
      fold_var(1.0));
  add(
      "reduce.var/all_biased", uniform({3, 4}), [](const Tensor& x) { return var(x, {}, 0); }, {}, false,
      fold_var(0.0));
  add(
      "reduce.var/dim1", uniform({3, 5}), [](const Tensor& x) { return var(x, {1}); }, {1}, false,
      fold_var(1.0));
  add(
      "reduce.var/dims_keepdim_biased", uniform({2, 3, 4}),
      [=](const Tensor& x) {
        return var(x, {0, -1}, 0, yes);
      },
      {0, -1}, true, fold_var(0.0));
  add(
      "reduce.var/transposed", uniform({4, 3}), [](const Tensor& x) { return var(x, {0}, 1); }, {0}, false,
      fold_var(1.0), true);

  // sum_to, the gradient of broadcasting.
  cases.push_back({"reduce.sum_to/broadcast_dims",
                   {uniform({2, 3, 4})},
                   [](const Ts& x) {
                     return sum_to(x[0], {3, 1});
                   },
                   [](const Rs& x) {
                     RefArray out({3, 1});
                     for (std::int64_t i = 0; i < 2; ++i)
                       for (std::int64_t j = 0; j < 3; ++j)
                         for (std::int64_t k = 0; k < 4; ++k) out.at({j, 0}) += x[0].at({i, j, k});
                     return out;
                   }});

  // Large inputs (forward only: a gradient check would be quadratic in their size) for the kernel's
  // blocked paths: reduced axes split over tasks with partial results, column blocks, and the parallel loop.
  add(
      "reduce.sum/large_all", uniform({70000}), [](const Tensor& x) { return sum(x); }, {}, false, fold_sum,
      false, false);
  add(
      "reduce.mean/large_rows", uniform({3, 30000}), [](const Tensor& x) { return mean(x, {1}); }, {1}, false,
      fold_mean, false, false);
  add(
      "reduce.sum/large_columns", uniform({20000, 5}), [](const Tensor& x) { return sum(x, {0}); }, {0},
      false, fold_sum, false, false);
  add(
      "reduce.sum/large_wide", uniform({3, 9000}), [](const Tensor& x) { return sum(x, {0}); }, {0}, false,
      fold_sum, false, false);
  add(
      "reduce.max/large_rows", distinct({3, 30000}), [](const Tensor& x) { return max(x, 1); }, {1}, false,
      fold_max, false, false);
  add(
      "reduce.min/large_all", distinct({50000}), [](const Tensor& x) { return min(x); }, {}, false, fold_min,
      false, false);
  add(
      "reduce.argmax/large_columns", distinct({30000, 3}), [](const Tensor& x) { return argmax(x, 0); }, {0},
      false, fold_argmax, false, false);
  add(
      "reduce.argmin/large_rows", distinct({2, 40000}), [](const Tensor& x) { return argmin(x, 1); }, {1},
      false, fold_argmin, false, false);
  add(
      "reduce.sum/many_rows", uniform({5000, 7}), [](const Tensor& x) { return sum(x, {1}); }, {1}, false,
      fold_sum, false, false);
  return cases;
}

}  // namespace lockstep::test
