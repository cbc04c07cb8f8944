// Settings -> models, optimizers, schedules and data loaders.
#include "launch/train/factory.h"

#include <cmath>
#include <filesystem>

#include "src/core/strings.h"
#include "src/models/conditional.h"
#include "src/models/dcgan.h"
#include "src/models/lenet.h"
#include "src/models/mlp.h"
#include "src/models/mlp_gan.h"
#include "src/models/recurrent.h"
#include "src/models/resnet.h"
#include "src/models/vgg.h"
#include "src/models/wgan.h"
#include "src/optim/adadelta.h"
#include "src/optim/adagrad.h"
#include "src/optim/adam.h"
#include "src/optim/rmsprop.h"
#include "src/optim/sgd.h"

namespace lockstep::launch {

std::shared_ptr<nn::Module> make_classifier(const launch::ModelSection& m, const DataGeometry& data) {
  if (m.name == "mlp")
    return std::make_shared<models::MLP>(data.channels * data.height * data.width, m.hidden, data.classes,
                                         m.dropout);
  if (m.name == "lenet5") {
    if (data.height != data.width || (data.height != 28 && data.height != 32)) {
      m.name_key.fail(
          str_cat("lenet5 expects 28x28 or 32x32 images, but the data are ", data.height, "x", data.width));
    }
    return std::make_shared<models::LeNet5>(data.channels, data.height, data.classes);
  }
  if (m.name == "rnn" || m.name == "rnn-relu" || m.name == "lstm" || m.name == "gru") {
    const nn::RecurrentKind kind = m.name == "lstm"       ? nn::RecurrentKind::kLstm
                                   : m.name == "gru"      ? nn::RecurrentKind::kGru
                                   : m.name == "rnn-relu" ? nn::RecurrentKind::kRnnRelu
                                                          : nn::RecurrentKind::kRnnTanh;
    return std::make_shared<models::RowSequenceClassifier>(kind, data.channels, data.height, data.width, m.hidden,
                                                           data.classes);
  }
  if (m.name == "vgg11" || m.name == "vgg16") {
    if (data.height != data.width || (data.height != 28 && data.height != 32)) {
      m.name_key.fail(str_cat(m.name, " expects 28x28 or 32x32 images, but the data are ", data.height, "x",
                              data.width, " (data.pad_to pads smaller images)"));
    }
    return std::make_shared<models::VGG>(m.name == "vgg11" ? models::VggDepth::k11 : models::VggDepth::k16,
                                         data.channels, data.height, data.classes, m.dropout);
  }
  const models::Block block = m.block == "preact" ? models::Block::kPreAct : models::Block::kBasic;
  const std::int64_t depth = std::stoll(m.name.substr(6));
  if (depth == 18 || depth == 34 || depth == 50) {
    return std::make_shared<models::ResNet>(
        depth, data.channels, data.classes,
        m.stem == "small" ? models::Stem::kSmall : models::Stem::kImageNet, block);
  }
  return std::make_shared<models::CifarResNet>(
      depth, data.channels, data.classes,
      m.shortcut == "identity" ? nn::Shortcut::kPadIdentity : nn::Shortcut::kProjection, block);
}

namespace {

// The class count of a conditional GAN's data (0 when unconditional).
std::int64_t condition_classes(const launch::GanSection& gan, const DataGeometry& data) {
  if (!gan.conditional) return 0;
  if (data.classes < 2) {
    gan.conditional_key.fail(
        str_cat("expected a data set with at least 2 classes to condition on, but it has ", data.classes));
  }
  return data.classes;
}

// make_data for DataKind::kText: the text splits; batch sizes count streams.
DataSplits make_text_data(const launch::DataSection& s, std::uint64_t seed, std::int64_t rank,
                          std::int64_t world) {
  if (s.validation_fraction > 0.0) {
    s.validation_key.fail(
        "expected 0 for text (the test split holds whole files apart; a hold-out of a "
        "stream's characters would leak its neighbours)");
  }
  DataSplits d;
  d.train_text = io::TextDataset::open(s.path, s.train_split);
  if (!s.test_split.empty()) d.test_text = io::TextDataset::open(s.path, s.test_split);
  d.train_options.batch_size = per_rank_batch_size(s, world);
  d.train_options.seed = seed;
  d.train_options.rank = rank;
  d.train_options.world = world;
  d.test_options = d.train_options;
  d.test_options.batch_size = s.eval_batch_size;
  d.train_size = d.train_text->size();
  d.geometry.classes = static_cast<std::int64_t>(d.train_text->vocabulary().size());
  return d;
}

}  // namespace

std::shared_ptr<nn::Module> make_generator(const launch::Settings& s, const DataGeometry& data) {
  const launch::ModelSection& m = s.generator.model;
  const std::int64_t classes = condition_classes(s.gan, data);
  const std::int64_t latent = s.gan.latent + classes;  // the label's embedding joins z
  std::shared_ptr<nn::Module> generator;
  if (m.name == "mlp") {
    generator = std::make_shared<models::MLPGenerator>(latent, m.hidden, data.channels, data.height, data.width);
  } else {
    if (data.height != data.width || (data.height != 32 && data.height != 64)) {
      m.name_key.fail(str_cat("the DCGAN generator makes 32x32 or 64x64 images, but the data are ", data.height,
                              "x", data.width, " (set data.pad_to = 32 for 28x28 data)"));
    }
    generator = std::make_shared<models::DCGANGenerator>(latent, data.channels, data.height, m.width);
  }
  models::dcgan_init_(*generator);
  if (classes == 0) return generator;
  return std::make_shared<models::ConditionalGenerator>(std::move(generator), s.gan.latent, classes);
}

std::shared_ptr<nn::Module> make_discriminator(const launch::Settings& s, const DataGeometry& data) {
  const launch::ModelSection& m = s.discriminator.model;
  const std::int64_t classes = condition_classes(s.gan, data);
  const std::int64_t channels = data.channels + (classes > 0 ? 1 : 0);  // the label's map as a channel
  std::shared_ptr<nn::Module> d;
  if (m.name == "mlp") {
    d = std::make_shared<models::MLPDiscriminator>(channels, data.height, data.width, m.hidden);
  } else {
    if (data.height != data.width || (data.height != 32 && data.height != 64)) {
      m.name_key.fail(str_cat("the ", m.name, " discriminator takes 32x32 or 64x64 images, but the data are ",
                              data.height, "x", data.width, " (set data.pad_to = 32 for 28x28 data)"));
    }
    if (m.name == "dcgan") {
      d = std::make_shared<models::DCGANDiscriminator>(channels, data.height, m.width,
                                                       models::DiscriminatorOutput::kLogits);
    } else {
      d = std::make_shared<models::WGANCritic>(
          channels, data.height, m.width,
          m.norm == "layer" ? models::DiscriminatorNorm::kLayerNorm : models::DiscriminatorNorm::kNone);
    }
  }
  models::dcgan_init_(*d);
  if (classes == 0) return d;
  return std::make_shared<models::ConditionalDiscriminator>(std::move(d), data.channels, data.height, data.width,
                                                            classes);
}

std::shared_ptr<models::Autoencoder> make_autoencoder(const launch::AutoencoderSection& a, const DataGeometry& data) {
  if (a.architecture == "conv" && (data.height % 4 != 0 || data.width % 4 != 0)) {
    a.architecture_key.fail(str_cat("the conv autoencoder halves the image size twice, so it takes heights and "
                                    "widths that are multiples of 4, but the data are ",
                                    data.height, "x", data.width, " (use \"mlp\")"));
  }
  models::AutoencoderOptions o;
  o.architecture = a.architecture == "conv" ? models::AutoencoderArchitecture::kConv : models::AutoencoderArchitecture::kMlp;
  o.channels = data.channels;
  o.height = data.height;
  o.width = data.width;
  o.hidden = a.hidden;
  o.code = a.code;
  o.code_activation = a.code_activation == "sigmoid" ? models::CodeActivation::kSigmoid : models::CodeActivation::kLinear;
  o.variational = a.variational;
  return std::make_shared<models::Autoencoder>(o);
}

std::shared_ptr<models::PixelCNN> make_pixelcnn(const launch::PixelCnnSection& p, const DataGeometry& data) {
  if (data.channels != 1) {
    p.task_key.fail(str_cat("the PixelCNN models one-channel images (one autoregressive order over pixels), but "
                            "the data have ", data.channels, " channels"));
  }
  return std::make_shared<models::PixelCNN>(p.width, p.blocks);
}

namespace {

std::unique_ptr<optim::Optimizer> make_optimizer_of_name(const launch::OptimizerSection& s,
                                                         const nn::Module& model);

}  // namespace

std::unique_ptr<optim::Optimizer> make_optimizer(const launch::OptimizerSection& s, const nn::Module& model) {
  std::unique_ptr<optim::Optimizer> optimizer = make_optimizer_of_name(s, model);
  optimizer->set_l1(s.l1);
  return optimizer;
}

namespace {

std::unique_ptr<optim::Optimizer> make_optimizer_of_name(const launch::OptimizerSection& s,
                                                         const nn::Module& model) {
  const optim::DecayPolicy decay = s.decay_all ? optim::DecayPolicy::kAll : optim::DecayPolicy::kWeightsOnly;
  std::vector<nn::NamedTensor> params = model.named_parameters();
  if (s.name == "sgd") {
    optim::SGDOptions o;
    o.lr = s.lr, o.momentum = s.momentum, o.dampening = s.dampening, o.weight_decay = s.weight_decay;
    o.nesterov = s.nesterov ? optim::Nesterov::kYes : optim::Nesterov::kNo;
    o.decay = decay;
    return std::make_unique<optim::SGD>(std::move(params), o);
  }
  if (s.name == "adam") {
    optim::AdamOptions o;
    o.lr = s.lr, o.beta1 = s.beta1, o.beta2 = s.beta2, o.eps = s.eps, o.weight_decay = s.weight_decay;
    o.decay = decay;
    return std::make_unique<optim::Adam>(std::move(params), o);
  }
  if (s.name == "adamw") {
    optim::AdamWOptions o;
    o.lr = s.lr, o.beta1 = s.beta1, o.beta2 = s.beta2, o.eps = s.eps, o.weight_decay = s.weight_decay;
    o.decay = decay;
    return std::make_unique<optim::AdamW>(std::move(params), o);
  }
  if (s.name == "rmsprop") {
    optim::RMSPropOptions o;
    o.lr = s.lr, o.alpha = s.alpha, o.eps = s.eps, o.momentum = s.momentum, o.weight_decay = s.weight_decay;
    o.decay = decay;
    return std::make_unique<optim::RMSProp>(std::move(params), o);
  }
  if (s.name == "adagrad") {
    optim::AdaGradOptions o;
    o.lr = s.lr, o.eps = s.eps, o.weight_decay = s.weight_decay;
    o.decay = decay;
    return std::make_unique<optim::AdaGrad>(std::move(params), o);
  }
  optim::AdaDeltaOptions o;
  o.lr = s.lr, o.rho = s.rho, o.eps = s.eps, o.weight_decay = s.weight_decay;
  o.decay = decay;
  return std::make_unique<optim::AdaDelta>(std::move(params), o);
}

}  // namespace

std::unique_ptr<optim::LRScheduler> make_scheduler(const launch::ScheduleSection& s, optim::Optimizer& optimizer,
                                                   std::int64_t steps_per_epoch, std::int64_t epochs) {
  steps_per_epoch = std::max<std::int64_t>(steps_per_epoch, 1);
  // A decay after a warm-up spans the steps that remain after it.
  const std::int64_t warmup = s.warmup_epochs * steps_per_epoch;
  const std::int64_t total = std::max<std::int64_t>(steps_per_epoch * epochs - warmup, 1);
  optim::Schedule schedule = optim::Schedule::constant();
  if (s.name == "step") {
    schedule = optim::Schedule::step_decay(s.step_epochs * steps_per_epoch, s.gamma);
  } else if (s.name == "exponential") {  // gamma per epoch, applied smoothly per step
    schedule = optim::Schedule::exponential(std::pow(s.gamma, 1.0 / static_cast<double>(steps_per_epoch)));
  } else if (s.name == "linear") {
    schedule = optim::Schedule::linear_decay(total, s.end_factor);
  } else if (s.name == "cosine") {
    schedule = optim::Schedule::cosine(total, s.min_lr);
  }
  if (warmup > 0) schedule = schedule.with_warmup(warmup, s.warmup_start_factor);
  return std::make_unique<optim::LRScheduler>(optimizer, std::move(schedule));
}

std::int64_t per_rank_batch_size(const launch::DataSection& data, std::int64_t world) {
  if (data.batch_size) return *data.batch_size;
  const std::int64_t batch = data.global_batch_size.value_or(0);
  if (batch % world != 0) {
    data.batch_key.fail(str_cat("expected a multiple of the world size ", world, ", but got ", batch, " (",
                                batch / world, " per rank with ", batch % world, " left over). Use ",
                                batch / world * world, " or ", (batch / world + 1) * world,
                                ", or set data.batch_size per rank"));
  }
  return batch / world;
}

DataSplits make_data(const launch::DataSection& s, std::uint64_t seed, std::int64_t rank, std::int64_t world,
                     DataKind kind) {
  LOCKSTEP_CHECK(world >= 1 && rank >= 0 && rank < world, ValueError,
                 "make_data: expected 0 <= rank < world, but got rank ", rank, " and world ", world);
  DataSplits d;
  if (std::filesystem::is_regular_file(s.path) && io::is_text_dataset(s.path) != (kind == DataKind::kText)) {
    s.path_key.fail(
        kind == DataKind::kText
            ? str_cat("expected a text data set (`lockstep convert --format text`) for task \"charlm\", "
                      "but ",
                      in_quotes(s.path), " holds no text")
            : str_cat("expected an image data set, but ", in_quotes(s.path),
                      " holds text: train a character model on it (task = \"charlm\")"));
  }
  if (kind == DataKind::kText) return make_text_data(s, seed, rank, world);
  const io::Cache cache = s.cache_in_memory ? io::Cache::kMemory : io::Cache::kNone;
  d.train = io::ImageDataset::open(s.path, s.train_split, cache);
  if (!s.test_split.empty()) d.test = io::ImageDataset::open(s.path, s.test_split, cache);

  io::Augmentation eval_aug;
  eval_aug.pad_to = s.pad_to;
  if (s.normalize != "dataset") {  // tanh: (x - 0.5) / 0.5; none: x
    const auto channels = static_cast<std::size_t>(d.train->channels());
    eval_aug.mean.assign(channels, s.normalize == "tanh" ? 0.5 : 0.0);
    eval_aug.std.assign(channels, s.normalize == "tanh" ? 0.5 : 1.0);
  }
  io::Augmentation train_aug = eval_aug;
  train_aug.crop_padding = s.crop_padding;
  train_aug.flip = s.flip ? io::Flip::kHorizontal : io::Flip::kNo;

  d.train_options.batch_size = per_rank_batch_size(s, world);
  d.train_options.shuffle = io::Shuffle::kYes;
  d.train_options.drop_last = s.drop_last ? io::DropLast::kYes : io::DropLast::kNo;
  d.train_options.seed = seed;
  d.train_options.augment = train_aug;
  d.train_options.prefetch = s.prefetch;
  d.train_options.rank = rank;
  d.train_options.world = world;
  d.train_options.pad = io::Pad::kYes;  // every rank the same number of steps
  d.test_options = d.train_options;
  d.test_options.batch_size = s.eval_batch_size;
  d.test_options.shuffle = io::Shuffle::kNo;
  d.test_options.drop_last = io::DropLast::kNo;
  d.test_options.pad = io::Pad::kNo;
  d.test_options.augment = eval_aug;
  d.train_size = d.train->size();
  if (s.validation_fraction > 0.0) {
    auto [held, rest] = io::holdout_split(d.train->size(), s.validation_fraction, seed);
    if (held.empty() || rest.empty()) {
      s.validation_key.fail(str_cat("expected a hold-out of at least one of the ", d.train->size(),
                                    " training samples and some left to train on, but ",
                                    s.validation_fraction, " of them leaves ", held.size(), " and ",
                                    rest.size()));
    }
    d.train_size = static_cast<std::int64_t>(rest.size());
    d.validation_size = static_cast<std::int64_t>(held.size());
    d.train_options.subset = std::make_shared<const std::vector<std::int64_t>>(std::move(rest));
    d.validation_options = d.test_options;
    d.validation_options->subset = std::make_shared<const std::vector<std::int64_t>>(std::move(held));
  }

  d.geometry.channels = d.train->channels();
  d.geometry.height = eval_aug.pad_to > 0 ? eval_aug.pad_to : d.train->height();
  d.geometry.width = eval_aug.pad_to > 0 ? eval_aug.pad_to : d.train->width();
  d.geometry.classes = std::max<std::int64_t>(static_cast<std::int64_t>(d.train->class_names().size()), 1);
  return d;
}

void add_training_noise(const launch::TrainSection& train, DataSplits& data) {
  data.train_options.augment.input_noise = train.input_noise;
  data.train_options.augment.label_noise = train.label_noise;
  data.train_options.augment.classes = data.geometry.classes;
}

}  // namespace lockstep::launch
