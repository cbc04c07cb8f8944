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

// [data] path, batch_size, cache, pad_to, crop_padding, flip, normalize = dataset | tanh.
struct DataSplits {
  std::shared_ptr<ImageDataset> train;
  std::shared_ptr<ImageDataset> test;  // null when the file has no test split
  LoaderOptions train_options;
  LoaderOptions test_options;
  DataGeometry geometry;
};
DataSplits make_data(const launch::Config& cfg, std::uint64_t seed);

}  // namespace lockstep::train
