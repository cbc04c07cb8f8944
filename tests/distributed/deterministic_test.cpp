// Deterministic mode's parts in one process: the fixed tree sum, random draws of batch-shaped tensors under a
// micro-shard scope, the sampler's contiguous rank rows, and a conv + batch norm + linear model whose
// gradients on threaded worlds of 2 and 4 ranks (DeterministicBatchNorm, the deterministic reducer) are
// bitwise those of one rank, at 1 and 2 threads. (Whole jobs under mpirun:
// tests/mpi_jobs/deterministic_test.cpp.)
#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "distributed/data_parallel.h"
#include "distributed/sync_batch_norm.h"
#include "distributed/threaded.h"
#include "io/data/sampler.h"
#include "src/core/micro_shards.h"
#include "src/core/rng.h"
#include "src/core/threading.h"
#include "src/nn/activation.h"
#include "src/nn/container.h"
#include "src/nn/conv.h"
#include "src/nn/linear.h"
#include "src/nn/norm.h"
#include "src/ops/dropout.h"
#include "src/ops/elementwise.h"
#include "src/ops/loss.h"
#include "src/ops/micro_shards.h"
#include "src/tensor/factories.h"

namespace lockstep::distributed {
namespace {

std::vector<float> values(const Tensor& t) { return t.contiguous().to_vector<float>(); }

TEST(MicroShards, TreeSumPairsNeighboursLevelByLevel) {
  // f32 sums whose order shows: the tree gives ((1e8 + 1) + (-1e8 + 1)) = 0; left to right would give 1.
  const std::vector<Tensor> parts{scalar_tensor(1e8), scalar_tensor(1.0), scalar_tensor(-1e8),
                                  scalar_tensor(1.0)};
  EXPECT_EQ(tree_sum(parts).item(), 0.0);
  // A rank's subtree (its aligned micro-shards) composes with the tree across ranks, bit for bit.
  manual_seed(3);
  std::vector<Tensor> eight;
  for (int i = 0; i < 8; ++i) eight.push_back(randn({5}) * (i + 1.0) * 1e3);
  const Tensor whole = tree_sum(eight);
  const Tensor halves =
      tree_sum({tree_sum({eight.begin(), eight.begin() + 4}), tree_sum({eight.begin() + 4, eight.end()})});
  EXPECT_EQ(values(whole), values(halves));
}

TEST(MicroShards, BatchShapedDrawsAreTheRowsOfOneDrawOverTheGlobalBatch) {
  // 5 values per row: rank rows starting at row 2 begin inside a Philox block of four.
  for (const std::int64_t first : {0, 2, 4, 6}) {
    SCOPED_TRACE(first);
    manual_seed(9);
    const Tensor global = randn({8, 5});
    const Tensor global_mask = dropout(ones({8, 5}), 0.5, DropoutMode::kTrain);
    const std::uint64_t after = default_generator().offset();
    manual_seed(9);
    MicroShardScope scope({1, 2, first, 8});
    const Tensor mine = randn({2, 5});
    const Tensor mask = dropout(ones({2, 5}), 0.5, DropoutMode::kTrain);
    EXPECT_EQ(values(mine), values(global.slice(0, first, first + 2)));
    EXPECT_EQ(values(mask), values(global_mask.slice(0, first, first + 2)));
    EXPECT_EQ(default_generator().offset(), after);  // every rank's stream moves as one process's
    // Not batch-shaped: drawn as usual.
    EXPECT_EQ(randn({3, 5}).numel(), 15);
  }
}

TEST(MicroShards, ScopeRejectsRowsThatDoNotDivideTheRanksRows) {
  EXPECT_THROW(MicroShardScope({3, 4, 0, 8}), ValueError);
  EXPECT_THROW(MicroShardScope({2, 4, 6, 8}), ValueError);
}

TEST(MicroShards, SamplerBlocksGiveEachRankContiguousRowsOfTheGlobalBatch) {
  // 2 ranks x 3 samples: each global batch of 6 positions is rows 0-2 on rank 0 and 3-5 on rank 1.
  const io::Sampler one(20, 4, io::Shuffle::kYes);
  const std::vector<std::int64_t> order = one.permutation(1);
  for (int rank = 0; rank < 2; ++rank) {
    const io::Sampler s(20, 4, io::Shuffle::kYes, rank, 2, io::Pad::kYes, 3);
    const std::vector<std::int64_t> mine = s.indices(1);
    ASSERT_EQ(mine.size(), 12u);  // 4 global batches of 6 (the last wraps around)
    for (std::size_t k = 0; k < mine.size(); ++k) {
      const std::size_t position = (k / 3) * 6 + static_cast<std::size_t>(rank) * 3 + k % 3;
      EXPECT_EQ(mine[k], order[position % 20]) << "rank " << rank << ", k " << k;
    }
  }
}

// Conv (bias) -> batch norm -> ReLU -> conv (no bias) -> flatten -> linear, in f32.
std::shared_ptr<nn::Module> make_model() {
  auto model = std::make_shared<nn::Sequential>();
  model->push_back(
      std::make_shared<nn::Conv2d>(nn::Conv2dOptions{.in = 2, .out = 6, .kernel = 3, .padding = 1}));
  model->push_back(std::make_shared<nn::BatchNorm2d>(6));
  model->push_back(std::make_shared<nn::ReLU>());
  model->push_back(std::make_shared<nn::Conv2d>(
      nn::Conv2dOptions{.in = 6, .out = 4, .kernel = 3, .stride = 2, .padding = 1, .bias = nn::Bias::kNo}));
  model->push_back(std::make_shared<nn::Flatten>());
  model->push_back(std::make_shared<nn::Linear>(4 * 4 * 4, 5));
  return model;
}

// Gradients and batch-norm running statistics after one deterministic step of the global batch (16 images
// in 8 micro-shards) on `world` threaded ranks at `threads` threads each; rank 0's.
std::map<std::string, std::vector<float>> step_on(int world, int threads, const nn::StateDict& state,
                                                  const Tensor& x, const Tensor& y) {
  std::map<std::string, std::vector<float>> out;
  std::mutex mutex;
  run_threaded(world, [&](const std::shared_ptr<ProcessGroup>& group) {
    set_num_threads(threads);
    const std::shared_ptr<nn::Module> model = make_model();
    model->load_state_dict(state);
    convert_sync_batchnorm(*model, group, BatchNormSync::kDeterministic);
    ReducerOptions options;
    options.deterministic = true;
    DataParallel dp(model, group, options);
    const std::int64_t rows = 16 / world, first = group->rank() * rows;
    MicroShardScope scope({2, rows, first, 16});
    cross_entropy(dp(x.slice(0, first, first + rows)), y.slice(0, first, first + rows)).backward();
    if (group->rank() != 0) return;
    std::lock_guard lock(mutex);
    for (const auto& [name, p] : model->named_parameters()) out[name + ".grad"] = values(p.grad());
    for (const auto& [name, b] : model->named_buffers())
      if (b.dtype() == DType::f32) out[name] = values(b);
  });
  return out;
}

TEST(DeterministicMode, GradientsOnTwoAndFourRanksAndTwoThreadsAreBitwiseThoseOfOneRank) {
  manual_seed(21);
  const nn::StateDict state = make_model()->state_dict();
  const Tensor x = randn({16, 2, 8, 8}) * 3.0 + 1.0;
  const Tensor y =
      from_vector(std::vector<std::int64_t>{0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0}, {16});
  const int before = num_threads();
  const auto reference = step_on(1, 1, state, x, y);
  ASSERT_EQ(reference.size(), 9u);  // 7 parameter gradients and the 2 running statistics
  for (const auto& [world, threads] : std::vector<std::pair<int, int>>{{1, 2}, {2, 1}, {4, 1}, {2, 2}}) {
    SCOPED_TRACE(str_cat(world, " ranks x ", threads, " threads"));
    const auto got = step_on(world, threads, state, x, y);
    ASSERT_EQ(got.size(), reference.size());
    for (const auto& [name, v] : reference) EXPECT_EQ(got.at(name), v) << name;
  }
  set_num_threads(before);
}

TEST(DeterministicMode, BatchNormOutsideAScopeNamesWhatItExpected) {
  run_threaded(1, [](const std::shared_ptr<ProcessGroup>& group) {
    nn::BatchNorm2d bn(3);
    convert_sync_batchnorm(bn, group, BatchNormSync::kDeterministic);
    try {
      bn(randn({4, 3, 2, 2}));
      ADD_FAILURE() << "expected a ValueError";
    } catch (const ValueError& e) {
      EXPECT_NE(std::string(e.what()).find("cut into micro-shards"), std::string::npos) << e.what();
    }
  });
}

}  // namespace
}  // namespace lockstep::distributed
