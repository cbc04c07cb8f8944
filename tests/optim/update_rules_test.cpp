// Each optimizer's first three steps on a tiny [1, 3] problem with hand-set gradients, against the update
// formula written out per element here, and against numbers computed with PyTorch.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <vector>

#include "src/optim/adadelta.h"
#include "src/optim/adagrad.h"
#include "src/optim/adam.h"
#include "src/optim/rmsprop.h"
#include "src/optim/sgd.h"
#include "tests/optim/optim_test_util.h"

namespace lockstep::optim {
namespace {

using testing::expect_trace_near;
using testing::kGrads;
using testing::kStart;
using testing::run_tiny;
using testing::Trace;
using Params = std::vector<nn::NamedTensor>;

constexpr double kExact = 1e-13;  // f64 implementation vs the same formula evaluated here
constexpr double kTorch64 = 1e-12;
constexpr double kTorch32 = 1e-6;

Trace trace_of(const std::vector<std::array<double, 3>>& rows) {
  Trace t;
  for (const auto& r : rows) t.emplace_back(r.begin(), r.end());
  return t;
}

// --- SGD ---------------------------------------------------------------------------------------------------

Trace sgd_by_hand(double lr, double momentum, double dampening, double wd, Nesterov nesterov) {
  std::array<double, 3> p = kStart, buf{};
  Trace trace;
  for (std::size_t t = 0; t < 3; ++t) {
    for (std::size_t i = 0; i < 3; ++i) {
      const double g = kGrads[t][i] + wd * p[i];
      double d = g;
      if (momentum != 0.0) {
        buf[i] = t == 0 ? g : momentum * buf[i] + (1.0 - dampening) * g;
        d = nesterov == Nesterov::kYes ? g + momentum * buf[i] : buf[i];
      }
      p[i] -= lr * d;
    }
    trace.emplace_back(p.begin(), p.end());
  }
  return trace;
}

TEST(SGD, PlainStepsFollowTheFormula) {
  const Trace got = run_tiny([](Params ps) { return SGD(std::move(ps), {.lr = 0.1}); });
  expect_trace_near(got, sgd_by_hand(0.1, 0.0, 0.0, 0.0, Nesterov::kNo), kExact);
  // Step 1 by hand: 1 - 0.1 * 0.1.
  EXPECT_DOUBLE_EQ(got[0][0], 0.99);
}

TEST(SGD, MomentumWithDampeningAndWeightDecay) {
  const SGDOptions o{.lr = 0.1, .momentum = 0.9, .dampening = 0.3, .weight_decay = 0.01};
  const Trace got = run_tiny([&](Params ps) { return SGD(std::move(ps), o); });
  expect_trace_near(got, sgd_by_hand(0.1, 0.9, 0.3, 0.01, Nesterov::kNo), kExact);
  // Computed with Debian's python3-torch 1.13 (torch.optim.SGD, same options, float64).
  expect_trace_near(got,
                    trace_of({{0.989, -1.968, 0.4795},
                              {0.9504077, -1.9448224, 0.49571434999999997},
                              {0.92900934461, -1.94010118432, 0.506460264955}}),
                    kTorch64);
}

TEST(SGD, NesterovMatchesFormulaAndTorch) {
  const SGDOptions o{.lr = 0.1, .momentum = 0.9, .weight_decay = 0.01, .nesterov = Nesterov::kYes};
  const Trace got = run_tiny([&](Params ps) { return SGD(std::move(ps), o); });
  expect_trace_near(got, sgd_by_hand(0.1, 0.9, 0.0, 0.01, Nesterov::kYes), kExact);
  // Computed with Debian's python3-torch 1.13: torch.optim.SGD(lr=0.1, momentum=0.9, nesterov=True,
  // weight_decay=0.01), float64 and float32.
  expect_trace_near(got,
                    trace_of({{0.9791, -1.9392, 0.46105},
                              {0.8923297099999999, -1.92859552, 0.538569005},
                              {0.887422212551, -1.955632436512, 0.5532277733905}}),
                    kTorch64);
  const Trace got32 = run_tiny([&](Params ps) { return SGD(std::move(ps), o); }, DType::f32);
  expect_trace_near(got32,
                    trace_of({{0.9790999889373779, -1.9392000436782837, 0.46105000376701355},
                              {0.8923296928405762, -1.9285955429077148, 0.5385690331459045},
                              {0.8874222040176392, -1.9556324481964111, 0.5532277822494507}}),
                    kTorch32);
}

// --- Adam / AdamW ------------------------------------------------------------------------------------------

Trace adam_by_hand(double lr, double b1, double b2, double eps, double l2, double decoupled,
                   AmsGrad amsgrad) {
  std::array<double, 3> p = kStart, m{}, v{}, v_max{};
  Trace trace;
  for (std::size_t t = 0; t < 3; ++t) {
    const double step = static_cast<double>(t + 1);
    for (std::size_t i = 0; i < 3; ++i) {
      const double g = kGrads[t][i] + l2 * p[i];
      p[i] *= 1.0 - lr * decoupled;
      m[i] = b1 * m[i] + (1.0 - b1) * g;
      v[i] = b2 * v[i] + (1.0 - b2) * g * g;
      v_max[i] = std::max(v_max[i], v[i]);
      const double v_used = amsgrad == AmsGrad::kYes ? v_max[i] : v[i];
      p[i] -= lr / (1.0 - std::pow(b1, step)) * m[i] /
              (std::sqrt(v_used) / std::sqrt(1.0 - std::pow(b2, step)) + eps);
    }
    trace.emplace_back(p.begin(), p.end());
  }
  return trace;
}

TEST(Adam, MatchesFormulaAndTorch) {
  const AdamOptions o{.lr = 0.1, .weight_decay = 0.01};
  const Trace got = run_tiny([&](Params ps) { return Adam(std::move(ps), o); });
  expect_trace_near(got, adam_by_hand(0.1, 0.9, 0.999, 1e-8, 0.01, 0.0, AmsGrad::kNo), kExact);
  // Computed with Debian's python3-torch 1.13: torch.optim.Adam(lr=0.1, betas=(0.9, 0.999), eps=1e-8,
  // weight_decay=0.01), float64 and float32.
  expect_trace_near(got,
                    trace_of({{0.9000000090909083, -1.900000003125, 0.40000000487804854},
                              {0.8107428784355137, -1.8533134564929867, 0.4431932033183064},
                              {0.7742771983868162, -1.8604748769289106, 0.4699615872035912}}),
                    kTorch64);
  const Trace got32 = run_tiny([&](Params ps) { return Adam(std::move(ps), o); }, DType::f32);
  expect_trace_near(got32,
                    trace_of({{0.9000000357627869, -1.899999976158142, 0.4000000059604645},
                              {0.8107429146766663, -1.8533134460449219, 0.4431931972503662},
                              {0.7742772102355957, -1.8604748249053955, 0.46996158361434937}}),
                    kTorch32);
}

TEST(Adam, AmsGradKeepsTheLargestSecondMoment) {
  const AdamOptions o{.lr = 0.1, .beta1 = 0.5, .beta2 = 0.9, .amsgrad = AmsGrad::kYes};
  const Trace got = run_tiny([&](Params ps) { return Adam(std::move(ps), o); });
  expect_trace_near(got, adam_by_hand(0.1, 0.5, 0.9, 1e-8, 0.0, 0.0, AmsGrad::kYes), kExact);
  // Differs from plain Adam only where v shrinks: element 2 at step 3 (g = 0.05 after g = -0.5).
  const Trace plain =
      run_tiny([](Params ps) { return Adam(std::move(ps), {.lr = 0.1, .beta1 = 0.5, .beta2 = 0.9}); });
  EXPECT_EQ(plain[1], got[1]);
  EXPECT_EQ(plain[2][0], got[2][0]);
  EXPECT_GT(std::abs(plain[2][2] - got[2][2]), 1e-3);
  // Computed with Debian's python3-torch 1.13: Adam(lr=0.1, betas=(0.5, 0.9), amsgrad=True), float64.
  expect_trace_near(got,
                    trace_of({{0.900000009999999, -1.9000000033333333, 0.4000000049999997},
                              {0.7994100377526105, -1.884768778471581, 0.4687325626465531},
                              {0.7940443807555492, -1.9404675349678095, 0.4951174245756279}}),
                    kTorch64);
}

TEST(AdamW, DecoupledDecayMatchesFormulaAndTorch) {
  const AdamWOptions o{.lr = 0.1, .weight_decay = 0.1};
  const Trace got = run_tiny([&](Params ps) { return AdamW(std::move(ps), o); });
  expect_trace_near(got, adam_by_hand(0.1, 0.9, 0.999, 1e-8, 0.0, 0.1, AmsGrad::kNo), kExact);
  // Computed with Debian's python3-torch 1.13: torch.optim.AdamW(lr=0.1, weight_decay=0.1), float64, float32.
  expect_trace_near(got,
                    trace_of({{0.890000009999999, -1.8800000033333333, 0.39500000499999977},
                              {0.7926623638751169, -1.8211781478947475, 0.4352715301672329},
                              {0.7511258009835484, -1.8183469604544849, 0.4590464523534807}}),
                    kTorch64);
  const Trace got32 = run_tiny([&](Params ps) { return AdamW(std::move(ps), o); }, DType::f32);
  expect_trace_near(got32,
                    trace_of({{0.8899999856948853, -1.8799999952316284, 0.39500001072883606},
                              {0.7926623225212097, -1.8211780786514282, 0.4352715313434601},
                              {0.7511257529258728, -1.8183469772338867, 0.45904645323753357}}),
                    kTorch32);
  EXPECT_EQ(AdamWOptions{}.weight_decay, 1e-2);
}

// --- RMSProp -----------------------------------------------------------------------------------------------

Trace rmsprop_by_hand(double lr, double alpha, double eps, double momentum, double wd, Centered centered) {
  std::array<double, 3> p = kStart, sq{}, buf{}, avg_g{};
  Trace trace;
  for (std::size_t t = 0; t < 3; ++t) {
    for (std::size_t i = 0; i < 3; ++i) {
      const double g = kGrads[t][i] + wd * p[i];
      sq[i] = alpha * sq[i] + (1.0 - alpha) * g * g;
      double avg = std::sqrt(sq[i]) + eps;
      if (centered == Centered::kYes) {
        avg_g[i] = alpha * avg_g[i] + (1.0 - alpha) * g;
        avg = std::sqrt(sq[i] - avg_g[i] * avg_g[i]) + eps;
      }
      if (momentum > 0.0) {
        buf[i] = momentum * buf[i] + g / avg;
        p[i] -= lr * buf[i];
      } else {
        p[i] -= lr * g / avg;
      }
    }
    trace.emplace_back(p.begin(), p.end());
  }
  return trace;
}

TEST(RMSProp, PlainStepsFollowTheFormula) {
  const Trace got = run_tiny([](Params ps) { return RMSProp(std::move(ps)); });
  expect_trace_near(got, rmsprop_by_hand(1e-2, 0.99, 1e-8, 0.0, 0.0, Centered::kNo), kExact);
}

TEST(RMSProp, CenteredWithMomentumMatchesFormulaAndTorch) {
  const RMSPropOptions o{
      .lr = 0.01, .alpha = 0.9, .momentum = 0.5, .weight_decay = 0.01, .centered = Centered::kYes};
  const Trace got = run_tiny([&](Params ps) { return RMSProp(std::move(ps), o); });
  expect_trace_near(got, rmsprop_by_hand(0.01, 0.9, 1e-8, 0.5, 0.01, Centered::kYes), kExact);
  // Computed with Debian's python3-torch 1.13: RMSprop(lr=0.01, alpha=0.9, momentum=0.5, centered=True,
  // weight_decay=0.01), float64.
  expect_trace_near(got,
                    trace_of({{0.9666666767676737, -1.9666666701388886, 0.46666667208671997},
                              {0.9168633816340594, -1.9582725251768096, 0.4799506586373206},
                              {0.9058011984192447, -1.9734351820809464, 0.483146091589392}}),
                    kTorch64);
}

// --- AdaGrad -----------------------------------------------------------------------------------------------

TEST(AdaGrad, MatchesFormulaAndTorch) {
  const AdaGradOptions o{.lr = 0.1, .lr_decay = 0.1, .weight_decay = 0.01, .initial_accumulator_value = 0.1};
  const Trace got = run_tiny([&](Params ps) { return AdaGrad(std::move(ps), o); });
  std::array<double, 3> p = kStart, sum{0.1, 0.1, 0.1};
  Trace want;
  for (std::size_t t = 0; t < 3; ++t) {
    const double clr = 0.1 / (1.0 + static_cast<double>(t) * 0.1);
    for (std::size_t i = 0; i < 3; ++i) {
      const double g = kGrads[t][i] + 0.01 * p[i];
      sum[i] += g * g;
      p[i] -= clr * g / (std::sqrt(sum[i]) + 1e-10);
    }
    want.emplace_back(p.begin(), p.end());
  }
  expect_trace_near(got, want, kExact);
  // Computed with Debian's python3-torch 1.13: Adagrad(lr=0.1, lr_decay=0.1, weight_decay=0.01,
  // initial_accumulator_value=0.1), float64.
  expect_trace_near(got,
                    trace_of({{0.9671458769998902, -1.9288713240999082, 0.44560343675904507},
                              {0.8967547765397834, -1.9449243715590794, 0.5179643242988173},
                              {0.925055082215869, -1.9824543520378488, 0.51060711966227}}),
                    kTorch64);
}

// --- AdaDelta ----------------------------------------------------------------------------------------------

TEST(AdaDelta, MatchesFormulaAndTorch) {
  const AdaDeltaOptions o{.weight_decay = 0.01};
  const Trace got = run_tiny([&](Params ps) { return AdaDelta(std::move(ps), o); });
  const double rho = 0.9, eps = 1e-6;
  std::array<double, 3> p = kStart, sq{}, acc{};
  Trace want;
  for (std::size_t t = 0; t < 3; ++t) {
    for (std::size_t i = 0; i < 3; ++i) {
      const double g = kGrads[t][i] + 0.01 * p[i];
      sq[i] = rho * sq[i] + (1.0 - rho) * g * g;
      const double delta = std::sqrt(acc[i] + eps) / std::sqrt(sq[i] + eps) * g;
      acc[i] = rho * acc[i] + (1.0 - rho) * delta * delta;
      p[i] -= 1.0 * delta;
    }
    want.emplace_back(p.begin(), p.end());
  }
  expect_trace_near(got, want, kExact);
  // Computed with Debian's python3-torch 1.13: Adadelta(lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.01),
  // float64.
  expect_trace_near(got,
                    trace_of({{0.9968390282567405, -1.9968378767366122, 0.4968380985103748},
                              {0.9925061087090925, -1.9979778180262513, 0.5010002149577496},
                              {0.9951364947446896, -2.0007315684911857, 0.5003470463793183}}),
                    kTorch64);
}

}  // namespace
}  // namespace lockstep::optim
