// Builds what a training run needs from its typed settings: models, optimizers, schedules and data loaders.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "io/data/loader.h"
#include "io/data/text.h"
#include "launch/config/settings.h"
#include "src/models/autoencoder.h"
#include "src/models/pixelcnn.h"
#include "src/nn/module.h"
#include "src/optim/optimizer.h"
#include "src/optim/schedule.h"

namespace lockstep::launch {

// What the models must fit: image geometry after the loader's padding, and the number of classes.
struct DataGeometry {
  std::int64_t channels = 1;
  std::int64_t height = 28;
  std::int64_t width = 28;
  std::int64_t classes = 10;
};

// Classifiers: mlp | lenet5 | resnet20 | resnet32 | resnet56 | resnet110 | resnet18 | resnet34 | resnet50.
// ConfigError (at the model's name) when the architecture cannot take the data's images.
std::shared_ptr<nn::Module> make_classifier(const launch::ModelSection& model, const DataGeometry& data);
// A GAN's networks from settings.generator / settings.discriminator and settings.gan: generators dcgan | mlp,
// discriminators dcgan | wgan-critic | mlp; with gan.conditional, wrapped to take the class label
// (src/models/conditional.h). ConfigError (at the key) when the architecture cannot make or take the data's
// images, or a conditional GAN's data have fewer than 2 classes.
std::shared_ptr<nn::Module> make_generator(const launch::Settings& settings, const DataGeometry& data);
std::shared_ptr<nn::Module> make_discriminator(const launch::Settings& settings, const DataGeometry& data);

// The autoencoder task's network (src/models/autoencoder.h) for the data's images.
std::shared_ptr<models::Autoencoder> make_autoencoder(const launch::AutoencoderSection& a, const DataGeometry& data);

// The PixelCNN task's network; ValueError unless the data have one channel.
std::shared_ptr<models::PixelCNN> make_pixelcnn(const launch::PixelCnnSection& p, const DataGeometry& data);

// `model` moved to `device` (run.device), for a task's member initialisers.
template <class M>
std::shared_ptr<M> on_device(std::shared_ptr<M> model, Device device) {
  model->to(device);
  return model;
}

// sgd | adam | adamw | rmsprop | adagrad | adadelta over the model's parameters.
std::unique_ptr<optim::Optimizer> make_optimizer(const launch::OptimizerSection& o, const nn::Module& model);
// constant | step | exponential | linear | cosine, with a warm-up; epochs become optimizer steps with
// `steps_per_epoch` (the optimizer's updates per epoch).
std::unique_ptr<optim::LRScheduler> make_scheduler(const launch::ScheduleSection& s, optim::Optimizer& optimizer,
                                                   std::int64_t steps_per_epoch, std::int64_t epochs);

// The per-rank training batch of a job of `world` ranks: data.batch_size is per rank, data.global_batch_size
// is split evenly (ConfigError at the key when it does not divide).
std::int64_t per_rank_batch_size(const launch::DataSection& data, std::int64_t world);

// The data set's splits and the loaders' options; the loaders shard over `world` ranks as rank `rank`:
// training pads the shards so that every rank runs the same number of steps; evaluation counts every sample
// once. With data.validation_fraction, a seeded hold-out of the training split (the same at any world
// size) is the validation set and the rest is trained on.
struct DataSplits {
  std::shared_ptr<io::ImageDataset> train;
  std::shared_ptr<io::ImageDataset> test;  // null when the file has no test split
  io::LoaderOptions train_options;         // over the training indices (a subset with a validation split)
  io::LoaderOptions test_options;
  std::optional<io::LoaderOptions> validation_options;  // over train's held-out indices
  std::int64_t train_size = 0;       // samples trained on
  std::int64_t validation_size = 0;  // samples held out
  DataGeometry geometry;
  // DataKind::kText: the text splits instead of train and test (null); train_size counts tokens,
  // geometry.classes is the vocabulary's size, and the options' batch sizes count streams.
  std::shared_ptr<io::TextDataset> train_text, test_text;
};
// What a task trains on: images (/<split>/images) or text (/<split>/tokens, io/data/text.h).
enum class DataKind { kImages, kText };
// ConfigError at data.path when the file holds the other kind of data.
DataSplits make_data(const launch::DataSection& data, std::uint64_t seed, std::int64_t rank = 0,
                     std::int64_t world = 1, DataKind kind = DataKind::kImages);

// Puts train.input_noise and train.label_noise (over data.geometry.classes) on the training loader's
// augmentation; evaluation and validation loaders stay clean.
void add_training_noise(const launch::TrainSection& train, DataSplits& data);

}  // namespace lockstep::launch
