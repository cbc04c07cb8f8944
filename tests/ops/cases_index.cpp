// Op cases: index_select, index_add, gather, scatter_add and embedding, with repeated indices (whose
// gradients must accumulate), negative dimensions, strided inputs and indices smaller than the tensor.
#include <functional>

#include "src/ops/elementwise.h"
#include "src/ops/index.h"
#include "src/tensor/factories.h"
#include "tests/support/reference.h"

namespace lockstep::test {
namespace {
using Ts = std::vector<Tensor>;
using Rs = std::vector<RefArray>;

// Calls fn(multi-index) for every position of `shape`, row-major.
void for_each_index(const Shape& shape, const std::function<void(const Index&)>& fn) {
  Index idx(shape.size(), 0);
  for (std::int64_t k = 0; k < numel_of(shape); ++k) {
    fn(idx);
    for (std::size_t d = shape.size(); d-- > 0;) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
  }
}

Tensor i64(const Index& values, const Shape& shape) { return from_vector(values, shape); }

RefArray transposed(const RefArray& x) {
  RefArray out({x.shape[1], x.shape[0]});
  for (std::int64_t i = 0; i < x.shape[0]; ++i)
    for (std::int64_t j = 0; j < x.shape[1]; ++j) out.at({j, i}) = x.at({i, j});
  return out;
}

// x's entries at `idx` along d.
RefArray index_select_ref(const RefArray& x, std::size_t d, const Index& idx) {
  Shape shape = x.shape;
  shape[d] = static_cast<std::int64_t>(idx.size());
  RefArray out(shape);
  for_each_index(shape, [&](const Index& o) {
    Index s = o;
    s[d] = idx[static_cast<std::size_t>(o[d])];
    out[flat_of(shape, o)] = x[flat_of(x.shape, s)];
  });
  return out;
}

RefArray index_add_ref(const RefArray& x, std::size_t d, const Index& idx, const RefArray& src) {
  RefArray out = x;
  for_each_index(src.shape, [&](const Index& s) {
    Index o = s;
    o[d] = idx[static_cast<std::size_t>(s[d])];
    out[flat_of(x.shape, o)] += src[flat_of(src.shape, s)];
  });
  return out;
}

RefArray gather_ref(const RefArray& x, std::size_t d, const RefArray& index) {
  RefArray out(index.shape);
  for_each_index(index.shape, [&](const Index& i) {
    Index s = i;
    s[d] = static_cast<std::int64_t>(index[flat_of(index.shape, i)]);
    out[flat_of(index.shape, i)] = x[flat_of(x.shape, s)];
  });
  return out;
}

RefArray scatter_add_ref(const RefArray& x, std::size_t d, const RefArray& index, const RefArray& src) {
  RefArray out = x;
  for_each_index(index.shape, [&](const Index& i) {
    Index o = i;
    o[d] = static_cast<std::int64_t>(index[flat_of(index.shape, i)]);
    out[flat_of(x.shape, o)] += src[flat_of(index.shape, i)];
  });
  return out;
}

}  // namespace

LOCKSTEP_OP_CASES(index) {
  std::vector<OpCase> cases;
  auto add = [&](std::string name, std::vector<InputSpec> inputs, std::function<Tensor(const Ts&)> fn,
                 std::function<RefArray(const Rs&)> ref) {
    cases.push_back({name, inputs, fn, ref});
  };

  // index_select
  const Index rep = {4, 0, 4, 2, 4};
  add(
      "index.index_select/dim0_repeated", {uniform({5, 3})},
      [rep](const Ts& x) { return index_select(x[0], 0, i64(rep, {5})); },
      [rep](const Rs& x) { return index_select_ref(x[0], 0, rep); });
  const Index mid = {3, 3, 0};
  add(
      "index.index_select/middle_dim", {uniform({2, 4, 3})},
      [mid](const Ts& x) { return index_select(x[0], 1, i64(mid, {3})); },
      [mid](const Rs& x) { return index_select_ref(x[0], 1, mid); });
  add(
      "index.index_select/last_dim_random", {uniform({3, 5}), index({7}, 5)},
      [](const Ts& x) { return index_select(x[0], -1, x[1]); },
      [](const Rs& x) {
        Index idx;
        for (double v : x[1].data) idx.push_back(static_cast<std::int64_t>(v));
        return index_select_ref(x[0], 1, idx);
      });
  const Index tr = {1, 3, 1};
  add(
      "index.index_select/transposed_input", {uniform({3, 4})},
      [tr](const Ts& x) { return index_select(x[0].transpose(0, 1), 0, i64(tr, {3})); },
      [tr](const Rs& x) { return index_select_ref(transposed(x[0]), 0, tr); });
  add(
      "index.index_select/empty_index", {uniform({3, 2})},
      [](const Ts& x) { return index_select(x[0], 0, i64({}, {0})); },
      [](const Rs& x) { return index_select_ref(x[0], 0, {}); });

  // index_add
  const Index add0 = {1, 3, 1, 0, 1};
  add(
      "index.index_add/dim0_repeated", {uniform({4, 3}), uniform({5, 3})},
      [add0](const Ts& x) { return index_add(x[0], 0, i64(add0, {5}), x[1]); },
      [add0](const Rs& x) { return index_add_ref(x[0], 0, add0, x[1]); });
  const Index add1 = {2, 2};
  add(
      "index.index_add/middle_dim", {uniform({2, 3, 4}), uniform({2, 2, 4})},
      [add1](const Ts& x) { return index_add(x[0], -2, i64(add1, {2}), x[1]); },
      [add1](const Rs& x) { return index_add_ref(x[0], 1, add1, x[1]); });
  const Index add2 = {0, 3, 0};
  add(
      "index.index_add/last_dim", {uniform({3, 4}), uniform({3, 3})},
      [add2](const Ts& x) { return index_add(x[0], 1, i64(add2, {3}), x[1]); },
      [add2](const Rs& x) { return index_add_ref(x[0], 1, add2, x[1]); });

  // gather
  add(
      "index.gather/dim1", {uniform({3, 4}), index({3, 5}, 4)},
      [](const Ts& x) { return gather(x[0], 1, x[1]); },
      [](const Rs& x) { return gather_ref(x[0], 1, x[1]); });
  const Index g0 = {3, 3, 3, 0};
  add(
      "index.gather/dim0_smaller_index_repeated", {uniform({4, 3})},
      [g0](const Ts& x) {
        return gather(x[0], 0, i64(g0, {2, 2}));
      },
      [g0](const Rs& x) {
        RefArray idx({2, 2});
        for (std::size_t i = 0; i < g0.size(); ++i) idx.data[i] = static_cast<double>(g0[i]);
        return gather_ref(x[0], 0, idx);
      });
  add(
      "index.gather/3d_negative_dim", {uniform({2, 3, 4}), index({2, 3, 6}, 4)},
      [](const Ts& x) { return gather(x[0], -1, x[1]); },
      [](const Rs& x) { return gather_ref(x[0], 2, x[1]); });
  add(
      "index.gather/3d_middle_dim", {uniform({2, 3, 4}), index({2, 5, 3}, 3)},
      [](const Ts& x) { return gather(x[0], 1, x[1]); },
      [](const Rs& x) { return gather_ref(x[0], 1, x[1]); });
  add(
      "index.gather/transposed_input", {uniform({4, 3}), index({3, 2}, 4)},
      [](const Ts& x) { return gather(x[0].transpose(0, 1), 1, x[1]); },
      [](const Rs& x) { return gather_ref(transposed(x[0]), 1, x[1]); });

  // scatter_add
  add(
      "index.scatter_add/dim0", {uniform({3, 4}), index({5, 4}, 3), uniform({5, 4})},
      [](const Ts& x) { return scatter_add(x[0], 0, x[1], x[2]); },
      [](const Rs& x) { return scatter_add_ref(x[0], 0, x[1], x[2]); });
  add(
      "index.scatter_add/dim1_smaller_index", {uniform({3, 5}), index({2, 3}, 5), uniform({2, 3})},
      [](const Ts& x) { return scatter_add(x[0], 1, x[1], x[2]); },
      [](const Rs& x) { return scatter_add_ref(x[0], 1, x[1], x[2]); });
  const Index s3 = {1, 1, 1, 1, 0, 1};
  add(
      "index.scatter_add/3d_repeated", {uniform({2, 2, 3}), uniform({2, 1, 3})},
      [s3](const Ts& x) {
        return scatter_add(x[0], 1, i64(s3, {2, 1, 3}), x[1]);
      },
      [s3](const Rs& x) {
        RefArray idx({2, 1, 3});
        for (std::size_t i = 0; i < s3.size(); ++i) idx.data[i] = static_cast<double>(s3[i]);
        return scatter_add_ref(x[0], 1, idx, x[1]);
      });

  // embedding
  const Index tokens = {5, 0, 2, 5, 5, 1, 0, 3};
  add(
      "index.embedding/2d_indices_repeated", {uniform({6, 3})},
      [tokens](const Ts& x) {
        return embedding(x[0], i64(tokens, {2, 4}));
      },
      [tokens](const Rs& x) {
        RefArray rows = index_select_ref(x[0], 0, tokens);
        rows.shape = {2, 4, 3};
        return rows;
      });
  add(
      "index.embedding/scalar_index", {uniform({4, 2})},
      [](const Ts& x) { return embedding(x[0], i64({2}, {})); },
      [](const Rs& x) {
        RefArray row = index_select_ref(x[0], 0, {2});
        row.shape = {2};
        return row;
      });
  add(
      "index.embedding/random_1d", {uniform({7, 4}), index({9}, 7)},
      [](const Ts& x) { return embedding(x[0], x[1]); },
      [](const Rs& x) {
        Index idx;
        for (double v : x[1].data) idx.push_back(static_cast<std::int64_t>(v));
        return index_select_ref(x[0], 0, idx);
      });
  return cases;
}

}  // namespace lockstep::test
