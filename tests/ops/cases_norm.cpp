// Op cases: batch norm (train and eval, with and without affine), layer norm, instance norm, and dropout with
// a fixed seed whose reference recomputes the mask from Philox directly.
#include <algorithm>
#include <cmath>

#include "src/core/rng.h"
#include "src/ops/dropout.h"
#include "src/ops/norm.h"
#include "tests/support/op_case.h"

namespace lockstep::test {
namespace {
using Ts = std::vector<Tensor>;
using Rs = std::vector<RefArray>;

// Naive batch norm over x [N, C, *]: statistics from the batch (train) or the given mean/var (eval).
// w, b, mean, var point at [C] arrays or are null.
RefArray ref_batch_norm(const RefArray& x, const RefArray* w, const RefArray* b, const RefArray* mean,
                        const RefArray* var, double eps) {
  const std::int64_t n = x.size(0), c = x.size(1), l = x.numel() / std::max<std::int64_t>(n * c, 1);
  RefArray y(x.shape);
  for (std::int64_t ch = 0; ch < c; ++ch) {
    double m = 0.0, v = 0.0;
    if (mean != nullptr) {
      m = (*mean)[ch];
      v = (*var)[ch];
    } else {
      for (std::int64_t i = 0; i < n; ++i)
        for (std::int64_t j = 0; j < l; ++j) m += x[(i * c + ch) * l + j];
      m /= static_cast<double>(n * l);
      for (std::int64_t i = 0; i < n; ++i)
        for (std::int64_t j = 0; j < l; ++j)
          v += (x[(i * c + ch) * l + j] - m) * (x[(i * c + ch) * l + j] - m);
      v /= static_cast<double>(n * l);
    }
    const double scale = (w != nullptr ? (*w)[ch] : 1.0) / std::sqrt(v + eps);
    const double shift = b != nullptr ? (*b)[ch] : 0.0;
    for (std::int64_t i = 0; i < n; ++i)
      for (std::int64_t j = 0; j < l; ++j) {
        const std::int64_t k = (i * c + ch) * l + j;
        y[k] = (x[k] - m) * scale + shift;
      }
  }
  return y;
}

// Naive layer norm over the last `k` dimensions of x.
RefArray ref_layer_norm(const RefArray& x, std::size_t k, const RefArray* w, const RefArray* b, double eps) {
  std::int64_t cols = 1;
  for (std::size_t d = x.shape.size() - k; d < x.shape.size(); ++d) cols *= x.shape[d];
  const std::int64_t rows = x.numel() / cols;
  RefArray y(x.shape);
  for (std::int64_t r = 0; r < rows; ++r) {
    double m = 0.0, v = 0.0;
    for (std::int64_t j = 0; j < cols; ++j) m += x[r * cols + j];
    m /= static_cast<double>(cols);
    for (std::int64_t j = 0; j < cols; ++j) v += (x[r * cols + j] - m) * (x[r * cols + j] - m);
    v /= static_cast<double>(cols);
    for (std::int64_t j = 0; j < cols; ++j) {
      const double h = (x[r * cols + j] - m) / std::sqrt(v + eps);
      y[r * cols + j] = h * (w != nullptr ? (*w)[j] : 1.0) + (b != nullptr ? (*b)[j] : 0.0);
    }
  }
  return y;
}

// Naive instance norm over x [N, C, *]: each (n, c) by its own mean and biased variance over the trailing
// values, then w[c], b[c] when given.
RefArray ref_instance_norm(const RefArray& x, const RefArray* w, const RefArray* b, double eps) {
  const std::int64_t n = x.size(0), c = x.size(1), l = x.numel() / std::max<std::int64_t>(n * c, 1);
  RefArray y(x.shape);
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t ch = 0; ch < c; ++ch) {
      const std::int64_t base = (i * c + ch) * l;
      double m = 0.0, v = 0.0;
      for (std::int64_t j = 0; j < l; ++j) m += x[base + j];
      m /= static_cast<double>(l);
      for (std::int64_t j = 0; j < l; ++j) v += (x[base + j] - m) * (x[base + j] - m);
      v /= static_cast<double>(l);
      for (std::int64_t j = 0; j < l; ++j)
        y[base + j] = (x[base + j] - m) / std::sqrt(v + eps) * (w != nullptr ? (*w)[ch] : 1.0) +
                      (b != nullptr ? (*b)[ch] : 0.0);
    }
  return y;
}

// Inverted dropout of x (row-major) with the kernel contract: element i keeps when
// (Philox(seed, offset + i / 4)[i % 4] + 1) / 2^32 <= 1 - p.
RefArray ref_dropout(const RefArray& x, double p, std::uint64_t seed, std::uint64_t offset) {
  RefArray y(x.shape);
  const double keep = 1.0 - p;
  for (std::int64_t i = 0; i < x.numel(); ++i) {
    const auto bits =
        philox4x32(seed, 0, offset + static_cast<std::uint64_t>(i / 4))[static_cast<std::size_t>(i % 4)];
    const double u = (static_cast<double>(bits) + 1.0) / 4294967296.0;
    y[i] = u <= keep ? x[i] / keep : 0.0;
  }
  return y;
}

RefArray transposed(const RefArray& x) {
  RefArray t({x.size(1), x.size(0)});
  for (std::int64_t i = 0; i < x.size(0); ++i)
    for (std::int64_t j = 0; j < x.size(1); ++j) t.at({j, i}) = x.at({i, j});
  return t;
}

// x [A, B, C] -> [A, C, B].
RefArray swap_last(const RefArray& x) {
  RefArray t({x.size(0), x.size(2), x.size(1)});
  for (std::int64_t a = 0; a < x.size(0); ++a)
    for (std::int64_t b = 0; b < x.size(1); ++b)
      for (std::int64_t c = 0; c < x.size(2); ++c) t.at({a, c, b}) = x.at({a, b, c});
  return t;
}

InputSpec positive(Shape shape) { return constant_input(uniform(std::move(shape), 0.5, 1.5)); }

}  // namespace

