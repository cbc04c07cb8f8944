// Data-parallel equivalence at the real MPI world size: N ranks with per-rank batch B end with the same
// parameters and buffers as one process with batch N * B, for an MLP, a ResNet with SyncBatchNorm and a
// DCGAN; and the reducer's first bucket starts its all-reduce while backward is still running.
#include "distributed/data_parallel.h"

#include <gtest/gtest.h>

#include <mutex>
#include <vector>

#include "src/models/mlp.h"
#include "src/models/recurrent.h"
#include "src/models/resnet.h"
#include "src/ops/loss.h"
#include "src/tensor/factories.h"
#include "tests/mpi/mpi_env.h"
#include "tests/support/parallel_training.h"

namespace lockstep::test {
namespace {

using distributed::ReducerEvent;

TEST(DataParallelMpi, MlpMatchesOneProcessWithTheUnionBatch) {
  const auto world = mpi_world();
  // Small buckets: several all-reduces per step.
  ClassifierRun run{.sample_shape = {1, 8, 8},
                    .classes = 10,
                    .per_rank_batch = 5,
                    .steps = 4,
                    .world = world->size(),
                    .bucket_bytes = 16 << 10};
  const ModelFactory make = [] {
    return std::make_shared<models::MLP>(64, std::vector<std::int64_t>{48, 32}, 10);
  };
  const nn::StateDict parallel = train_classifier(make, run, world);
  const nn::StateDict single = train_classifier(make, run);
  const Difference diff = max_relative_difference(parallel, single);
  EXPECT_LT(diff.value, 1e-5) << diff;
  // And the run moved the weights: the comparison is not between two untouched models.
  run.steps = 0;
  EXPECT_GT(max_relative_difference(single, train_classifier(make, run)).value, 1e-3);
}

TEST(DataParallelMpi, RecurrentClassifiersMatchOneProcessWithTheUnionBatch) {
  // Backpropagation through 8 rows; f64, so that only the reduction order separates the two.
  const auto world = mpi_world();
  for (const nn::RecurrentKind kind : {nn::RecurrentKind::kLstm, nn::RecurrentKind::kGru}) {
    SCOPED_TRACE(nn::recurrent_kind_name(kind));
    ClassifierRun run{.sample_shape = {1, 8, 8},
                      .classes = 10,
                      .per_rank_batch = 3,
                      .steps = 3,
                      .world = world->size(),
                      .dtype = DType::f64};
    const ModelFactory make = [kind] {
      return std::make_shared<models::RowSequenceClassifier>(kind, 1, 8, 8, std::vector<std::int64_t>{12, 10}, 10);
    };
    const Difference diff = max_relative_difference(train_classifier(make, run, world), train_classifier(make, run));
    EXPECT_LT(diff.value, 1e-10) << diff;
  }
}

TEST(DataParallelMpi, ResNetWithSyncBatchNormMatchesOneProcess) {
  const auto world = mpi_world();
  const ModelFactory make = [] { return std::make_shared<models::CifarResNet>(8, 1, 10); };
  ClassifierRun run{.sample_shape = {1, 12, 12},
                    .classes = 10,
                    .per_rank_batch = 3,
                    .steps = 3,
                    .world = world->size(),
                    .sync_batchnorm = true,
                    .bucket_bytes = 32 << 10};
  const nn::StateDict parallel = train_classifier(make, run, world);
  const nn::StateDict single = train_classifier(make, run);
  // Running statistics and num_batches_tracked are part of the state compared.
  const Difference diff = max_relative_difference(parallel, single);
  EXPECT_LT(diff.value, 1e-5) << diff;
}

// Adversarial training (train.adversarial_epsilon): each rank makes FGSM examples of its own rows; N ranks
// x B equal one process x N B, and the input-gradient pass issues no collective (the reducer all-reduces
// each bucket once per step, as without the attack).
TEST(DataParallelMpi, AdversarialTrainingMatchesOneProcessAndAddsNoCollective) {
  const auto world = mpi_world();
  const ModelFactory mlp = [] {
    return std::make_shared<models::MLP>(64, std::vector<std::int64_t>{48, 32}, 10);
  };
  const ModelFactory resnet = [] { return std::make_shared<models::CifarResNet>(8, 1, 10); };
  for (const bool with_resnet : {false, true}) {
    ClassifierRun run{.sample_shape = with_resnet ? Shape{1, 12, 12} : Shape{1, 8, 8},
                      .classes = 10,
                      .per_rank_batch = 3,
                      .steps = 3,
                      .world = world->size(),
                      .sync_batchnorm = with_resnet,
                      .bucket_bytes = 16 << 10,
                      .dtype = DType::f64,
                      .adversarial_epsilon = 0.1};
    const ModelFactory& make = with_resnet ? resnet : mlp;
    std::vector<std::uint64_t> adversarial, plain;
    run.collectives_per_step = &adversarial;
    const nn::StateDict parallel = train_classifier(make, run, world);
    const nn::StateDict single = train_classifier(make, run);
    const Difference diff = max_relative_difference(parallel, single);
    EXPECT_LT(diff.value, 1e-9) << diff << (with_resnet ? " (ResNet)" : " (MLP)");
    // The attack changed the training: not the same as without it.
    run.adversarial_epsilon = 0.0;
    run.collectives_per_step = &plain;
    EXPECT_GT(max_relative_difference(train_classifier(make, run, world), parallel).value, 1e-3);
    EXPECT_EQ(adversarial, plain);
    ASSERT_EQ(adversarial.size(), 3u);
    EXPECT_GT(adversarial[0], 1u);  // several buckets
  }
}

TEST(DataParallelMpi, DcganStepPairsMatchOneProcess) {
  const auto world = mpi_world();
  for (DType dtype : {DType::f64, DType::f32}) {
    GanRun run{.latent = 16, .per_rank_batch = 8, .steps = 2, .world = world->size(), .dtype = dtype};
    const Difference diff = max_relative_difference(train_gan(run, world), train_gan(run));
    // f64: every tensor agrees to rounding; f32: the parameters as a whole (see Difference::overall).
    EXPECT_LT(dtype == DType::f64 ? diff.value : diff.overall, dtype == DType::f64 ? 1e-10 : 1e-5)
        << diff << " in " << dtype_name(dtype);
  }
}

TEST(DataParallelMpi, WganGpStepPairsMatchOneProcess) {
  // Each rank penalises its own interpolates (the double backward's parameter gradients are reduced like any
  // other): N ranks x batch B equal one process x N B.
  const auto world = mpi_world();
  for (DType dtype : {DType::f64, DType::f32}) {
    GanRun run{.latent = 16,
               .per_rank_batch = 4,
               .steps = 2,
               .world = world->size(),
               .dtype = dtype,
               .gradient_penalty = true};
    const Difference diff = max_relative_difference(train_gan(run, world), train_gan(run));
    EXPECT_LT(dtype == DType::f64 ? diff.value : diff.overall, dtype == DType::f64 ? 1e-10 : 1e-5)
        << diff << " in " << dtype_name(dtype);
  }
}

TEST(DataParallelMpi, VaeAndPenalisedAutoencodersMatchOneProcess) {
  // The VAE's noise and the contractive probes are drawn for the global batch; the exact contractive penalty
  // is a double backward per code unit; KL sparsity compares the global batch's mean code with its target.
  using enum AutoencoderRun::Penalty;
  const auto world = mpi_world();
  for (const auto& [variational, penalty, name] : {std::tuple{true, kNone, "VAE"}, {false, kContractive, "contractive"},
                                                   {false, kContractiveProbe, "contractive, one probe"},
                                                   {false, kKlSparsity, "KL sparsity"}}) {
    AutoencoderRun run{.world = world->size(), .variational = variational, .penalty = penalty, .dtype = DType::f64};
    const Difference diff = max_relative_difference(train_autoencoder(run, world), train_autoencoder(run));
    EXPECT_LT(diff.value, 1e-10) << diff << " (" << name << ")";
  }
}

TEST(DataParallelMpi, PixelCnnMatchesOneProcess) {
  const auto world = mpi_world();
  const Difference diff = max_relative_difference(train_pixelcnn(world->size(), 3, 3, world), train_pixelcnn(world->size(), 3, 3));
  EXPECT_LT(diff.value, 1e-10) << diff;
}

// Records when each collective of the group leaves the queue (on the communication thread).
class StartLog {
 public:
  void on(const distributed::CollectiveCall& call, distributed::CollectiveEvent event) {
    if (event != distributed::CollectiveEvent::kStart) return;
    std::lock_guard lock(mutex_);
    starts_.push_back({call.sequence, distributed::next_event_order()});
  }
  // The order stamp at which collective `sequence` started, or max when it has not.
  std::uint64_t start_of(std::uint64_t sequence) {
    std::lock_guard lock(mutex_);
    for (const auto& [seq, order] : starts_) {
      if (seq == sequence) return order;
    }
    return UINT64_MAX;
  }

