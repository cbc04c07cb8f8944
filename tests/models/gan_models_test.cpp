// The course's MLP GAN and the class-conditional wrappers: shapes, parameter counts against a hand count,
// what the label changes, and the errors for missing or out-of-range labels.
#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "src/core/rng.h"
#include "src/models/conditional.h"
#include "src/models/dcgan.h"
#include "src/models/mlp_gan.h"
#include "src/ops/elementwise.h"
#include "src/ops/reduce.h"
#include "src/tensor/factories.h"
#include "tests/support/expect_error.h"

namespace lockstep {
namespace {

TEST(MlpGan, ShapesRangeAndParameterCounts) {
  manual_seed(1);
  models::MLPGenerator g(8, {16, 32}, 1, 5, 6);
  const Tensor images = g(randn({3, 8}));
  EXPECT_EQ(images.shape(), (Shape{3, 1, 5, 6}));
  EXPECT_LT(max(abs(images)).item(), 1.0);  // tanh
  EXPECT_EQ(g.num_parameters(), (8 * 16 + 16) + (16 * 32 + 32) + (32 * 30 + 30));
  models::MLPDiscriminator d(1, 5, 6, {12});
  EXPECT_EQ(d(images).shape(), (Shape{3}));
  EXPECT_EQ(d.num_parameters(), (30 * 12 + 12) + (12 + 1));
  test::expect_error<ValueError>(
      [&] {
        (void)d(randn({3, 2, 5, 6}));
      },
      {"expected [N, 1, 5, 6], but got [3, 2, 5, 6]"});
}

TEST(Conditional, TheLabelChangesTheImageAndJoinsTheDiscriminatorAsAChannel) {
  manual_seed(2);
  models::ConditionalGenerator g(std::make_shared<models::DCGANGenerator>(4 + 3, 1, 32, 4), 4, 3);
  const Tensor z = randn({2, 4});
  const Tensor a = g.forward(z, from_vector(std::vector<std::int64_t>{0, 0}, {2}));
  const Tensor b = g.forward(z, from_vector(std::vector<std::int64_t>{0, 2}, {2}));
  EXPECT_EQ(a.shape(), (Shape{2, 1, 32, 32}));
  g.eval();  // batch norm on running statistics: each image depends on its own z and label only
  const Tensor a0 = g.forward(z, from_vector(std::vector<std::int64_t>{0, 0}, {2}));
  const Tensor b0 = g.forward(z, from_vector(std::vector<std::int64_t>{0, 2}, {2}));
  EXPECT_EQ(max(abs(a0.select(0, 0) - b0.select(0, 0))).item(), 0.0);   // same z, same label
  EXPECT_GT(max(abs(a0.select(0, 1) - b0.select(0, 1))).item(), 1e-3);  // same z, another label
  EXPECT_EQ(g.num_parameters(), models::DCGANGenerator(7, 1, 32, 4).num_parameters() + 3 * 3);

  models::ConditionalDiscriminator d(
      std::make_shared<models::MLPDiscriminator>(2, 32, 32, std::vector<std::int64_t>{8}), 1, 32, 32, 3);
  EXPECT_EQ(d.forward(a, from_vector(std::vector<std::int64_t>{1, 2}, {2})).shape(), (Shape{2}));
  EXPECT_EQ(d.num_parameters(), models::MLPDiscriminator(2, 32, 32, {8}).num_parameters() + 3 * 32 * 32);

  test::expect_error<ValueError>(
      [&] {
        (void)g.forward(z, from_vector(std::vector<std::int64_t>{0, 3}, {2}));
      },
      {"expected labels in [0, 3), but got 3"});
  test::expect_error<ValueError>([&] { (void)g(z); }, {"expected class labels with the noise, but got none"});
  test::expect_error<ValueError>([&] { (void)models::generate(g, z); },
                                 {"expected labels i64 [2], but got none"});
  models::MLPGenerator plain(4, {8}, 1, 2, 2);
  test::expect_error<ValueError>(
      [&] {
        (void)models::generate(plain, z, from_vector(std::vector<std::int64_t>{0, 1}, {2}));
      },
      {"expected no labels for the unconditional MLPGenerator"});
}

}  // namespace
}  // namespace lockstep
