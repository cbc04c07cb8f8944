// Op cases: matmul for every shape combination (dot, matrix-vector, batched with broadcasting, transposed and
// strided operands) and linear.
#include <algorithm>

#include "src/ops/linalg.h"
#include "tests/support/reference.h"

namespace lockstep::test {
namespace {
using Ts = std::vector<Tensor>;
using Rs = std::vector<RefArray>;

// Swaps the last two dimensions.
RefArray ref_transpose_last(const RefArray& x) {
  const std::size_t nd = x.shape.size();
  const std::int64_t r = x.shape[nd - 2], c = x.shape[nd - 1],
                     batch = x.numel() / std::max<std::int64_t>(r * c, 1);
  Shape shape = x.shape;
  std::swap(shape[nd - 2], shape[nd - 1]);
  RefArray out(shape);
  for (std::int64_t b = 0; b < batch; ++b)
    for (std::int64_t i = 0; i < r; ++i)
      for (std::int64_t j = 0; j < c; ++j) out[b * r * c + j * r + i] = x[b * r * c + i * c + j];
  return out;
}

// torch.matmul semantics with plain loops: promote 1-D operands, broadcast the batch, drop the promoted dims.
RefArray ref_matmul(const RefArray& a, const RefArray& b) {
  const bool a1 = a.shape.size() == 1, b1 = b.shape.size() == 1;
  const Shape sa = a1 ? Shape{1, a.shape[0]} : a.shape, sb = b1 ? Shape{b.shape[0], 1} : b.shape;
  const std::int64_t m = sa[sa.size() - 2], k = sa[sa.size() - 1], n = sb[sb.size() - 1];
  const Shape ba(sa.begin(), sa.end() - 2), bb(sb.begin(), sb.end() - 2);
  const std::size_t nb = std::max(ba.size(), bb.size());
  Shape batch(nb);
  Shape pa(nb, 1), pb(nb, 1);  // batch shapes left-padded with 1
  std::copy(ba.begin(), ba.end(), pa.begin() + static_cast<std::ptrdiff_t>(nb - ba.size()));
  std::copy(bb.begin(), bb.end(), pb.begin() + static_cast<std::ptrdiff_t>(nb - bb.size()));
  for (std::size_t i = 0; i < nb; ++i) batch[i] = std::max(pa[i], pb[i]);
  Shape out_shape = batch;
  if (!a1) out_shape.push_back(m);
  if (!b1) out_shape.push_back(n);
  RefArray out(out_shape);
  const std::int64_t count = numel_of(batch);
  for (std::int64_t t = 0; t < count; ++t) {
    std::int64_t rem = t, ia = 0, ib = 0, sta = 1, stb = 1;
    for (std::size_t d = nb; d-- > 0;) {
      const std::int64_t idx = rem % batch[d];
      rem /= batch[d];
      ia += (pa[d] == 1 ? 0 : idx) * sta;
      ib += (pb[d] == 1 ? 0 : idx) * stb;
      sta *= pa[d];
      stb *= pb[d];
    }
    for (std::int64_t i = 0; i < m; ++i) {
      for (std::int64_t j = 0; j < n; ++j) {
        double s = 0;
        for (std::int64_t p = 0; p < k; ++p) s += a[ia * m * k + i * k + p] * b[ib * k * n + p * n + j];
        out[t * m * n + i * n + j] = s;
      }
    }
  }
  return out;
}

// x [..., in] @ w [out, in]^T + bias [out].
RefArray ref_linear(const RefArray& x, const RefArray& w, const RefArray* bias) {
  RefArray y = ref_matmul(x, ref_transpose_last(w));
  if (bias) {
    const std::int64_t n = w.size(0);
    for (std::int64_t i = 0; i < y.numel(); ++i) y[i] += (*bias)[i % n];
  }
  return y;
}
}  // namespace

LOCKSTEP_OP_CASES(linalg) {
  std::vector<OpCase> cases;
  auto mm = [&](std::string name, Shape a, Shape b) {
    cases.push_back({name,
                     {uniform(a), uniform(b)},
                     [](const Ts& x) { return matmul(x[0], x[1]); },
                     [](const Rs& x) { return ref_matmul(x[0], x[1]); }});
  };
  mm("linalg.matmul/dot", {5}, {5});
  mm("linalg.matmul/matrix_vector", {3, 4}, {4});
  mm("linalg.matmul/vector_matrix", {4}, {4, 3});
  mm("linalg.matmul/matrix_matrix", {3, 4}, {4, 5});
  mm("linalg.matmul/odd_sizes", {1, 7}, {7, 1});
  mm("linalg.matmul/batched_times_matrix", {2, 3, 4}, {4, 5});
  mm("linalg.matmul/batched_same", {2, 3, 4}, {2, 4, 5});
  mm("linalg.matmul/batch1_broadcast", {1, 3, 4}, {2, 4, 5});
  mm("linalg.matmul/batch_broadcast_4d", {2, 1, 3, 4}, {3, 4, 2});
  mm("linalg.matmul/matrix_times_batched", {3, 4}, {2, 4, 5});
  mm("linalg.matmul/vector_times_batched", {4}, {2, 4, 3});
  mm("linalg.matmul/batched_times_vector", {2, 3, 4}, {4});
  mm("linalg.matmul/4d_times_matrix", {2, 2, 3, 4}, {4, 2});
  // Transposed operands (passed to gemm with a Transpose flag) and a strided one (copied).
  cases.push_back({"linalg.matmul/transposed_a",
                   {uniform({4, 3}), uniform({4, 5})},
                   [](const Ts& x) { return matmul(x[0].transpose(0, 1), x[1]); },
                   [](const Rs& x) { return ref_matmul(ref_transpose_last(x[0]), x[1]); }});
  cases.push_back({"linalg.matmul/transposed_b_batched",
                   {uniform({2, 3, 4}), uniform({2, 5, 4})},
                   [](const Ts& x) { return matmul(x[0], x[1].transpose(-1, -2)); },
                   [](const Rs& x) { return ref_matmul(x[0], ref_transpose_last(x[1])); }});
  cases.push_back(
      {"linalg.matmul/transposed_both_broadcast",
       {uniform({1, 4, 3}), uniform({2, 5, 4})},
       [](const Ts& x) { return matmul(x[0].transpose(1, 2), x[1].transpose(1, 2)); },
       [](const Rs& x) { return ref_matmul(ref_transpose_last(x[0]), ref_transpose_last(x[1])); }});
  cases.push_back({"linalg.matmul/strided_a",
                   {uniform({3, 8}), uniform({4, 2})},
                   [](const Ts& x) { return matmul(x[0].slice(1, 0, 8, 2), x[1]); },
                   [](const Rs& x) {
                     RefArray a({3, 4});
                     for (std::int64_t i = 0; i < 3; ++i)
                       for (std::int64_t j = 0; j < 4; ++j) a.at({i, j}) = x[0].at({i, 2 * j});
                     return ref_matmul(a, x[1]);
                   }});
  cases.push_back({"linalg.matmul/batched_permuted_a",
                   {uniform({3, 2, 4}), uniform({4, 5})},
                   [](const Ts& x) { return matmul(x[0].transpose(0, 1), x[1]); },
                   [](const Rs& x) {
                     RefArray a({2, 3, 4});
                     for (std::int64_t i = 0; i < 3; ++i)
                       for (std::int64_t b = 0; b < 2; ++b)
                         for (std::int64_t j = 0; j < 4; ++j) a.at({b, i, j}) = x[0].at({i, b, j});
                     return ref_matmul(a, x[1]);
                   }});

  // linear.
  cases.push_back({"linalg.linear/bias",
                   {uniform({5, 4}), uniform({3, 4}), uniform({3})},
                   [](const Ts& x) { return linear(x[0], x[1], x[2]); },
                   [](const Rs& x) { return ref_linear(x[0], x[1], &x[2]); }});
  cases.push_back({"linalg.linear/no_bias",
                   {uniform({5, 4}), uniform({3, 4})},
                   [](const Ts& x) { return linear(x[0], x[1]); },
                   [](const Rs& x) { return ref_linear(x[0], x[1], nullptr); }});
  cases.push_back({"linalg.linear/3d_input",
                   {uniform({2, 3, 4}), uniform({5, 4}), uniform({5})},
                   [](const Ts& x) { return linear(x[0], x[1], x[2]); },
                   [](const Rs& x) { return ref_linear(x[0], x[1], &x[2]); }});
  cases.push_back({"linalg.linear/1d_input",
                   {uniform({4}), uniform({3, 4}), uniform({3})},
                   [](const Ts& x) { return linear(x[0], x[1], x[2]); },
                   [](const Rs& x) { return ref_linear(x[0], x[1], &x[2]); }});
  cases.push_back({"linalg.linear/transposed_weight",
                   {uniform({5, 4}), uniform({4, 3}), uniform({3})},
                   [](const Ts& x) { return linear(x[0], x[1].transpose(0, 1), x[2]); },
                   [](const Rs& x) { return ref_linear(x[0], ref_transpose_last(x[1]), &x[2]); }});
  cases.push_back({"linalg.linear/transposed_input",
                   {uniform({4, 5}), uniform({3, 4})},
                   [](const Ts& x) { return linear(x[0].transpose(0, 1), x[1]); },
                   [](const Rs& x) { return ref_linear(ref_transpose_last(x[0]), x[1], nullptr); }});
  return cases;
}

}  // namespace lockstep::test
