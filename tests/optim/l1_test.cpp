// optimizer.l1: the L1 subgradient l1 * sign(p) joins the gradient of the parameters weight decay applies
// to, checked against updates computed by hand for SGD (with L2 decay and momentum) and Adam.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "src/optim/adam.h"
#include "src/optim/sgd.h"
#include "src/tensor/factories.h"

namespace lockstep::optim {
namespace {

Tensor values(const std::vector<double>& v, const Shape& shape, DType dtype = DType::f64) {
  return from_vector(v, shape, dtype);
}

TEST(L1Penalty, SgdStepMatchesTheHandComputedUpdate) {
  for (const DType dtype : {DType::f64, DType::f32}) {
    // A weight [2, 2] (decayed) with a zero entry, and a bias [2] (not decayed).
    Tensor w = values({0.5, -0.2, 0.0, 1.5}, {2, 2}, dtype).requires_grad_();
    Tensor b = values({0.3, -0.4}, {2}, dtype).requires_grad_();
    SGD sgd({{"w", w}, {"b", b}}, {.lr = 0.1, .momentum = 0.9, .weight_decay = 0.01});
    sgd.set_l1(0.05);
    const std::vector<double> gw = {0.2, 0.1, -0.3, 0.0}, gb = {0.4, -0.1};
    w.set_grad(values(gw, {2, 2}, dtype));
    b.set_grad(values(gb, {2}, dtype));
    sgd.step();
    // d = g + 0.01 * p + 0.05 * sign(p); the first momentum step takes b = d; p -= 0.1 * d.
    const std::vector<double> w0 = {0.5, -0.2, 0.0, 1.5};
    const std::vector<double> sign = {1, -1, 0, 1};
    std::vector<double> want_w, d1;
    for (int i = 0; i < 4; ++i) {
      d1.push_back(gw[i] + 0.01 * w0[i] + 0.05 * sign[i]);
      want_w.push_back(w0[i] - 0.1 * d1.back());
    }
    const double tol = dtype == DType::f64 ? 1e-15 : 1e-6;
    const std::vector<double> got_w = w.to_vector<double>();
    for (int i = 0; i < 4; ++i) EXPECT_NEAR(got_w[i], want_w[i], tol) << i;
    // The bias has neither L2 nor L1: 0.3 - 0.1 * 0.4, -0.4 - 0.1 * -0.1.
    EXPECT_NEAR(b.to_vector<double>()[0], 0.26, tol);
    EXPECT_NEAR(b.to_vector<double>()[1], -0.39, tol);
    // The parameter's .grad is left as the loss gradient.
    EXPECT_EQ(w.grad().to_vector<double>(), values(gw, {2, 2}, dtype).to_vector<double>());

    // Second step: buffer = 0.9 * d1 + d2 with d2 at the new weights (signs unchanged, zero stays 0 - 0.1 *
    // d1[2] = 0.03 > 0, so its sign is now +1).
    w.set_grad(values(gw, {2, 2}, dtype));
    sgd.step();
    const std::vector<double> sign2 = {1, -1, 1, 1};
    for (int i = 0; i < 4; ++i) {
      const double d2 = gw[i] + 0.01 * want_w[i] + 0.05 * sign2[i];
      want_w[i] -= 0.1 * (0.9 * d1[i] + d2);
    }
    const std::vector<double> got2 = w.to_vector<double>();
    for (int i = 0; i < 4; ++i) EXPECT_NEAR(got2[i], want_w[i], tol) << i;
  }
}

TEST(L1Penalty, AdamSeesThePenalisedGradientAndDecayAllIncludesBiases) {
  Tensor w = values({0.5, -0.2}, {1, 2}).requires_grad_();
  Tensor b = values({0.3}, {1}).requires_grad_();
  Adam adam({{"w", w}, {"b", b}}, {.lr = 0.01, .eps = 1e-8, .decay = DecayPolicy::kAll});
  adam.set_l1(0.5);
  w.set_grad(values({0.1, 0.1}, {1, 2}));
  b.set_grad(values({-0.2}, {1}));
  adam.step();
  // Adam's first step moves by lr * g' / (|g'| + eps): g' = 0.1 + 0.5 = 0.6, 0.1 - 0.5 = -0.4, -0.2 + 0.5.
  const auto first = [](double g) { return 0.01 * g / (std::abs(g) + 1e-8); };
  EXPECT_NEAR(w.to_vector<double>()[0], 0.5 - first(0.6), 1e-15);
  EXPECT_NEAR(w.to_vector<double>()[1], -0.2 - first(-0.4), 1e-15);
  EXPECT_NEAR(b.to_vector<double>()[0], 0.3 - first(0.3), 1e-15);
}

TEST(L1Penalty, RejectsNegativeOrNonFinite) {
  Tensor w = values({0.5}, {1, 1}).requires_grad_();
  SGD sgd({{"w", w}}, {.lr = 0.1});
  EXPECT_THROW(sgd.set_l1(-1.0), ValueError);
  EXPECT_THROW(sgd.set_l1(std::nan("")), ValueError);
}

}  // namespace
}  // namespace lockstep::optim
