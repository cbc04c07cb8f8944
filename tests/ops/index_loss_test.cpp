// Bad-input and numerical-edge tests for the shape, index, softmax and loss ops: typed errors naming the op,
// the shapes and the bad values; softmax and the losses at huge logits and saturated probabilities.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <string>

#include "src/ops/elementwise.h"
#include "src/ops/index.h"
#include "src/ops/loss.h"
#include "src/ops/reduce.h"
#include "src/ops/shape.h"
#include "src/ops/softmax.h"
#include "src/tensor/factories.h"
#include "tests/support/expect_error.h"

namespace lockstep {
namespace {

using test::expect_error;

Tensor i64(const std::vector<std::int64_t>& values, const Shape& shape) { return from_vector(values, shape); }

void expect_values(const Tensor& t, const std::vector<double>& want) {
  const std::vector<double> got = t.to_vector<double>();
  ASSERT_EQ(got.size(), want.size());
  for (std::size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i], want[i]) << "element " << i;
}

void expect_finite(const Tensor& t) {
  for (double v : t.to_vector<double>()) EXPECT_TRUE(std::isfinite(v)) << t;
}

TEST(IndexOps, OutOfRangeIndexNamesOpValueAndRange) {
  const Tensor x = zeros({3, 4});
  expect_error<IndexError>([&] { index_select(x, 0, i64({0, 5, 1}, {3})); }, {"index_select", "5", "[0, 2]"});
  expect_error<IndexError>([&] { index_select(x, 1, i64({-1}, {1})); }, {"index_select", "-1", "[0, 3]"});
  expect_error<IndexError>(
      [&] {
        index_add(x, 0, i64({3}, {1}), zeros({1, 4}));
      },
      {"index_add", "3", "[0, 2]"});
  expect_error<IndexError>([&] { gather(x, 1, i64({0, 4}, {1, 2})); }, {"gather", "4", "[0, 3]"});
  expect_error<IndexError>(
      [&] {
        scatter_add(x, 0, i64({7}, {1, 1}), zeros({1, 1}));
      },
      {"scatter_add", "7", "[0, 2]"});
  expect_error<IndexError>(
      [&] {
        embedding(zeros({10, 2}), i64({1, 10}, {2}));
      },
      {"embedding", "10", "[0, 9]", "[10, 2]"});
}

TEST(IndexOps, WrongIndexDtypeOrShape) {
  const Tensor x = zeros({3, 4});
  expect_error<TypeError>([&] { index_select(x, 0, zeros({2})); }, {"index_select", "i64", "f32"});
  expect_error<TypeError>([&] { embedding(zeros({5, 2}), zeros({3})); }, {"embedding", "i64"});
  expect_error<ValueError>([&] { index_select(x, 0, i64({0, 1}, {1, 2})); }, {"index_select", "[1, 2]"});
  expect_error<ValueError>([&] { gather(x, 0, i64({0, 1}, {2})); }, {"gather", "[2]", "[3, 4]"});
  expect_error<ValueError>(
      [&] {
        gather(x, 0, i64({0, 0, 0, 0, 0}, {1, 5}));
      },
      {"gather", "[1, 5]", "[3, 4]"});
  expect_error<ValueError>(
      [&] {
        index_add(x, 1, i64({0}, {1}), zeros({3, 2}));
      },
      {"index_add", "[3, 1]", "[3, 2]"});
  expect_error<ValueError>(
      [&] {
        scatter_add(x, 0, i64({0, 1}, {1, 2}), zeros({2, 1}));
      },
      {"scatter_add", "[1, 2]", "[2, 1]"});
  expect_error<ValueError>([&] { embedding(zeros({5}), i64({0}, {1})); }, {"embedding", "[5]"});
}

TEST(IndexOps, RepeatedIndicesAccumulateGradients) {
  Tensor w = from_vector<double>({1, 2, 3, 4, 5, 6}, {3, 2}).requires_grad_();
  sum(embedding(w, i64({2, 0, 2, 2}, {2, 2}))).backward();
  expect_values(w.grad(), {1, 1, 0, 0, 3, 3});
  Tensor x = from_vector<double>({1, 2, 3}, {3}).requires_grad_();
  sum(gather(x, 0, i64({1, 1, 0, 1}, {4}))).backward();
  expect_values(x.grad(), {1, 3, 0});
}

TEST(ShapeOps, MismatchedShapesAndDtypes) {
  expect_error<ValueError>([] { cat({zeros({2, 3}), zeros({2, 4})}, 0); }, {"cat", "[2, 3]", "[2, 4]"});
  expect_error<ValueError>([] { cat(std::vector<Tensor>{}); }, {"cat", "empty"});
  expect_error<TypeError>([] { cat({zeros({2}), zeros({2}, DType::f64)}); }, {"cat", "f32", "f64"});
  expect_error<ValueError>([] { stack({zeros({2, 3}), zeros({3, 2})}, 1); }, {"stack", "[2, 3]", "[3, 2]"});
  expect_error<IndexError>([] { cat({zeros({2, 3})}, 2); }, {"cat"});
}

TEST(ShapeOps, ToF32BackwardReturnsF64Gradient) {
  Tensor x = from_vector<double>({0.5, -1.25, 2.0}, {3}).requires_grad_();
  sum(x.to(DType::f32) * 2.0).backward();
  ASSERT_EQ(x.grad().dtype(), DType::f64);
  expect_values(x.grad(), {2, 2, 2});
}

TEST(Softmax, LargeLogitsAreFiniteAndExactInF32) {
  const Tensor row = from_vector<float>({1000.0f, 0.0f, -1000.0f}, {1, 3});
  expect_values(softmax(row, 1), {1, 0, 0});
  expect_values(log_softmax(row, 1), {0, -1000, -2000});
  // The same values down a column take the column-block kernel path.
  const Tensor column = row.transpose(0, 1).contiguous();
  expect_values(softmax(column, 0), {1, 0, 0});
  expect_values(log_softmax(column, 0), {0, -1000, -2000});
  const float inf = std::numeric_limits<float>::infinity();
  expect_values(softmax(from_vector<float>({0.0f, -inf, 5.0f, 5.0f}, {2, 2}), 1), {1, 0, 0.5, 0.5});

  Tensor x = from_vector<float>({1000.0f, 0.0f, -1000.0f, 3.0f, 3.0f, 3.0f}, {2, 3}).requires_grad_();
  const Tensor w = from_vector<float>({1.0f, 2.0f, 3.0f, 1.0f, 0.0f, -1.0f}, {2, 3});
  sum(log_softmax(x, 1) * w).backward();
  expect_finite(x.grad());
  x.set_grad(Tensor());
  sum(softmax(x, 1) * w).backward();
  expect_finite(x.grad());
}

TEST(Softmax, RejectsIntegerInputAndBadDim) {
  expect_error<TypeError>([] { softmax(i64({1, 2}, {2}), 0); }, {"softmax", "i64"});
  expect_error<IndexError>([] { log_softmax(zeros({2, 3}), 2); }, {"log_softmax"});
}

TEST(Losses, MismatchedShapesNameBothShapes) {
  expect_error<ValueError>([] { mse_loss(zeros({2, 3}), zeros({3, 2})); }, {"mse_loss", "[2, 3]", "[3, 2]"});
  expect_error<ValueError>([] { l1_loss(zeros({4}), zeros({4, 1})); }, {"l1_loss", "[4]", "[4, 1]"});
  expect_error<ValueError>([] { binary_cross_entropy(zeros({2}), zeros({3})); },
                           {"binary_cross_entropy", "[2]", "[3]"});
  expect_error<ValueError>([] { kl_div(zeros({2, 2}), zeros({2})); }, {"kl_div", "[2, 2]", "[2]"});
  expect_error<ValueError>(
      [] {
        gaussian_kl(zeros({2, 3}), zeros({2, 4}));
      },
      {"gaussian_kl", "[2, 3]", "[2, 4]"});
  expect_error<ValueError>([] { nll_loss(zeros({4, 3}), i64({0, 1}, {2})); }, {"nll_loss", "[4, 3]", "[2]"});
  expect_error<ValueError>([] { cross_entropy(zeros({4}), i64({0}, {1})); }, {"cross_entropy", "[4]"});
  expect_error<ValueError>([] { mse_loss(zeros({2}), zeros({2}), Reduction::kBatchMean); },
                           {"mse_loss", "kBatchMean"});
  expect_error<ValueError>(
      [] {
        cross_entropy(zeros({1, 2}), i64({0}, {1}), Reduction::kMean, 1.5);
      },
      {"cross_entropy", "label_smoothing", "1.5"});
}

TEST(Losses, ClassTargetsMustBeI64AndInRange) {
  const Tensor logits = zeros({3, 5});
  expect_error<TypeError>([&] { nll_loss(logits, zeros({3})); }, {"nll_loss", "i64", "f32"});
  expect_error<TypeError>([&] { cross_entropy(logits, zeros({3}, DType::u8)); },
                          {"cross_entropy", "i64", "u8"});
  expect_error<IndexError>([&] { nll_loss(logits, i64({0, 7, 1}, {3})); }, {"nll_loss", "7", "[0, 4]"});
  expect_error<IndexError>(
      [&] {
        cross_entropy(logits, i64({0, -2, 1}, {3}));
      },
      {"cross_entropy", "-2", "[0, 4]"});
  expect_error<IndexError>(
      [&] {
        multi_margin_loss(logits, i64({5, 0, 0}, {3}));
      },
      {"multi_margin_loss", "5"});
}

TEST(Losses, StableAtExtremeInputs) {
  Tensor logits = from_vector<float>({1000.0f, 0.0f, -1000.0f}, {1, 3}).requires_grad_();
  const Tensor loss = cross_entropy(logits, i64({2}, {1}));
  EXPECT_EQ(loss.item(), 2000.0);
  loss.backward();
  expect_values(logits.grad(), {1, 0, -1});

  Tensor z = from_vector<float>({1000.0f, -1000.0f, 0.0f}, {3}).requires_grad_();
  const Tensor bce =
      binary_cross_entropy_with_logits(z, from_vector<float>({0.0f, 1.0f, 1.0f}, {3}), Reduction::kNone);
  expect_finite(bce);
  EXPECT_EQ(bce.to_vector<double>()[0], 1000.0);
  EXPECT_NEAR(bce.to_vector<double>()[2], std::log(2.0), 1e-6);
  sum(bce).backward();
  expect_finite(z.grad());
  EXPECT_NEAR(z.grad().to_vector<double>()[2], -0.5, 1e-6);  // sigmoid(0) - 1, smooth at 0

  Tensor p = from_vector<float>({0.0f, 1.0f, 1.0f}, {3}).requires_grad_();
  const Tensor sat = binary_cross_entropy(p, from_vector<float>({0.5f, 0.5f, 1.0f}, {3}), Reduction::kNone);
  expect_values(sat, {50, 50, 0});
  sum(sat).backward();
  expect_finite(p.grad());

  const Tensor kl = kl_div(from_vector<double>({-1.0, -2.0}, {1, 2}), from_vector<double>({0.0, 1.0}, {1, 2}),
                           Reduction::kBatchMean);
  EXPECT_DOUBLE_EQ(kl.item(), 2.0);
}

}  // namespace
}  // namespace lockstep
