// Builds what a training run needs from its config: models, optimizers, schedules and data loaders. The
// config keys are documented in examples/*.toml.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "io/data/loader.h"
#include "launch/config/config.h"
#include "src/nn/module.h"
#include "src/optim/optimizer.h"
#include "src/optim/schedule.h"

namespace lockstep::train {

// What the models must fit: image geometry after the loader's padding, and the number of classes.
struct DataGeometry {
  std::int64_t channels = 1;
  std::int64_t height = 28;
  std::int64_t width = 28;
  std::int64_t classes = 10;
};

// [model] name = mlp | lenet5 | resnet20 | resnet32 | resnet56 | resnet110 | resnet18 | resnet34 | resnet50.
std::shared_ptr<nn::Module> make_classifier(const launch::Config& cfg, const std::string& section,
                                            const DataGeometry& data);
// [generator] name = dcgan (latent, width); [discriminator] name = dcgan | wgan-critic (width).
std::shared_ptr<nn::Module> make_generator(const launch::Config& cfg, const std::string& section,
                                           const DataGeometry& data, std::int64_t latent);
std::shared_ptr<nn::Module> make_discriminator(const launch::Config& cfg, const std::string& section,
                                               const DataGeometry& data);

// [optimizer] name = sgd | adam | adamw | rmsprop | adagrad | adadelta, lr, weight_decay, ...
std::unique_ptr<optim::Optimizer> make_optimizer(const launch::Config& cfg, const std::string& section,
                                                 const nn::Module& model);
// [schedule] name = constant | step | exponential | linear | cosine, warmup_epochs; epochs are turned into
// optimizer steps with `steps_per_epoch`.
std::unique_ptr<optim::LRScheduler> make_scheduler(const launch::Config& cfg, const std::string& section,
                                                   optim::Optimizer& optimizer, std::int64_t steps_per_epoch,
                                                   std::int64_t epochs);

// The per-rank training batch of a job of `world` ranks: [data] batch_size is per rank; global_batch_size
// (exactly one of the two) is split evenly over the ranks. ConfigError when both or neither is given, when
// the value is below 1, or when the global batch is not a multiple of `world`.
std::int64_t per_rank_batch_size(const launch::Config& cfg, std::int64_t world);

// [data] path, batch_size | global_batch_size, eval_batch_size (per rank), cache, pad_to, crop_padding,
// flip, normalize = dataset | tanh. The loaders shard over `world` ranks as rank `rank`: training pads the
// shards so that every rank runs the same number of steps; evaluation counts every test sample once.
struct DataSplits {
  std::shared_ptr<ImageDataset> train;
  std::shared_ptr<ImageDataset> test;  // null when the file has no test split
  LoaderOptions train_options;
  LoaderOptions test_options;
  DataGeometry geometry;
};
DataSplits make_data(const launch::Config& cfg, std::uint64_t seed, std::int64_t rank = 0,
                     std::int64_t world = 1);

}  // namespace lockstep::train