LOCKSTEP_OP_CASES(norm) {
  std::vector<OpCase> cases;
  const Tensor none;

  // Batch norm, training: inputs x, weight, bias, running_mean, running_var (the running statistics are
  // updated in place but do not affect the output).
  auto bn_train = [&](std::string name, Shape x_shape, double eps) {
    const std::int64_t c = x_shape[1];
    cases.push_back(
        {name,
         {uniform(x_shape), uniform({c}, 0.5, 1.5), uniform({c}), constant_input(uniform({c})),
          positive({c})},
         [eps](const Ts& x) {
           return batch_norm(x[0], x[1], x[2], x[3], x[4], BatchNormMode::kTrain, 0.1, eps);
         },
         [eps](const Rs& x) { return ref_batch_norm(x[0], &x[1], &x[2], nullptr, nullptr, eps); }});
  };
  bn_train("norm.batch_norm/train_2d", {6, 3}, 1e-5);
  bn_train("norm.batch_norm/train_3d", {4, 3, 5}, 1e-5);
  bn_train("norm.batch_norm/train_4d", {3, 2, 3, 2}, 1e-5);
  bn_train("norm.batch_norm/train_4d_big_eps", {2, 3, 2, 2}, 0.5);
  cases.push_back(
      {"norm.batch_norm/train_2d_no_affine",
       {uniform({5, 4})},
       [none](const Ts& x) { return batch_norm(x[0], none, none, none, none, BatchNormMode::kTrain); },
       [](const Rs& x) { return ref_batch_norm(x[0], nullptr, nullptr, nullptr, nullptr, 1e-5); }});
  cases.push_back(
      {"norm.batch_norm/train_4d_no_affine",
       {uniform({2, 3, 2, 3})},
       [none](const Ts& x) { return batch_norm(x[0], none, none, none, none, BatchNormMode::kTrain); },
       [](const Rs& x) { return ref_batch_norm(x[0], nullptr, nullptr, nullptr, nullptr, 1e-5); }});
  cases.push_back(
      {"norm.batch_norm/train_4d_no_affine_tracked",
       {uniform({3, 2, 2, 2}), constant_input(uniform({2})), positive({2})},
       [none](const Ts& x) { return batch_norm(x[0], none, none, x[1], x[2], BatchNormMode::kTrain, 0.3); },
       [](const Rs& x) { return ref_batch_norm(x[0], nullptr, nullptr, nullptr, nullptr, 1e-5); }});
  // x [3, 4, 2] permuted to [3, 2, 4]: a non-contiguous input with C = 2, L = 4.
  cases.push_back(
      {"norm.batch_norm/train_permuted",
       {uniform({3, 4, 2}), uniform({2}, 0.5, 1.5), uniform({2})},
       [none](const Ts& x) {
         return batch_norm(x[0].permute({0, 2, 1}), x[1], x[2], none, none, BatchNormMode::kTrain);
       },
       [](const Rs& x) { return ref_batch_norm(swap_last(x[0]), &x[1], &x[2], nullptr, nullptr, 1e-5); }});
  cases.push_back(
      {"norm.batch_norm/train_offset_mean",
       {uniform({8, 2}, 3.0, 5.0), uniform({2}, 0.5, 1.5), uniform({2})},
       [none](const Ts& x) { return batch_norm(x[0], x[1], x[2], none, none, BatchNormMode::kTrain); },
       [](const Rs& x) { return ref_batch_norm(x[0], &x[1], &x[2], nullptr, nullptr, 1e-5); }});

  // Training batch norm with its fused epilogue, relu(y + residual): inputs x, weight, bias (and residual).
  const auto then = [](RefArray y, const RefArray* residual, bool relu) {
    for (std::int64_t i = 0; i < y.numel(); ++i) {
      if (residual != nullptr) y[i] += (*residual)[i];
      if (relu) y[i] = std::max(y[i], 0.0);
    }
    return y;
  };
  const auto train = [none](const Ts& x, const BatchNormEpilogue& epilogue) {
    return batch_norm_train(x[0], x[1], x[2], none, none, 0.1, 1e-5, nullptr, "batch_norm", epilogue);
  };
  cases.push_back({"norm.batch_norm/train_4d_then_relu",
                   {uniform({3, 2, 3, 2}), uniform({2}, 0.5, 1.5), uniform({2})},
                   [train](const Ts& x) { return train(x, then_relu()); },
                   [then](const Rs& x) {
                     return then(ref_batch_norm(x[0], &x[1], &x[2], nullptr, nullptr, 1e-5), nullptr, true);
                   }});
  cases.push_back({"norm.batch_norm/train_4d_residual_then_relu",
                   {uniform({3, 2, 3, 2}), uniform({2}, 0.5, 1.5), uniform({2}), uniform({3, 2, 3, 2})},
                   [train](const Ts& x) { return train(x, then_relu(x[3])); },
                   [then](const Rs& x) {
                     return then(ref_batch_norm(x[0], &x[1], &x[2], nullptr, nullptr, 1e-5), &x[3], true);
                   }});
  cases.push_back({"norm.batch_norm/train_2d_residual",
                   {uniform({6, 3}), uniform({3}, 0.5, 1.5), uniform({3}), uniform({6, 3})},
                   [train](const Ts& x) {
                     return train(x, {x[3], false});
                   },
                   [then](const Rs& x) {
                     return then(ref_batch_norm(x[0], &x[1], &x[2], nullptr, nullptr, 1e-5), &x[3], false);
                   }});

  // Batch norm, evaluation with given running statistics.
  auto bn_eval = [&](std::string name, Shape x_shape) {
    const std::int64_t c = x_shape[1];
    cases.push_back(
        {name,
         {uniform(x_shape), uniform({c}, 0.5, 1.5), uniform({c}), constant_input(uniform({c})),
          positive({c})},
         [](const Ts& x) { return batch_norm(x[0], x[1], x[2], x[3], x[4], BatchNormMode::kEval); },
         [](const Rs& x) { return ref_batch_norm(x[0], &x[1], &x[2], &x[3], &x[4], 1e-5); }});
  };
  bn_eval("norm.batch_norm/eval_2d", {5, 3});
  bn_eval("norm.batch_norm/eval_4d", {2, 3, 2, 2});
  cases.push_back({"norm.batch_norm/eval_3d_no_affine",
                   {uniform({3, 2, 4}), constant_input(uniform({2})), positive({2})},
                   [none](const Ts& x) {
                     return batch_norm(x[0], none, none, x[1], x[2], BatchNormMode::kEval, 0.1, 1e-3);
                   },
                   [](const Rs& x) { return ref_batch_norm(x[0], nullptr, nullptr, &x[1], &x[2], 1e-3); }});
  cases.push_back(
      {"norm.batch_norm/eval_single_sample",
       {uniform({1, 3}), uniform({3}, 0.5, 1.5), uniform({3}), constant_input(uniform({3})), positive({3})},
       [](const Ts& x) { return batch_norm(x[0], x[1], x[2], x[3], x[4], BatchNormMode::kEval); },
       [](const Rs& x) { return ref_batch_norm(x[0], &x[1], &x[2], &x[3], &x[4], 1e-5); }});

  // Layer norm over the last one or two dimensions.
  cases.push_back({"norm.layer_norm/last1_affine",
                   {uniform({4, 5}), uniform({5}, 0.5, 1.5), uniform({5})},
                   [](const Ts& x) { return layer_norm(x[0], {5}, x[1], x[2]); },
                   [](const Rs& x) { return ref_layer_norm(x[0], 1, &x[1], &x[2], 1e-5); }});
  cases.push_back({"norm.layer_norm/last1_plain",
                   {uniform({3, 2, 6})},
                   [](const Ts& x) { return layer_norm(x[0], {6}); },
                   [](const Rs& x) { return ref_layer_norm(x[0], 1, nullptr, nullptr, 1e-5); }});
  cases.push_back({"norm.layer_norm/last2_affine",
                   {uniform({3, 3, 4}), uniform({3, 4}, 0.5, 1.5), uniform({3, 4})},
                   [](const Ts& x) {
                     return layer_norm(x[0], {3, 4}, x[1], x[2]);
                   },
                   [](const Rs& x) { return ref_layer_norm(x[0], 2, &x[1], &x[2], 1e-5); }});
  cases.push_back({"norm.layer_norm/last2_plain",
                   {uniform({2, 3, 4})},
                   [](const Ts& x) {
                     return layer_norm(x[0], {3, 4});
                   },
                   [](const Rs& x) { return ref_layer_norm(x[0], 2, nullptr, nullptr, 1e-5); }});
  cases.push_back({"norm.layer_norm/all_dims_weight_only",
                   {uniform({2, 5}), uniform({2, 5}, 0.5, 1.5)},
                   [none](const Ts& x) {
                     return layer_norm(x[0], {2, 5}, x[1], none, 0.1);
                   },
                   [](const Rs& x) { return ref_layer_norm(x[0], 2, &x[1], nullptr, 0.1); }});
  cases.push_back({"norm.layer_norm/transposed",
                   {uniform({7, 3}), uniform({7}, 0.5, 1.5), uniform({7})},
                   [](const Ts& x) { return layer_norm(x[0].transpose(0, 1), {7}, x[1], x[2]); },
                   [](const Rs& x) { return ref_layer_norm(transposed(x[0]), 1, &x[1], &x[2], 1e-5); }});

  // Instance norm over the trailing dimensions of each (sample, channel), with and without affine.
  cases.push_back({"norm.instance_norm/4d_affine",
                   {uniform({2, 3, 3, 2}), uniform({3}, 0.5, 1.5), uniform({3})},
                   [](const Ts& x) { return instance_norm(x[0], x[1], x[2]); },
                   [](const Rs& x) { return ref_instance_norm(x[0], &x[1], &x[2], 1e-5); }});
  cases.push_back({"norm.instance_norm/4d_plain",
                   {uniform({3, 2, 2, 3})},
                   [](const Ts& x) { return instance_norm(x[0]); },
                   [](const Rs& x) { return ref_instance_norm(x[0], nullptr, nullptr, 1e-5); }});
  cases.push_back({"norm.instance_norm/3d_weight_only_big_eps",
                   {uniform({2, 2, 5}), uniform({2}, 0.5, 1.5)},
                   [none](const Ts& x) { return instance_norm(x[0], x[1], none, 0.5); },
                   [](const Rs& x) { return ref_instance_norm(x[0], &x[1], nullptr, 0.5); }});
  cases.push_back({"norm.instance_norm/5d_bias_only_offset",
                   {uniform({1, 2, 2, 2, 2}, 3.0, 5.0), uniform({2})},
                   [none](const Ts& x) { return instance_norm(x[0], none, x[1]); },
                   [](const Rs& x) { return ref_instance_norm(x[0], nullptr, &x[1], 1e-5); }});
  // x [2, 4, 3] permuted to [2, 3, 4]: a non-contiguous input with C = 3, L = 4.
  cases.push_back({"norm.instance_norm/permuted",
                   {uniform({2, 4, 3}), uniform({3}, 0.5, 1.5), uniform({3})},
                   [](const Ts& x) {
                     return instance_norm(x[0].permute({0, 2, 1}), x[1], x[2]);
                   },
                   [](const Rs& x) { return ref_instance_norm(swap_last(x[0]), &x[1], &x[2], 1e-5); }});

  // Dropout with a fixed seed: forward and gradcheck see the same mask; the reference recomputes it.
  auto drop = [&](std::string name, InputSpec in, double p, std::uint64_t seed, std::uint64_t skip) {
    cases.push_back({name,
                     {in},
                     [p, seed, skip](const Ts& x) {
                       Generator gen(seed);
                       gen.take(skip);
                       return dropout(x[0], p, DropoutMode::kTrain, &gen);
                     },
                     [p, seed, skip](const Rs& x) { return ref_dropout(x[0], p, seed, skip); }});
  };
  drop("norm.dropout/p0_3", uniform({4, 7}), 0.3, 1234, 0);
  drop("norm.dropout/p0_5_odd_size_offset", uniform({3, 5, 3}), 0.5, 99, 17);
  drop("norm.dropout/p0_9", uniform({50}), 0.9, 7, 3);
  cases.push_back({"norm.dropout/transposed",
                   {uniform({5, 3})},
                   [](const Ts& x) {
                     Generator gen(42);
                     return dropout(x[0].transpose(0, 1), 0.25, DropoutMode::kTrain, &gen);
                   },
                   [](const Rs& x) { return ref_dropout(transposed(x[0]), 0.25, 42, 0); }});
  cases.push_back({"norm.dropout/p1_zeros",
                   {uniform({3, 4})},
                   [](const Ts& x) { return dropout(x[0], 1.0, DropoutMode::kTrain); },
                   [](const Rs& x) { return RefArray(x[0].shape, 0.0); }});
  cases.push_back({"norm.dropout/p0_identity",
                   {uniform({3, 4})},
                   [](const Ts& x) { return dropout(x[0], 0.0, DropoutMode::kTrain); },
                   [](const Rs& x) { return x[0]; }});
  cases.push_back({"norm.dropout/eval_identity",
                   {uniform({2, 3})},
                   [](const Ts& x) { return dropout(x[0], 0.5, DropoutMode::kEval); },
                   [](const Rs& x) { return x[0]; }});
  return cases;
}

}  // namespace lockstep::test
