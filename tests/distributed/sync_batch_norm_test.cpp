// SyncBatchNorm on a threaded world against plain BatchNorm on the union of the ranks' batches: outputs,
// input and parameter gradients, running statistics, uneven and empty per-rank batches, no affine, eval mode
// (no collective), convert_sync_batchnorm on a ResNet, and the error for too few values.
#include "distributed/sync_batch_norm.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "distributed/threaded.h"
#include "src/autograd/grad_mode.h"
#include "src/core/rng.h"
#include "src/models/resnet.h"
#include "src/nn/linear.h"
#include "src/nn/norm.h"
#include "src/ops/elementwise.h"
#include "src/ops/reduce.h"
#include "src/tensor/factories.h"
#include "tests/support/expect_error.h"

namespace lockstep::distributed {
namespace {

using GroupPtr = std::shared_ptr<ProcessGroup>;

enum class Kind : std::uint8_t { k1d, k2d };

struct Scenario {
  Kind kind = Kind::k2d;
  Shape tail;  // trailing dims after [N, C]: {} for BatchNorm1d [N, C], {L}, or {H, W}
  std::int64_t channels = 3;
  std::vector<std::int64_t> batches;  // per rank; the world size is batches.size()
  DType dtype = DType::f64;
  nn::Affine affine = nn::Affine::kYes;
  double momentum = 0.1;
  double tol = 1e-10;
  double input_mean = 0.5;  // of the inputs, whose std is 2
};

Shape input_shape(const Scenario& s, std::int64_t n) {
  Shape shape{n, s.channels};
  shape.insert(shape.end(), s.tail.begin(), s.tail.end());
  return shape;
}

std::shared_ptr<nn::BatchNorm> make_layer(const Scenario& s) {
  const nn::BatchNormOptions options{.momentum = s.momentum, .affine = s.affine};
  std::shared_ptr<nn::BatchNorm> layer;
  if (s.kind == Kind::k2d) {
    layer = std::make_shared<nn::BatchNorm2d>(s.channels, options);
  } else {
    layer = std::make_shared<nn::BatchNorm1d>(s.channels, options);
  }
  layer->to(s.dtype);
  return layer;
}

// Non-trivial weight, bias and running statistics, the same for every layer given the same seed.
void randomise(nn::BatchNorm& layer, std::uint64_t seed) {
  Generator gen(seed);
  const std::int64_t c = layer.num_features();
  const DType dtype = layer.running_mean().dtype();
  NoGradGuard no_grad;
  Tensor rm = layer.running_mean(), rv = layer.running_var();
  rm.copy_(randn({c}, 0.0, 1.0, dtype, kCPU, &gen));
  rv.copy_(rand({c}, 0.5, 2.0, dtype, kCPU, &gen));
  if (layer.weight().defined()) {
    Tensor w = layer.weight(), b = layer.bias();
    w.copy_(rand({c}, 0.5, 1.5, dtype, kCPU, &gen));
    b.copy_(randn({c}, 0.0, 1.0, dtype, kCPU, &gen));
  }
}

// |got - want| <= tol * (1 + |want|) element-wise, with the shapes equal.
void expect_close(const Tensor& got, const Tensor& want, double tol, const std::string& what) {
  ASSERT_TRUE(got.defined()) << what;
  ASSERT_EQ(got.shape(), want.shape()) << what;
  const std::vector<double> g = got.to_vector<double>(), w = want.to_vector<double>();
  for (std::size_t i = 0; i < g.size(); ++i) {
    ASSERT_NEAR(g[i], w[i], tol * (1.0 + std::abs(w[i]))) << what << ", element " << i;
  }
}

// Two training steps of a SyncBatchNorm layer per rank (rank r gets rows [offset_r, offset_r + n_r) of each
// step's union batch) against one plain layer on the whole union batch; per-step loss sum(y * g), so that the
// union loss is the sum of the ranks' losses and the union parameter gradient the sum of theirs.
void expect_union_equivalence(const Scenario& s) {
  const int world = static_cast<int>(s.batches.size());
  const std::int64_t total = std::accumulate(s.batches.begin(), s.batches.end(), std::int64_t{0});
  constexpr int kSteps = 2;

  std::vector<std::shared_ptr<nn::BatchNorm>> layers;
  for (int r = 0; r < world; ++r) {
    layers.push_back(make_layer(s));
    randomise(*layers.back(), 7);
  }
  const std::shared_ptr<nn::BatchNorm> reference = make_layer(s);
  randomise(*reference, 7);

  // Union inputs and output weights, then each rank's slices as leaves of their own.
  Generator gen(42);
  std::vector<Tensor> x_union, g_union;
  std::vector<std::vector<Tensor>> x_rank(static_cast<std::size_t>(world)), g_rank(x_rank);
  for (int step = 0; step < kSteps; ++step) {
    x_union.push_back(randn(input_shape(s, total), s.input_mean, 2.0, s.dtype, kCPU, &gen));
    g_union.push_back(randn(input_shape(s, total), 0.0, 1.0, s.dtype, kCPU, &gen));
    std::int64_t offset = 0;
    for (int r = 0; r < world; ++r) {
      const std::int64_t n = s.batches[static_cast<std::size_t>(r)];
      x_rank[r].push_back(x_union.back().slice(0, offset, offset + n).clone().requires_grad_());
      g_rank[r].push_back(g_union.back().slice(0, offset, offset + n).clone());
      offset += n;
    }
  }

  std::vector<Tensor> y_union, dx_union;
  for (int step = 0; step < kSteps; ++step) {
    const Tensor x = x_union[step].clone().requires_grad_();
    const Tensor y = reference->forward(x);
    sum(y * g_union[step]).backward();
    y_union.push_back(y.detach());
    dx_union.push_back(x.grad());
  }

  std::vector<std::vector<Tensor>> y_rank(static_cast<std::size_t>(world));
  run_threaded(world, [&](const GroupPtr& group) {
    const int r = group->rank();
    EXPECT_EQ(convert_sync_batchnorm(*layers[r], group), 1);
    for (int step = 0; step < kSteps; ++step) {
      const Tensor y = layers[r]->forward(x_rank[r][step]);
      sum(y * g_rank[r][step]).backward();
      y_rank[r].push_back(y.detach());
    }
  });

  for (int step = 0; step < kSteps; ++step) {
    std::int64_t offset = 0;
    for (int r = 0; r < world; ++r) {
      const std::int64_t n = s.batches[static_cast<std::size_t>(r)];
      const std::string where = "step " + std::to_string(step) + ", rank " + std::to_string(r);
      ASSERT_EQ(y_rank[r].size(), static_cast<std::size_t>(kSteps)) << where;
      expect_close(y_rank[r][step], y_union[step].slice(0, offset, offset + n), s.tol, "output, " + where);
      const Tensor dx = x_rank[r][step].grad();
      if (n == 0) {
        EXPECT_TRUE(!dx.defined() || dx.numel() == 0) << where;
      } else {
        expect_close(dx, dx_union[step].slice(0, offset, offset + n), s.tol, "input gradient, " + where);
      }
      offset += n;
    }
  }
  for (int r = 0; r < world; ++r) {
    const std::string where = "rank " + std::to_string(r);
    expect_close(layers[r]->running_mean(), reference->running_mean(), s.tol, "running_mean, " + where);
    expect_close(layers[r]->running_var(), reference->running_var(), s.tol, "running_var, " + where);
    EXPECT_EQ(layers[r]->num_batches_tracked().item(), kSteps) << where;
  }
  if (s.affine == nn::Affine::kYes) {
    // DataParallel averages these over ranks: the average times the world size is the union gradient.
    Tensor dweight = zeros({s.channels}, s.dtype), dbias = zeros({s.channels}, s.dtype);
    for (int r = 0; r < world; ++r) {
      dweight.add_(layers[r]->weight().grad());
      dbias.add_(layers[r]->bias().grad());
    }
    expect_close(dweight, reference->weight().grad(), s.tol, "weight gradient");
    expect_close(dbias, reference->bias().grad(), s.tol, "bias gradient");
  } else {
    for (int r = 0; r < world; ++r) EXPECT_FALSE(layers[r]->weight().defined());
  }
}

TEST(SyncBatchNorm, BatchNorm2dOnTwoRanksEqualsTheUnionBatch) {
  expect_union_equivalence({.kind = Kind::k2d, .tail = {3, 4}, .channels = 3, .batches = {2, 3}});
}

TEST(SyncBatchNorm, BatchNorm2dOnThreeRanksWithUnevenBatches) {
  expect_union_equivalence({.kind = Kind::k2d, .tail = {2, 3}, .channels = 4, .batches = {1, 3, 5}});
}

TEST(SyncBatchNorm, BatchNorm2dOnFourRanksWithAnEmptyBatch) {
  expect_union_equivalence({.kind = Kind::k2d, .tail = {2, 2}, .channels = 2, .batches = {3, 0, 1, 2}});
}

TEST(SyncBatchNorm, BatchNorm1dOnNCWithUnevenAndEmptyBatches) {
  expect_union_equivalence({.kind = Kind::k1d, .tail = {}, .channels = 5, .batches = {1, 0, 4}});
}

TEST(SyncBatchNorm, BatchNorm1dOnNCWithOneValuePerRank) {
  expect_union_equivalence(
      {.kind = Kind::k1d, .tail = {}, .channels = 3, .batches = {1, 1}, .momentum = 0.3});
}

TEST(SyncBatchNorm, BatchNorm1dOnNCLOnFourRanks) {
  expect_union_equivalence({.kind = Kind::k1d, .tail = {5}, .channels = 3, .batches = {2, 1, 0, 3}});
}

TEST(SyncBatchNorm, FloatInputsMatchWithinSinglePrecision) {
  expect_union_equivalence({.kind = Kind::k2d,
                            .tail = {4, 4},
                            .channels = 3,
                            .batches = {2, 5, 1},
                            .dtype = DType::f32,
                            .tol = 1e-5});
  expect_union_equivalence({.kind = Kind::k1d,
                            .tail = {},
                            .channels = 6,
                            .batches = {4, 0, 7, 3},
                            .dtype = DType::f32,
                            .tol = 1e-5});
}

TEST(SyncBatchNorm, FloatInputsWithAMeanFarAboveTheirSpreadKeepAnAccurateVariance) {
  // Per-rank means rounded to f32 before combining would be off by ~1e-3 in the variance here.
  expect_union_equivalence({.kind = Kind::k2d,
                            .tail = {2, 2},
                            .channels = 3,
                            .batches = {2, 5, 1},
                            .dtype = DType::f32,
                            .tol = 1e-5,
                            .input_mean = 2e4});
}

TEST(SyncBatchNorm, WithoutAffineParameters) {
  expect_union_equivalence(
      {.kind = Kind::k2d, .tail = {3, 3}, .channels = 2, .batches = {2, 1, 3}, .affine = nn::Affine::kNo});
  expect_union_equivalence(
      {.kind = Kind::k1d, .tail = {4}, .channels = 3, .batches = {0, 3}, .affine = nn::Affine::kNo});
}

TEST(SyncBatchNorm, EvalModeUsesTheRunningStatisticsWithoutCollectives) {
  const Scenario s{.kind = Kind::k2d, .tail = {2, 2}, .channels = 3, .batches = {2, 1}};
  std::vector<std::shared_ptr<nn::BatchNorm>> layers{make_layer(s), make_layer(s)};
  Generator gen(3);
  std::vector<Tensor> train_x, eval_x;
  for (int r = 0; r < 2; ++r) {
    randomise(*layers[r], 11);
    train_x.push_back(randn(input_shape(s, 2), 0.0, 1.0, s.dtype, kCPU, &gen));
    eval_x.push_back(randn(input_shape(s, 2 + r), 0.0, 1.0, s.dtype, kCPU, &gen));
  }
  std::vector<Tensor> outputs(2);
  std::vector<std::uint64_t> before(2), after(2);
  run_threaded(2, [&](const GroupPtr& group) {
    const int r = group->rank();
    convert_sync_batchnorm(*layers[r], group);
    layers[r]->forward(train_x[r]);  // moves the running statistics away from their initial values
    layers[r]->eval();
    before[r] = group->sequence();
    outputs[r] = layers[r]->forward(eval_x[r]);
    after[r] = group->sequence();
  });
  for (int r = 0; r < 2; ++r) {
    EXPECT_EQ(after[r], before[r]) << "rank " << r << " issued a collective in eval mode";
    EXPECT_EQ(layers[r]->num_batches_tracked().item(), 1);
    // Hand formula: (x - running_mean) / sqrt(running_var + eps) * weight + bias, per channel.
    const std::vector<double> x = eval_x[r].to_vector<double>();
    const std::vector<double> rm = layers[r]->running_mean().to_vector<double>();
    const std::vector<double> rv = layers[r]->running_var().to_vector<double>();
    const std::vector<double> w = layers[r]->weight().to_vector<double>();
    const std::vector<double> b = layers[r]->bias().to_vector<double>();
    const std::vector<double> y = outputs[r].to_vector<double>();
    const std::int64_t plane = 4;
    for (std::size_t i = 0; i < x.size(); ++i) {
      const auto c = static_cast<std::size_t>((static_cast<std::int64_t>(i) / plane) % s.channels);
      const double want = (x[i] - rm[c]) / std::sqrt(rv[c] + 1e-5) * w[c] + b[c];
      ASSERT_NEAR(y[i], want, 1e-12) << "rank " << r << ", element " << i;
    }
  }
  // Both ranks' running statistics came from the same union statistics.
  expect_close(layers[0]->running_mean(), layers[1]->running_mean(), 0.0, "running_mean");
  expect_close(layers[0]->running_var(), layers[1]->running_var(), 0.0, "running_var");
}

TEST(SyncBatchNorm, ConvertsEveryBatchNormOfACifarResNetAndMatchesTheUnionBatch) {
  // ResNet-8: bn1 and two batch norms in each of three basic blocks (identity-padding shortcuts have none).
  constexpr int kWorld = 2;
  constexpr int kBatchNorms = 7;
  manual_seed(5);
  std::vector<std::shared_ptr<models::CifarResNet>> models;
  for (int r = 0; r <= kWorld; ++r) {
    models.push_back(std::make_shared<models::CifarResNet>(8, 3, 4));
    models.back()->to(DType::f64);
    if (r > 0) models.back()->load_state_dict(models[0]->state_dict());
  }
  const auto& reference = models[kWorld];
  int counted = 0;
  for (const auto& [name, m] : reference->named_modules())
    counted += dynamic_cast<nn::BatchNorm*>(m.get()) ? 1 : 0;
  ASSERT_EQ(counted, kBatchNorms);

  Generator gen(9);
  const std::vector<std::int64_t> batches{1, 2};
  const Tensor x_union = randn({3, 3, 8, 8}, 0.0, 1.0, DType::f64, kCPU, &gen);
  const Tensor g_union = randn({3, 4}, 0.0, 1.0, DType::f64, kCPU, &gen);
  const Tensor y_union = reference->forward(x_union);
  sum(y_union * g_union).backward();

  std::vector<int> converted(kWorld);
  std::vector<Tensor> outputs(kWorld);
  std::vector<std::string> summaries(kWorld);
  run_threaded(kWorld, [&](const GroupPtr& group) {
    const int r = group->rank();
    const std::int64_t begin = r == 0 ? 0 : batches[0];
    converted[r] = convert_sync_batchnorm(*models[r], group);
    EXPECT_EQ(convert_sync_batchnorm(*models[r], group), converted[r]);  // idempotent
    summaries[r] = models[r]->summary();
    const Tensor y = models[r]->forward(x_union.slice(0, begin, begin + batches[r]));
    sum(y * g_union.slice(0, begin, begin + batches[r])).backward();
    outputs[r] = y.detach();
  });

  for (int r = 0; r < kWorld; ++r) {
    EXPECT_EQ(converted[r], kBatchNorms);
    std::size_t shown = 0;
    for (std::size_t at = summaries[r].find(", sync"); at != std::string::npos;
         at = summaries[r].find(", sync", at + 1)) {
      ++shown;
    }
    EXPECT_EQ(shown, static_cast<std::size_t>(kBatchNorms)) << summaries[r];
    const std::int64_t begin = r == 0 ? 0 : batches[0];
    expect_close(outputs[r], y_union.detach().slice(0, begin, begin + batches[r]), 1e-10, "logits");
  }
  const auto reference_parameters = reference->named_parameters();
  for (std::size_t i = 0; i < reference_parameters.size(); ++i) {
    const auto& [name, want] = reference_parameters[i];
    Tensor got = zeros(want.shape(), DType::f64);
    for (int r = 0; r < kWorld; ++r) got.add_(models[r]->named_parameters()[i].second.grad());
    expect_close(got, want.grad(), 1e-9, "gradient of " + name);
  }
}

TEST(SyncBatchNorm, ConvertCountsTheModuleItselfAndNothingElse) {
  nn::BatchNorm1d bn(4);
  nn::Linear linear(3, 2);
  run_threaded(1, [&](const GroupPtr& group) {
    EXPECT_EQ(convert_sync_batchnorm(bn, group), 1);
    EXPECT_NE(bn.sync(), nullptr);
    EXPECT_STREQ(bn.sync()->name(), "sync");
    EXPECT_EQ(convert_sync_batchnorm(linear, group), 0);
    test::expect_error<ValueError>([&] { convert_sync_batchnorm(bn, nullptr); },
                                   {"convert_sync_batchnorm", "process group"});
  });
}

TEST(SyncBatchNorm, OneValuePerChannelOverAllRanksIsAnErrorOnEveryRank) {
  const Scenario s{.kind = Kind::k1d, .tail = {}, .channels = 2, .batches = {1, 0, 0}};
  std::vector<std::shared_ptr<nn::BatchNorm>> layers;
  std::vector<Tensor> inputs;
  for (int r = 0; r < 3; ++r) {
    layers.push_back(make_layer(s));
    inputs.push_back(ones(input_shape(s, s.batches[r]), s.dtype));
  }
  std::vector<std::string> messages(3);
  run_threaded(3, [&](const GroupPtr& group) {
    const int r = group->rank();
    convert_sync_batchnorm(*layers[r], group);
    messages[r] = test::expect_error<ValueError>([&] { layers[r]->forward(inputs[r]); },
                                                 {"SyncBatchNorm", "BatchNorm1d", "[1, 0, 0]"});
  });
  for (int r = 0; r < 3; ++r) {
    EXPECT_FALSE(messages[r].empty()) << "rank " << r;
    EXPECT_EQ(layers[r]->num_batches_tracked().item(), 0) << "rank " << r;
    expect_close(layers[r]->running_var(), ones({2}, s.dtype), 0.0, "running_var untouched");
  }
}

}  // namespace
}  // namespace lockstep::distributed
