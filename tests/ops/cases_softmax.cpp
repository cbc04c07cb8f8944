// Op cases: softmax and log_softmax along first, middle and last dimensions of 2-D to 4-D inputs (both the
// contiguous-row and the column-block kernel paths), strided inputs and wide logits.
#include <cmath>
#include <functional>

#include "src/ops/softmax.h"
#include "tests/support/reference.h"

namespace lockstep::test {
namespace {
using Ts = std::vector<Tensor>;
using Rs = std::vector<RefArray>;

enum class Space { kProb, kLog };

// Naive softmax (or log-softmax) of x along dimension d, in double, straight from the definition.
RefArray softmax_ref(const RefArray& x, std::size_t d, Space space) {
  std::int64_t outer = 1, inner = 1;
  for (std::size_t k = 0; k < d; ++k) outer *= x.shape[k];
  for (std::size_t k = d + 1; k < x.shape.size(); ++k) inner *= x.shape[k];
  const std::int64_t size = x.shape[d];
  RefArray out(x.shape);
  for (std::int64_t a = 0; a < outer; ++a) {
    for (std::int64_t c = 0; c < inner; ++c) {
      auto at = [&](std::int64_t i) { return (a * size + i) * inner + c; };
      double total = 0.0;
      for (std::int64_t i = 0; i < size; ++i) total += std::exp(x[at(i)]);
      for (std::int64_t i = 0; i < size; ++i)
        out[at(i)] = space == Space::kLog ? x[at(i)] - std::log(total) : std::exp(x[at(i)]) / total;
    }
  }
  return out;
}

RefArray transposed(const RefArray& x) {
  RefArray out({x.shape[1], x.shape[0]});
  for (std::int64_t i = 0; i < x.shape[0]; ++i)
    for (std::int64_t j = 0; j < x.shape[1]; ++j) out.at({j, i}) = x.at({i, j});
  return out;
}

}  // namespace

LOCKSTEP_OP_CASES(softmax) {
  std::vector<OpCase> cases;
  struct Geometry {
    const char* name;
    Shape shape;
    std::int64_t dim;
    double range;
  };
  const std::vector<Geometry> geometries = {
      {"2d_dim1", {3, 5}, 1, 2.0},
      {"2d_dim0", {4, 3}, 0, 2.0},
      {"2d_last_wide", {2, 6}, -1, 30.0},
      {"3d_dim0", {3, 2, 2}, 0, 2.0},
      {"3d_dim1", {2, 4, 3}, 1, 3.0},
      {"3d_last", {2, 3, 4}, -1, 2.0},
      {"4d_dim1", {2, 3, 2, 2}, 1, 2.0},
      {"4d_last", {2, 2, 3, 4}, -1, 2.0},
      {"4d_dim0", {3, 1, 2, 2}, 0, 2.0},
      {"3d_two_column_blocks", {1, 2, 130}, 1, 2.0},
      {"1d", {5}, 0, 2.0},
  };
  for (const auto& g : geometries) {
    const std::size_t d =
        static_cast<std::size_t>(g.dim < 0 ? g.dim + static_cast<std::int64_t>(g.shape.size()) : g.dim);
    const std::int64_t dim = g.dim;
    cases.push_back({std::string("softmax.softmax/") + g.name,
                     {uniform(g.shape, -g.range, g.range)},
                     [dim](const Ts& x) { return softmax(x[0], dim); },
                     [d](const Rs& x) { return softmax_ref(x[0], d, Space::kProb); }});
    cases.push_back({std::string("softmax.log_softmax/") + g.name,
                     {uniform(g.shape, -g.range, g.range)},
                     [dim](const Ts& x) { return log_softmax(x[0], dim); },
                     [d](const Rs& x) { return softmax_ref(x[0], d, Space::kLog); }});
  }
  cases.push_back({"softmax.softmax/transposed_input",
                   {uniform({3, 4})},
                   [](const Ts& x) { return softmax(x[0].transpose(0, 1), 1); },
                   [](const Rs& x) { return softmax_ref(transposed(x[0]), 1, Space::kProb); }});
  cases.push_back({"softmax.log_softmax/transposed_input",
                   {uniform({3, 4})},
                   [](const Ts& x) { return log_softmax(x[0].transpose(0, 1), 0); },
                   [](const Rs& x) { return softmax_ref(transposed(x[0]), 0, Space::kLog); }});
  cases.push_back({"softmax.softmax/scalar",
                   {uniform({})},
                   [](const Ts& x) { return softmax(x[0], 0); },
                   [](const Rs&) { return RefArray({}, 1.0); }});
  return cases;
}

}  // namespace lockstep::test
