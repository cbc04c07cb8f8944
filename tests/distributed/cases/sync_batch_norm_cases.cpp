// The SyncBatchNorm case table (run by tests/distributed on threaded worlds and by tests/mpi under mpirun):
// every rank builds the same union batch from one seed, trains a synchronised layer on its rows and a plain
// layer on the whole union batch, and compares outputs, input and parameter gradients and running statistics.
#include <cmath>
#include <cstdint>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "distributed/sync_batch_norm.h"
#include "src/autograd/engine.h"
#include "src/autograd/grad_mode.h"
#include "src/core/rng.h"
#include "src/nn/norm.h"
#include "src/ops/elementwise.h"
#include "src/ops/reduce.h"
#include "src/tensor/factories.h"
#include "tests/distributed/cases/group_case.h"
#include "tests/support/expect_error.h"

namespace lockstep::distributed::test {

// |got - want| <= tol * (1 + |want|) element-wise, with the shapes equal.
void expect_close(const Tensor& got, const Tensor& want, double tol, const std::string& what) {
  ASSERT_TRUE(got.defined()) << what;
  ASSERT_EQ(got.shape(), want.shape()) << what;
  const std::vector<double> g = got.to_vector<double>(), w = want.to_vector<double>();
  for (std::size_t i = 0; i < g.size(); ++i) {
    ASSERT_NEAR(g[i], w[i], tol * (1.0 + std::abs(w[i]))) << what << ", element " << i;
  }
}

namespace {

using GroupPtr = std::shared_ptr<ProcessGroup>;

enum class Kind : std::uint8_t { k1d, k2d };

struct Scenario {
  Kind kind = Kind::k2d;
  Shape tail;  // trailing dims after [N, C]: {} for BatchNorm1d [N, C], {L}, or {H, W}
  std::int64_t channels = 3;
  // Rank r's batch is pattern[r % pattern.size()], so that one scenario runs at every world size.
  std::vector<std::int64_t> pattern;
  DType dtype = DType::f64;
  nn::Affine affine = nn::Affine::kYes;
  double momentum = 0.1;
  double tol = 1e-10;
  double input_mean = 0.5;  // of the inputs, whose std is 2
};

std::vector<std::int64_t> batches_of(const Scenario& s, int world) {
  std::vector<std::int64_t> batches;
  for (int r = 0; r < world; ++r)
    batches.push_back(s.pattern[static_cast<std::size_t>(r) % s.pattern.size()]);
  return batches;
}

Shape input_shape(const Scenario& s, std::int64_t n) {
  Shape shape{n, s.channels};
  shape.insert(shape.end(), s.tail.begin(), s.tail.end());
  return shape;
}

// A layer with non-trivial weight, bias and running statistics, the same on every rank.
std::shared_ptr<nn::BatchNorm> make_layer(const Scenario& s) {
  const nn::BatchNormOptions options{.momentum = s.momentum, .affine = s.affine};
  std::shared_ptr<nn::BatchNorm> layer;
  if (s.kind == Kind::k2d) {
    layer = std::make_shared<nn::BatchNorm2d>(s.channels, options);
  } else {
    layer = std::make_shared<nn::BatchNorm1d>(s.channels, options);
  }
  layer->to(s.dtype);
  Generator gen(17);
  NoGradGuard no_grad;
  Tensor rm = layer->running_mean(), rv = layer->running_var();
  rm.copy_(randn({s.channels}, 0.0, 1.0, s.dtype, kCPU, &gen));
  rv.copy_(rand({s.channels}, 0.5, 2.0, s.dtype, kCPU, &gen));
  if (layer->weight().defined()) {
    Tensor w = layer->weight(), b = layer->bias();
    w.copy_(rand({s.channels}, 0.5, 1.5, s.dtype, kCPU, &gen));
    b.copy_(randn({s.channels}, 0.0, 1.0, s.dtype, kCPU, &gen));
  }
  return layer;
}

// Two training steps (loss sum(y * g)) on this rank's rows of each step's union batch, against the same
// steps of a plain layer on the whole union batch. The parameter gradients are all-reduced (summed) as a
// stand-in for DataParallel's average times the world size. Every collective comes before any check.
void expect_union_equivalence(const Scenario& s, const GroupPtr& group) {
  const int rank = group->rank();
  const std::vector<std::int64_t> batches = batches_of(s, group->size());
  const std::int64_t total = std::accumulate(batches.begin(), batches.end(), std::int64_t{0});
  const std::int64_t begin = std::accumulate(batches.begin(), batches.begin() + rank, std::int64_t{0});
  const std::int64_t end = begin + batches[static_cast<std::size_t>(rank)];
  constexpr int kSteps = 2;

  const std::shared_ptr<nn::BatchNorm> layer = make_layer(s), reference = make_layer(s);
  EXPECT_EQ(convert_sync_batchnorm(*layer, group), 1);
  Generator gen(123);
  std::vector<Tensor> y_local, dx_local, y_union, dx_union;
  for (int step = 0; step < kSteps; ++step) {
    const Tensor x_union = randn(input_shape(s, total), s.input_mean, 2.0, s.dtype, kCPU, &gen);
    const Tensor g_union = randn(input_shape(s, total), 0.0, 1.0, s.dtype, kCPU, &gen);
    const Tensor x = x_union.slice(0, begin, end).clone().requires_grad_();
    const Tensor y = layer->forward(x);
    sum(y * g_union.slice(0, begin, end)).backward();
    y_local.push_back(y.detach());
    dx_local.push_back(x.grad());

    const Tensor xu = x_union.clone().requires_grad_();
    const Tensor yu = reference->forward(xu);
    sum(yu * g_union).backward();
    y_union.push_back(yu.detach().slice(0, begin, end));
    dx_union.push_back(xu.grad().slice(0, begin, end));
  }
  std::vector<Tensor> grads;
  if (s.affine == nn::Affine::kYes) {
    for (const Tensor& p : {layer->weight(), layer->bias()}) {
      grads.push_back(p.grad().clone());
      group->all_reduce(grads.back(), ReduceOp::kSum)->wait();
    }
  }

  const std::string at = str_cat("world ", group->size(), ", rank ", rank);
  for (int step = 0; step < kSteps; ++step) {
    const std::string where = str_cat(at, ", step ", step);
    expect_close(y_local[step], y_union[step], s.tol, "output, " + where);
    if (end > begin) {
      expect_close(dx_local[step], dx_union[step], s.tol, "input gradient, " + where);
    } else {
      EXPECT_TRUE(!dx_local[step].defined() || dx_local[step].numel() == 0) << where;
    }
  }
  expect_close(layer->running_mean(), reference->running_mean(), s.tol, "running_mean, " + at);
  expect_close(layer->running_var(), reference->running_var(), s.tol, "running_var, " + at);
  EXPECT_EQ(layer->num_batches_tracked().item(), kSteps) << at;
  if (s.affine == nn::Affine::kYes) {
    expect_close(grads[0], reference->weight().grad(), s.tol, "weight gradient summed over ranks, " + at);
    expect_close(grads[1], reference->bias().grad(), s.tol, "bias gradient summed over ranks, " + at);
  } else {
    EXPECT_FALSE(layer->weight().defined()) << at;
  }
}

// Eval mode normalises with the running statistics, each rank its own batch, without a collective.
void eval_issues_no_collective(const GroupPtr& group) {
  const Scenario s{.kind = Kind::k2d, .tail = {2, 2}, .channels = 2, .pattern = {2}};
  const std::shared_ptr<nn::BatchNorm> layer = make_layer(s), reference = make_layer(s);
  convert_sync_batchnorm(*layer, group);
  layer->eval();
  reference->eval();
  Generator gen(5 + static_cast<std::uint64_t>(group->rank()));
  const Tensor x = randn(input_shape(s, 2 + group->rank()), 0.0, 1.0, s.dtype, kCPU, &gen);
  const std::uint64_t before = group->sequence();
  const Tensor y = layer->forward(x);
  EXPECT_EQ(group->sequence(), before) << "rank " << group->rank() << " issued a collective in eval mode";
  expect_close(y, reference->forward(x), 0.0, str_cat("eval output, rank ", group->rank()));
  EXPECT_EQ(layer->num_batches_tracked().item(), 0);
}

// One value per channel over all ranks: the same ValueError on every rank, the layer untouched.
void one_value_fails_everywhere(const GroupPtr& group) {
  const Scenario s{.kind = Kind::k1d, .tail = {}, .channels = 2, .pattern = {2}};
  const std::shared_ptr<nn::BatchNorm> layer = make_layer(s);
  const Tensor running_var = layer->running_var().clone();
  convert_sync_batchnorm(*layer, group);
  const Tensor x = ones(input_shape(s, group->rank() == 0 ? 1 : 0), s.dtype);
  std::string counts = "[1";
  for (int r = 1; r < group->size(); ++r) counts += ", 0";
  counts += "]";
  lockstep::test::expect_error<ValueError>([&] { layer->forward(x); },
                                           {"SyncBatchNorm", "BatchNorm1d", counts});
  EXPECT_EQ(layer->num_batches_tracked().item(), 0);
  expect_close(layer->running_var(), running_var, 0.0, "running_var untouched");
}

// A gradient penalty through SyncBatchNorm would need collectives inside the recorded backward: refused
// with an AutogradError on every rank, before any collective of the backward.
void second_derivatives_are_refused(const GroupPtr& group) {
  const Scenario s{.kind = Kind::k2d, .tail = {2, 2}, .channels = 2, .pattern = {2}};
  const std::shared_ptr<nn::BatchNorm> layer = make_layer(s);
  convert_sync_batchnorm(*layer, group);
  Generator gen(9);
  const Tensor x = randn(input_shape(s, 2), 0.0, 1.0, s.dtype, kCPU, &gen).requires_grad_();
  const Tensor y = layer->forward(x);
  const std::uint64_t before = group->sequence();
  lockstep::test::expect_error<AutogradError>(
      [&] { grad({sum(y * y)}, {x}, {}, RetainGraph::kYes, CreateGraph::kYes); },
      {"batch_norm backward", "sync", "create_graph"});
  EXPECT_EQ(group->sequence(), before);
  // The first-order backward still works (one all_reduce).
  const Tensor dx = grad({sum(y * y)}, {x})[0];
  EXPECT_EQ(group->sequence(), before + 1);
  EXPECT_EQ(dx.shape(), x.shape());
}

GroupCase union_case(std::string name, Scenario s) {
  return {std::move(name), [s](const GroupPtr& group) { expect_union_equivalence(s, group); }};
}

std::vector<GroupCase> make_cases() {
  std::vector<GroupCase> cases;
  cases.push_back(union_case("BatchNorm2dEvenBatches",
                             {.kind = Kind::k2d, .tail = {3, 3}, .channels = 4, .pattern = {2}}));
  cases.push_back(union_case("BatchNorm2dUnevenBatches",
                             {.kind = Kind::k2d, .tail = {3, 4}, .channels = 3, .pattern = {2, 3}}));
  cases.push_back(union_case("BatchNorm2dOddBatches",
                             {.kind = Kind::k2d, .tail = {2, 3}, .channels = 4, .pattern = {1, 3, 5}}));
  cases.push_back(union_case("BatchNorm2dWithAnEmptyRank",
                             {.kind = Kind::k2d, .tail = {2, 2}, .channels = 2, .pattern = {3, 0, 1, 2}}));
  cases.push_back(union_case("BatchNorm2dEmptyRankAndGrowingBatches",
                             {.kind = Kind::k2d, .tail = {2, 3}, .channels = 3, .pattern = {2, 0, 4, 5}}));
  cases.push_back(union_case("BatchNorm1dOnNCWithUnevenAndEmptyBatches",
                             {.kind = Kind::k1d, .tail = {}, .channels = 5, .pattern = {4, 0, 1}}));
  GroupCase one_each =
      union_case("BatchNorm1dOnNCWithOneRowPerRank",
                 {.kind = Kind::k1d, .tail = {}, .channels = 3, .pattern = {1}, .momentum = 0.3});
  one_each.min_world = 2;  // one row in all cannot train
  cases.push_back(std::move(one_each));
  cases.push_back(union_case("BatchNorm1dOnNCLWithAnEmptyRank",
                             {.kind = Kind::k1d, .tail = {5}, .channels = 3, .pattern = {2, 1, 0, 3}}));
  cases.push_back(union_case("BatchNorm1dOnNCLEmptyRankAndGrowingBatches",
                             {.kind = Kind::k1d, .tail = {4}, .channels = 3, .pattern = {2, 0, 4, 5}}));
  cases.push_back(union_case("FloatBatchNorm2d", {.kind = Kind::k2d,
                                                  .tail = {4, 4},
                                                  .channels = 3,
                                                  .pattern = {2, 5, 1},
                                                  .dtype = DType::f32,
                                                  .tol = 1e-5}));
  cases.push_back(union_case("FloatBatchNorm1dWithAnEmptyRank", {.kind = Kind::k1d,
                                                                 .tail = {},
                                                                 .channels = 6,
                                                                 .pattern = {4, 0, 7, 3},
                                                                 .dtype = DType::f32,
                                                                 .tol = 1e-5}));
  // Per-rank means rounded to f32 before combining would be off by ~1e-3 in the variance here.
  cases.push_back(union_case("FloatWithAMeanFarAboveItsSpread", {.kind = Kind::k2d,
                                                                 .tail = {2, 2},
                                                                 .channels = 3,
                                                                 .pattern = {2, 5, 1},
                                                                 .dtype = DType::f32,
                                                                 .tol = 1e-5,
                                                                 .input_mean = 2e4}));
  cases.push_back(union_case(
      "BatchNorm2dWithoutAffine",
      {.kind = Kind::k2d, .tail = {3, 3}, .channels = 2, .pattern = {2, 1, 3}, .affine = nn::Affine::kNo}));
  cases.push_back(union_case(
      "BatchNorm1dWithoutAffineAndAnEmptyRank",
      {.kind = Kind::k1d, .tail = {}, .channels = 4, .pattern = {3, 0}, .affine = nn::Affine::kNo}));
  cases.push_back({"EvalModeIssuesNoCollective", eval_issues_no_collective});
  cases.push_back({"OneValuePerChannelOverAllRanksFailsOnEveryRank", one_value_fails_everywhere});
  cases.push_back({"SecondDerivativesAreRefused", second_derivatives_are_refused});
  return cases;
}

}  // namespace

const std::vector<GroupCase>& sync_batch_norm_cases() {
  static const std::vector<GroupCase> cases = make_cases();
  return cases;
}

std::vector<const GroupCase*> case_pointers(const std::vector<GroupCase>& cases) {
  std::vector<const GroupCase*> pointers;
  for (const GroupCase& c : cases) pointers.push_back(&c);
  return pointers;
}

std::string case_name(const ::testing::TestParamInfo<const GroupCase*>& info) { return info.param->name; }

}  // namespace lockstep::distributed::test