 private:
  std::mutex mutex_;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> starts_;
};

TEST(DataParallelMpi, FirstBucketStartsBeforeBackwardEndsAndBucketsLaunchInOrder) {
  const auto world = mpi_world();
  auto log = std::make_shared<StartLog>();
  world->set_observer(
      [log](const distributed::CollectiveCall& c, distributed::CollectiveEvent e) { log->on(c, e); });
  // A wide first layer: its weight gradient (the last computed in backward) takes long after the head's
  // gradients have filled the first bucket.
  auto model = make_seeded(
      [] {
        return std::make_shared<models::MLP>(2048, std::vector<std::int64_t>{1024, 64}, 10);
      },
      3);
  distributed::DataParallel dp(model, world, {.bucket_bytes = 1 << 20, .first_bucket_bytes = 64 << 10});
  ASSERT_GE(dp.reducer().num_buckets(), 3);
  const Tensor x = randn({64, 2048});
  const Tensor y = zeros({64}, DType::i64);
  cross_entropy(dp(x), y).backward();
  world->set_observer(nullptr);

  const auto events = dp.reducer().events();
  std::uint64_t backward_end = 0;
  std::vector<int> launched;
  std::uint64_t first_sequence = 0;
  for (const auto& e : events) {
    if (e.kind == ReducerEvent::Kind::kBackwardEnded) backward_end = e.order;
    if (e.kind == ReducerEvent::Kind::kBucketLaunched) {
      if (launched.empty()) first_sequence = e.sequence;
      launched.push_back(e.bucket);
    }
  }
  ASSERT_EQ(static_cast<std::int64_t>(launched.size()), dp.reducer().num_buckets());
  for (std::size_t i = 0; i < launched.size(); ++i) EXPECT_EQ(launched[i], static_cast<int>(i));
  EXPECT_LT(events.front().order, backward_end) << "the first bucket was launched only when backward ended";
  EXPECT_EQ(events.front().kind, ReducerEvent::Kind::kBucketLaunched);
  EXPECT_LT(log->start_of(first_sequence), backward_end)
      << "the first bucket's all-reduce did not start before backward ended";

  // Every rank launched the same buckets in the same order with the same collective numbers.
  std::vector<double> mine;
  for (const auto& e : events) {
    if (e.kind == ReducerEvent::Kind::kBucketLaunched)
      mine.push_back(static_cast<double>(e.sequence * 1000 + e.bucket));
  }
  const Tensor local = from_vector(mine, {static_cast<std::int64_t>(mine.size())}, DType::f64);
  const Tensor all = zeros({world->size() * local.numel()}, DType::f64);
  world->all_gather(local, all)->wait();
  const auto gathered = all.to_vector<double>();
  for (int r = 0; r < world->size(); ++r) {
    for (std::size_t i = 0; i < mine.size(); ++i)
      EXPECT_EQ(gathered[r * mine.size() + i], mine[i]) << "rank " << r;
  }
}

}  // namespace
}  // namespace lockstep::test
