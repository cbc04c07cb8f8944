// SyncBatchNorm across the real MPI world against plain BatchNorm on the union batch, which every rank builds
// from the same seed and computes locally: outputs, input and parameter gradients, running statistics, for
// even, uneven and empty per-rank batches; eval mode issues no collective; too few values fail everywhere.
#include "distributed/sync_batch_norm.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "src/autograd/grad_mode.h"
#include "src/core/rng.h"
#include "src/nn/norm.h"
#include "src/ops/elementwise.h"
#include "src/ops/reduce.h"
#include "src/tensor/factories.h"
#include "tests/mpi/mpi_env.h"
#include "tests/support/expect_error.h"

namespace lockstep::distributed {
namespace {

enum class Kind : std::uint8_t { k1d, k2d };
enum class Split : std::uint8_t {
  kEven,     // 2 rows each
  kUneven,   // rank 1 empty, rank r != 1 gets r + 2 rows
  kOneEach,  // 1 row each (the fewest that trains on 2 ranks)
};

struct Scenario {
  Kind kind = Kind::k2d;
  Shape tail;  // dims after [N, C]
  std::int64_t channels = 3;
  Split split = Split::kEven;
  DType dtype = DType::f64;
  nn::Affine affine = nn::Affine::kYes;
  double tol = 1e-10;
};

std::vector<std::int64_t> batches_of(Split split, int world) {
  std::vector<std::int64_t> batches;
  for (int r = 0; r < world; ++r) {
    switch (split) {
      case Split::kEven:
        batches.push_back(2);
        break;
      case Split::kUneven:
        batches.push_back(r == 1 ? 0 : r + 2);
        break;
      case Split::kOneEach:
        batches.push_back(1);
        break;
    }
  }
  return batches;
}

Shape input_shape(const Scenario& s, std::int64_t n) {
  Shape shape{n, s.channels};
  shape.insert(shape.end(), s.tail.begin(), s.tail.end());
  return shape;
}

std::shared_ptr<nn::BatchNorm> make_layer(const Scenario& s) {
  const nn::BatchNormOptions options{.affine = s.affine};
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

void expect_close(const Tensor& got, const Tensor& want, double tol, const std::string& what) {
  ASSERT_TRUE(got.defined()) << what;
  ASSERT_EQ(got.shape(), want.shape()) << what;
  const std::vector<double> g = got.to_vector<double>(), w = want.to_vector<double>();
  for (std::size_t i = 0; i < g.size(); ++i) {
    ASSERT_NEAR(g[i], w[i], tol * (1.0 + std::abs(w[i]))) << what << ", element " << i;
  }
}

// Two training steps (loss sum(y * g)) on this rank's rows of each step's union batch, against the same steps
// of a plain layer on the whole union batch. The parameter gradients are all-reduced (summed) here as a
// stand-in for DataParallel's average times the world size. Every collective is issued before any check, so
// a failed check cannot leave the other ranks waiting.
void expect_union_equivalence(const Scenario& s) {
  const std::shared_ptr<ProcessGroup> world = test::mpi_world();
  const int rank = world->rank();
  const std::vector<std::int64_t> batches = batches_of(s.split, world->size());
  const std::int64_t total = std::accumulate(batches.begin(), batches.end(), std::int64_t{0});
  const std::int64_t begin = std::accumulate(batches.begin(), batches.begin() + rank, std::int64_t{0});
  const std::int64_t end = begin + batches[static_cast<std::size_t>(rank)];
  constexpr int kSteps = 2;

  const std::shared_ptr<nn::BatchNorm> layer = make_layer(s), reference = make_layer(s);
  EXPECT_EQ(convert_sync_batchnorm(*layer, world), 1);
  Generator gen(123);
  std::vector<Tensor> y_local, dx_local, y_union, dx_union;
  for (int step = 0; step < kSteps; ++step) {
    const Tensor x_union = randn(input_shape(s, total), 0.5, 2.0, s.dtype, kCPU, &gen);
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
      world->all_reduce(grads.back(), ReduceOp::kSum)->wait();
    }
  }

  for (int step = 0; step < kSteps; ++step) {
    const std::string where = "rank " + std::to_string(rank) + ", step " + std::to_string(step);
    expect_close(y_local[step], y_union[step], s.tol, "output, " + where);
    if (end > begin) {
      expect_close(dx_local[step], dx_union[step], s.tol, "input gradient, " + where);
    } else {
      EXPECT_TRUE(!dx_local[step].defined() || dx_local[step].numel() == 0) << where;
    }
  }
  expect_close(layer->running_mean(), reference->running_mean(), s.tol, "running_mean");
  expect_close(layer->running_var(), reference->running_var(), s.tol, "running_var");
  EXPECT_EQ(layer->num_batches_tracked().item(), kSteps);
  if (s.affine == nn::Affine::kYes) {
    expect_close(grads[0], reference->weight().grad(), s.tol, "weight gradient summed over ranks");
    expect_close(grads[1], reference->bias().grad(), s.tol, "bias gradient summed over ranks");
  }
}

TEST(SyncBatchNormMpi, BatchNorm2dWithEvenBatches) {
  expect_union_equivalence({.kind = Kind::k2d, .tail = {3, 3}, .channels = 4, .split = Split::kEven});
}

TEST(SyncBatchNormMpi, BatchNorm2dWithUnevenBatchesAndAnEmptyRank) {
  expect_union_equivalence({.kind = Kind::k2d, .tail = {2, 3}, .channels = 3, .split = Split::kUneven});
}

TEST(SyncBatchNormMpi, BatchNorm1dOnNCWithOneRowPerRank) {
  expect_union_equivalence({.kind = Kind::k1d, .tail = {}, .channels = 5, .split = Split::kOneEach});
}

TEST(SyncBatchNormMpi, BatchNorm1dOnNCLWithAnEmptyRank) {
  expect_union_equivalence({.kind = Kind::k1d, .tail = {4}, .channels = 3, .split = Split::kUneven});
}

TEST(SyncBatchNormMpi, FloatAndNoAffine) {
  expect_union_equivalence({.kind = Kind::k2d,
                            .tail = {4, 4},
                            .channels = 3,
                            .split = Split::kUneven,
                            .dtype = DType::f32,
                            .tol = 1e-5});
  expect_union_equivalence(
      {.kind = Kind::k1d, .tail = {}, .channels = 4, .split = Split::kUneven, .affine = nn::Affine::kNo});
}

TEST(SyncBatchNormMpi, EvalModeIssuesNoCollective) {
  const std::shared_ptr<ProcessGroup> world = test::mpi_world();
  const Scenario s{.kind = Kind::k2d, .tail = {2, 2}, .channels = 2};
  const std::shared_ptr<nn::BatchNorm> layer = make_layer(s), reference = make_layer(s);
  convert_sync_batchnorm(*layer, world);
  layer->eval();
  reference->eval();
  Generator gen(5 + static_cast<std::uint64_t>(world->rank()));  // each rank its own input
  const Tensor x = randn(input_shape(s, 3), 0.0, 1.0, s.dtype, kCPU, &gen);
  const std::uint64_t before = world->sequence();
  const Tensor y = layer->forward(x);
  EXPECT_EQ(world->sequence(), before);
  expect_close(y, reference->forward(x), 0.0, "eval output");
  EXPECT_EQ(layer->num_batches_tracked().item(), 0);
}

TEST(SyncBatchNormMpi, OneValuePerChannelOverAllRanksFailsOnEveryRank) {
  const std::shared_ptr<ProcessGroup> world = test::mpi_world();
  const Scenario s{.kind = Kind::k1d, .tail = {}, .channels = 2};
  const std::shared_ptr<nn::BatchNorm> layer = make_layer(s);
  convert_sync_batchnorm(*layer, world);
  const Tensor x = ones(input_shape(s, world->rank() == 0 ? 1 : 0), s.dtype);
  std::string counts = "[1";
  for (int r = 1; r < world->size(); ++r) counts += ", 0";
  counts += "]";
  test::expect_error<ValueError>([&] { layer->forward(x); }, {"SyncBatchNorm", "BatchNorm1d", counts});
  EXPECT_EQ(layer->num_batches_tracked().item(), 0);
}

}  // namespace
}  // namespace lockstep::distributed
