// Spatial ops beyond the op table: the convolution output-size formulas (forward and transposed) checked
// against the ops' shapes, empty batches, second derivatives, and bad inputs raising typed errors.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "src/autograd/engine.h"
#include "src/autograd/grad_mode.h"
#include "src/ops/conv.h"
#include "src/ops/elementwise.h"
#include "src/ops/pool.h"
#include "src/ops/reduce.h"
#include "src/tensor/factories.h"
#include "tests/support/expect_error.h"
#include "tests/support/gradcheck.h"

namespace lockstep {
namespace {

using test::expect_error;

struct SizeCase {
  std::int64_t w, f, p, s;
};

TEST(Spatial, ConvOutputSizeMatchesFormula) {
  const std::vector<SizeCase> cases{{7, 3, 0, 1},  {7, 3, 0, 2},  {5, 3, 1, 1},  {32, 5, 2, 1}, {227, 11, 0, 4},
                                    {8, 3, 1, 2},  {9, 4, 1, 2},  {6, 1, 0, 3},  {10, 5, 0, 5}, {4, 4, 0, 1},
                                    {13, 3, 2, 3}, {28, 5, 0, 1}, {224, 7, 3, 2}, {56, 3, 1, 2}};
  for (const auto& c : cases) {
    const auto want = static_cast<std::int64_t>(std::floor(static_cast<double>(c.w - c.f + 2 * c.p) / static_cast<double>(c.s))) + 1;
    EXPECT_EQ(conv_output_size(c.w, c.f, c.p, c.s), want) << c.w << " " << c.f << " " << c.p << " " << c.s;
    const Tensor y = conv2d(zeros({1, 1, c.w, c.w}), zeros({2, 1, c.f, c.f}), Tensor(), {c.s, c.s}, {c.p, c.p});
    EXPECT_EQ(y.shape(), (Shape{1, 2, want, want}));
    // The transposed convolution of that output, with the skipped rows as output padding, restores W.
    const std::int64_t plain = c.s * (want - 1) + c.f - 2 * c.p;
    EXPECT_EQ(conv_transpose_output_size(want, c.f, c.p, c.s), plain);
    const std::int64_t op = c.w - plain;
    EXPECT_GE(op, 0);
    EXPECT_LT(op, c.s);
    const Tensor back = conv_transpose2d(zeros({1, 2, want, want}), zeros({2, 1, c.f, c.f}), Tensor(), {c.s, c.s},
                                         {c.p, c.p}, {op, op});
    EXPECT_EQ(back.shape(), (Shape{1, 1, c.w, c.w}));
  }
}

TEST(Spatial, DilatedAndTransposedOutputSizes) {
  // F_eff = d (F - 1) + 1.
  EXPECT_EQ(conv_output_size(7, 3, 0, 1, 2), 3);
  EXPECT_EQ(conv_output_size(9, 3, 2, 2, 2), 5);
  // DCGAN generator: 4x4 kernels, stride 2, padding 1 double the size; 4x4 from 1x1 with no padding.
  EXPECT_EQ(conv_transpose_output_size(4, 4, 1, 2), 8);
  EXPECT_EQ(conv_transpose_output_size(1, 4, 0, 1), 4);
  EXPECT_EQ(conv_transpose_output_size(4, 3, 1, 1, 2, 1), 7);
  const Tensor y = conv_transpose2d(zeros({2, 8, 4, 4}), zeros({8, 3, 4, 4}), zeros({3}), {2, 2}, {1, 1});
  EXPECT_EQ(y.shape(), (Shape{2, 3, 8, 8}));
}

TEST(Spatial, EmptyBatch) {
  Tensor x = zeros({0, 3, 5, 5}, DType::f64), w = ones({4, 3, 3, 3}, DType::f64);
  x.requires_grad_();
  w.requires_grad_();
  const Tensor y = conv2d(x, w, Tensor(), {1, 1}, {1, 1});
  EXPECT_EQ(y.shape(), (Shape{0, 4, 5, 5}));
  sum(y).backward();
  EXPECT_EQ(x.grad().shape(), x.shape());
  for (double v : w.grad().to_vector<double>()) EXPECT_EQ(v, 0.0);
}

using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

// x -> d/dx of 0.5 * sum(f(x)^2), keeping the graph, so that gradcheck differentiates a backward function.
Fn half_square_grad(Fn f) {
  return [f](const std::vector<Tensor>& xs) {
    GradModeGuard grad_on(true);
    std::vector<Tensor> leaves;
    for (const auto& x : xs) {
      Tensor leaf = x;
      if (!leaf.requires_grad()) {
        leaf = x.detach();
        leaf.requires_grad_();
      }
      leaves.push_back(leaf);
    }
    const Tensor y = f(leaves);
    return grad({sum(y * y) * 0.5}, {leaves[0]}, {}, RetainGraph::kYes, CreateGraph::kYes)[0];
  };
}

void expect_second_derivatives(const char* what, Fn f, std::vector<Tensor> inputs) {
  for (auto& x : inputs) x.requires_grad_();
  const test::GradcheckResult r = test::gradcheck(half_square_grad(std::move(f)), inputs);
  EXPECT_TRUE(r.ok) << what << ":\n" << r.message;
}

TEST(Spatial, SecondDerivativesMatchFiniteDifferences) {
  Generator gen(7);
  auto input = [&gen](const Shape& shape) { return rand(shape, -1.0, 1.0, DType::f64, kCPU, &gen); };
  expect_second_derivatives("max_pool2d", [](const std::vector<Tensor>& t) { return max_pool2d(t[0], {3, 3}, {2, 2}, {1, 1}).values; },
                            {input({1, 2, 5, 5})});
  expect_second_derivatives("avg_pool2d", [](const std::vector<Tensor>& t) {
    return avg_pool2d(t[0], {3, 3}, {2, 2}, {1, 1}, CountIncludePad::kNo);
  }, {input({1, 2, 5, 5})});
  expect_second_derivatives("upsample_nearest2d", [](const std::vector<Tensor>& t) { return upsample_nearest2d(t[0], {7, 5}); },
                            {input({1, 2, 3, 4})});
  expect_second_derivatives("upsample_bilinear2d", [](const std::vector<Tensor>& t) {
    return upsample_bilinear2d(t[0], {7, 5}, AlignCorners::kNo);
  }, {input({1, 2, 3, 4})});
  expect_second_derivatives("pad2d reflect", [](const std::vector<Tensor>& t) { return pad2d(t[0], {2, 1, 1, 2}, PadMode::kReflect); },
                            {input({2, 4, 3})});
  expect_second_derivatives("conv2d reflect", [](const std::vector<Tensor>& t) {
    return conv2d(t[0], t[1], t[2], {1, 1}, {1, 1}, {1, 1}, 1, PaddingMode::kReflect);
  }, {input({1, 2, 4, 4}), input({2, 2, 3, 3}), input({2})});
  // Both the input and the weight gradients of conv_transpose2d, through its dilated output-padding path.
  const Fn transposed = [](const std::vector<Tensor>& t) {
    return conv_transpose2d(t[0], t[1], Tensor(), {1, 1}, {1, 1}, {1, 1}, {2, 2});
  };
  expect_second_derivatives("conv_transpose2d dx", transposed, {input({1, 2, 3, 3}), input({2, 2, 3, 3})});
  expect_second_derivatives("conv_transpose2d dw", [transposed](const std::vector<Tensor>& t) {
    return transposed({t[1], t[0]});
  }, {input({2, 2, 3, 3}), input({1, 2, 3, 3})});
}

TEST(Spatial, Conv2dRejectsBadInputs) {
  expect_error<ValueError>([] { conv2d(zeros({3, 5, 5}), zeros({2, 3, 3, 3})); }, {"conv2d", "4-D", "[3, 5, 5]"});
  expect_error<ValueError>([] { conv2d(zeros({1, 3, 5, 5}), zeros({2, 4, 3, 3})); },
                           {"conv2d", "[1, 3, 5, 5]", "[2, 4, 3, 3]"});
  expect_error<ValueError>([] { conv2d(zeros({1, 3, 5, 5}), zeros({4, 1, 3, 3}), Tensor(), {1, 1}, {0, 0}, {1, 1}, 2); },
                           {"groups (2)", "[1, 3, 5, 5]", "[4, 1, 3, 3]"});
  expect_error<ValueError>([] { conv2d(zeros({1, 4, 5, 5}), zeros({3, 2, 3, 3}), Tensor(), {1, 1}, {0, 0}, {1, 1}, 2); },
                           {"groups (2)", "output channels (3)", "[3, 2, 3, 3]"});
  expect_error<ValueError>([] { conv2d(zeros({1, 1, 3, 3}), zeros({1, 1, 5, 5})); },
                           {"kernel 5x5", "[1, 1, 3, 3]", "[1, 1, 5, 5]"});
  expect_error<ValueError>([] { conv2d(zeros({1, 1, 5, 5}), zeros({1, 1, 3, 3}), Tensor(), {1, 1}, {0, 0}, {3, 3}); },
                           {"dilation 3x3", "[1, 1, 5, 5]"});
  expect_error<ValueError>([] { conv2d(zeros({1, 2, 5, 5}), zeros({3, 2, 3, 3}), zeros({4})); }, {"bias", "[3]", "[4]"});
  expect_error<ValueError>([] { conv2d(zeros({1, 2, 5, 5}), zeros({3, 2, 3, 3}), Tensor(), {0, 1}); }, {"stride 0x1"});
  expect_error<ValueError>(
      [] { conv2d(zeros({1, 2, 3, 5}), zeros({3, 2, 3, 3}), Tensor(), {1, 1}, {3, 1}, {1, 1}, 1, PaddingMode::kReflect); },
      {"reflection", "3x1", "[1, 2, 3, 5]"});
  expect_error<TypeError>([] { conv2d(zeros({1, 2, 5, 5}), zeros({3, 2, 3, 3}, DType::f64)); }, {"f32", "f64", "[3, 2, 3, 3]"});
}

TEST(Spatial, ConvTranspose2dRejectsBadInputs) {
  expect_error<ValueError>([] { conv_transpose2d(zeros({2, 5, 5}), zeros({2, 3, 3, 3})); }, {"4-D", "[2, 5, 5]"});
  expect_error<ValueError>([] { conv_transpose2d(zeros({1, 3, 4, 4}), zeros({2, 3, 3, 3})); },
                           {"Cin = 3", "[1, 3, 4, 4]", "[2, 3, 3, 3]"});
  expect_error<ValueError>([] { conv_transpose2d(zeros({1, 3, 4, 4}), zeros({3, 2, 3, 3}), Tensor(), {1, 1}, {0, 0}, {0, 0}, {1, 1}, 2); },
                           {"groups (2)", "[1, 3, 4, 4]"});
  expect_error<ValueError>([] { conv_transpose2d(zeros({1, 2, 4, 4}), zeros({2, 3, 3, 3}), Tensor(), {2, 2}, {1, 1}, {2, 0}); },
                           {"output_padding 2x0", "stride 2x2", "dilation 1x1"});
  expect_error<ValueError>([] { conv_transpose2d(zeros({1, 2, 1, 1}), zeros({2, 3, 1, 1}), Tensor(), {1, 1}, {1, 1}); },
                           {"positive output size", "[1, 2, 1, 1]"});
}

TEST(Spatial, PoolingAndPaddingRejectBadInputs) {
  expect_error<ValueError>([] { pad2d(zeros({1, 1, 3, 4}), {4, 0, 0, 0}, PadMode::kReflect); },
                           {"pad2d", "reflection", "[1, 1, 3, 4]", "left 4"});
  expect_error<ValueError>([] { pad2d(zeros({1, 1, 3, 4}), {0, 0, 0, 3}, PadMode::kReflect); }, {"bottom 3", "[1, 1, 3, 4]"});
  expect_error<ValueError>([] { pad2d(zeros({5}), {1, 1, 1, 1}); }, {"at least 2 dimensions", "[5]"});
  expect_error<ValueError>([] { max_pool2d(zeros({1, 1, 6, 6}), {2, 2}, {2, 2}, {2, 2}); }, {"half the kernel", "padding 2x2"});
  expect_error<ValueError>([] { max_pool2d(zeros({1, 6, 6}), {2, 2}, {2, 2}); }, {"4-D", "[1, 6, 6]"});
  expect_error<ValueError>([] { avg_pool2d(zeros({1, 1, 2, 2}), {3, 3}, {1, 1}); }, {"kernel 3x3", "[1, 1, 2, 2]"});
  expect_error<IndexError>([] { max_unpool2d(ones({1, 1, 2, 2}), full({1, 1, 2, 2}, 9.0, DType::i64), {3, 3}); },
                           {"max_unpool2d", "[0, 9)", "output size 3x3"});
  expect_error<ValueError>([] { max_unpool2d(ones({1, 1, 2, 2}), zeros({1, 1, 2, 1}, DType::i64), {3, 3}); },
                           {"[1, 1, 2, 2]", "[1, 1, 2, 1]"});
  expect_error<ValueError>([] { upsample_bilinear2d(zeros({1, 1, 2, 2}), {0, 4}); }, {"0x4", "[1, 1, 2, 2]"});
}

TEST(Spatial, MaxPoolPropagatesNaN) {
  const float nan = std::nanf("");
  const Tensor x = from_vector<float>({1, nan, 3, 4}, {1, 1, 2, 2});
  const MaxPool2dResult r = max_pool2d(x, {2, 2}, {2, 2});
  EXPECT_TRUE(std::isnan(r.values.item()));
  EXPECT_EQ(r.indices.item(), 1.0);
}

}  // namespace
}  // namespace lockstep
