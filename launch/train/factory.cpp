// Config -> models, optimizers, schedules and data loaders.
#include "launch/train/factory.h"

#include <cmath>

#include "src/models/dcgan.h"
#include "src/models/lenet.h"
#include "src/models/mlp.h"
#include "src/models/resnet.h"
#include "src/models/wgan.h"
#include "src/optim/adadelta.h"
#include "src/optim/adagrad.h"
#include "src/optim/adam.h"
#include "src/optim/rmsprop.h"
#include "src/optim/sgd.h"

namespace lockstep::train {
namespace {

std::string key(const std::string& section, const char* name) { return section + "." + name; }

}  // namespace

std::shared_ptr<nn::Module> make_classifier(const launch::Config& cfg, const std::string& section,
                                            const DataGeometry& data) {
  const std::string name = cfg.choice(
      key(section, "name"),
      {"mlp", "lenet5", "resnet20", "resnet32", "resnet56", "resnet110", "resnet18", "resnet34", "resnet50"});
  if (name == "mlp") {
    return std::make_shared<models::MLP>(data.channels * data.height * data.width,
                                         cfg.get_ints(key(section, "hidden"), {512, 256}), data.classes,
                                         cfg.get_double(key(section, "dropout"), 0.0));
  }
  if (name == "lenet5") {
    if (data.height != data.width || (data.height != 28 && data.height != 32)) {
      cfg.fail(key(section, "name"), str_cat("lenet5 expects 28x28 or 32x32 images, but the data are ",
                                             data.height, "x", data.width));
    }
    return std::make_shared<models::LeNet5>(data.channels, data.height, data.classes);
  }
  const std::int64_t depth = std::stoll(name.substr(6));
  if (depth == 18 || depth == 34 || depth == 50) {
    const std::string stem = cfg.choice(key(section, "stem"), {"small", "imagenet"}, "small");
    return std::make_shared<models::ResNet>(depth, data.channels, data.classes,
                                            stem == "small" ? models::Stem::kSmall : models::Stem::kImageNet);
  }
  const std::string shortcut = cfg.choice(key(section, "shortcut"), {"identity", "projection"}, "identity");
  return std::make_shared<models::CifarResNet>(
      depth, data.channels, data.classes,
      shortcut == "identity" ? nn::Shortcut::kPadIdentity : nn::Shortcut::kProjection);
}

std::shared_ptr<nn::Module> make_generator(const launch::Config& cfg, const std::string& section,
                                           const DataGeometry& data, std::int64_t latent) {
  cfg.choice(key(section, "name"), {"dcgan"});
  if (data.height != data.width || (data.height != 32 && data.height != 64)) {
    cfg.fail(key(section, "name"),
             str_cat("the DCGAN generator makes 32x32 or 64x64 images, but the data are ", data.height, "x",
                     data.width, " (set data.pad_to = 32 for 28x28 data)"));
  }
  auto generator = std::make_shared<models::DCGANGenerator>(latent, data.channels, data.height,
                                                            cfg.get_int(key(section, "width"), 64));
  models::dcgan_init_(*generator);
  return generator;
}

std::shared_ptr<nn::Module> make_discriminator(const launch::Config& cfg, const std::string& section,
                                               const DataGeometry& data) {
  const std::string name = cfg.choice(key(section, "name"), {"dcgan", "wgan-critic"});
  const std::int64_t width = cfg.get_int(key(section, "width"), 64);
  std::shared_ptr<nn::Module> d;
  if (name == "dcgan") {
    d = std::make_shared<models::DCGANDiscriminator>(data.channels, data.height, width,
                                                     models::DiscriminatorOutput::kLogits);
  } else {
    d = std::make_shared<models::WGANCritic>(data.channels, data.height, width);
  }
  models::dcgan_init_(*d);
  return d;
}

std::unique_ptr<optim::Optimizer> make_optimizer(const launch::Config& cfg, const std::string& section,
                                                 const nn::Module& model) {
  const std::string name =
      cfg.choice(key(section, "name"), {"sgd", "adam", "adamw", "rmsprop", "adagrad", "adadelta"});
  const optim::DecayPolicy decay =
      cfg.choice(key(section, "weight_decay_on"), {"weights", "all"}, "weights") == "all"
          ? optim::DecayPolicy::kAll
          : optim::DecayPolicy::kWeightsOnly;
  std::vector<nn::NamedTensor> params = model.named_parameters();
  const auto lr = [&](double fallback) { return cfg.get_double(key(section, "lr"), fallback); };
  const auto wd = [&](double fallback) { return cfg.get_double(key(section, "weight_decay"), fallback); };
  if (name == "sgd") {
    optim::SGDOptions o;
    o.lr = cfg.get_double(key(section, "lr"));
    o.momentum = cfg.get_double(key(section, "momentum"), 0.0);
    o.dampening = cfg.get_double(key(section, "dampening"), 0.0);
    o.weight_decay = wd(0.0);
    o.nesterov = cfg.get_bool(key(section, "nesterov"), false) ? optim::Nesterov::kYes : optim::Nesterov::kNo;
    o.decay = decay;
    return std::make_unique<optim::SGD>(std::move(params), o);
  }
  if (name == "adam" || name == "adamw") {
    const double beta1 = cfg.get_double(key(section, "beta1"), 0.9);
    const double beta2 = cfg.get_double(key(section, "beta2"), 0.999);
    const double eps = cfg.get_double(key(section, "eps"), 1e-8);
    if (name == "adam") {
      optim::AdamOptions o;
      o.lr = lr(1e-3), o.beta1 = beta1, o.beta2 = beta2, o.eps = eps, o.weight_decay = wd(0.0),
      o.decay = decay;
      return std::make_unique<optim::Adam>(std::move(params), o);
    }
    optim::AdamWOptions o;
    o.lr = lr(1e-3), o.beta1 = beta1, o.beta2 = beta2, o.eps = eps, o.weight_decay = wd(1e-2),
    o.decay = decay;
    return std::make_unique<optim::AdamW>(std::move(params), o);
  }
  if (name == "rmsprop") {
    optim::RMSPropOptions o;
    o.lr = lr(1e-2);
    o.alpha = cfg.get_double(key(section, "alpha"), 0.99);
    o.eps = cfg.get_double(key(section, "eps"), 1e-8);
    o.momentum = cfg.get_double(key(section, "momentum"), 0.0);
    o.weight_decay = wd(0.0);
    o.decay = decay;
    return std::make_unique<optim::RMSProp>(std::move(params), o);
  }
  if (name == "adagrad") {
    optim::AdaGradOptions o;
    o.lr = lr(1e-2);
    o.eps = cfg.get_double(key(section, "eps"), 1e-10);
    o.weight_decay = wd(0.0);
    o.decay = decay;
    return std::make_unique<optim::AdaGrad>(std::move(params), o);
  }
  optim::AdaDeltaOptions o;
  o.lr = lr(1.0);
  o.rho = cfg.get_double(key(section, "rho"), 0.9);
  o.eps = cfg.get_double(key(section, "eps"), 1e-6);
  o.weight_decay = wd(0.0);
  o.decay = decay;
  return std::make_unique<optim::AdaDelta>(std::move(params), o);
}

std::unique_ptr<optim::LRScheduler> make_scheduler(const launch::Config& cfg, const std::string& section,
                                                   optim::Optimizer& optimizer, std::int64_t steps_per_epoch,
                                                   std::int64_t epochs) {
  const std::string name =
      cfg.choice(key(section, "name"), {"constant", "step", "exponential", "linear", "cosine"}, "constant");
  // A decay after a warm-up spans the steps that remain after it.
  const std::int64_t warmup = cfg.get_int(key(section, "warmup_epochs"), 0) * steps_per_epoch;
  const std::int64_t total = std::max<std::int64_t>(steps_per_epoch * epochs - warmup, 1);
  optim::Schedule schedule = optim::Schedule::constant();
  if (name == "step") {
    schedule = optim::Schedule::step_decay(cfg.get_int(key(section, "step_epochs")) * steps_per_epoch,
                                           cfg.get_double(key(section, "gamma"), 0.1));
  } else if (name == "exponential") {  // gamma per epoch, applied smoothly per step
    schedule = optim::Schedule::exponential(
        std::pow(cfg.get_double(key(section, "gamma")), 1.0 / static_cast<double>(steps_per_epoch)));
  } else if (name == "linear") {
    schedule = optim::Schedule::linear_decay(total, cfg.get_double(key(section, "end_factor"), 0.0));
  } else if (name == "cosine") {
    schedule = optim::Schedule::cosine(total, cfg.get_double(key(section, "min_lr"), 0.0));
  }
  if (warmup > 0)
    schedule = schedule.with_warmup(warmup, cfg.get_double(key(section, "warmup_start_factor"), 0.1));
  return std::make_unique<optim::LRScheduler>(optimizer, std::move(schedule));
}

std::int64_t per_rank_batch_size(const launch::Config& cfg, std::int64_t world) {
  const bool per_rank = cfg.has("data.batch_size"), global = cfg.has("data.global_batch_size");
  if (per_rank && global) {
    cfg.fail("data.global_batch_size",
             str_cat("expected either data.batch_size (per rank) or data.global_batch_size, but got both (",
                     cfg.get_int("data.batch_size"), " and ", cfg.get_int("data.global_batch_size"),
                     "). Keep one of them"));
  }
  if (!global) {
    const std::int64_t batch = cfg.get_int("data.batch_size");  // required: the error names the key
    if (batch < 1) cfg.fail("data.batch_size", str_cat("expected at least 1, but got ", batch));
    return batch;
  }
  const std::int64_t batch = cfg.get_int("data.global_batch_size");
  if (batch < 1) cfg.fail("data.global_batch_size", str_cat("expected at least 1, but got ", batch));
  if (batch % world != 0) {
    cfg.fail(
        "data.global_batch_size",
        str_cat("expected a multiple of the world size ", world, ", but got ", batch, " (", batch / world,
                " per rank with ", batch % world, " left over). Use ", batch / world * world, " or ",
                (batch / world + 1) * world, ", or set data.batch_size per rank"));
  }
  return batch / world;
}

DataSplits make_data(const launch::Config& cfg, std::uint64_t seed, std::int64_t rank, std::int64_t world) {
  LOCKSTEP_CHECK(world >= 1 && rank >= 0 && rank < world, ValueError,
                 "make_data: expected 0 <= rank < world, but got rank ", rank, " and world ", world);
  DataSplits d;
  const std::filesystem::path path = cfg.get_string("data.path");
  const Cache cache =
      cfg.choice("data.cache", {"memory", "none"}, "memory") == "memory" ? Cache::kMemory : Cache::kNone;
  d.train = ImageDataset::open(path, cfg.get_string("data.train_split", "train"), cache);
  const std::string test_split = cfg.get_string("data.test_split", "test");
  if (!test_split.empty()) d.test = ImageDataset::open(path, test_split, cache);

  Augmentation eval_aug;
  eval_aug.pad_to = cfg.get_int("data.pad_to", 0);
  if (cfg.choice("data.normalize", {"dataset", "tanh"}, "dataset") == "tanh") {
    eval_aug.mean.assign(static_cast<std::size_t>(d.train->channels()), 0.5);
    eval_aug.std.assign(static_cast<std::size_t>(d.train->channels()), 0.5);
  }
  Augmentation train_aug = eval_aug;
  train_aug.crop_padding = cfg.get_int("data.crop_padding", 0);
  train_aug.flip = cfg.get_bool("data.flip", false) ? Flip::kHorizontal : Flip::kNo;

  d.train_options.batch_size = per_rank_batch_size(cfg, world);
  d.train_options.shuffle = Shuffle::kYes;
  d.train_options.drop_last = cfg.get_bool("data.drop_last", true) ? DropLast::kYes : DropLast::kNo;
  d.train_options.seed = seed;
  d.train_options.augment = train_aug;
  d.train_options.prefetch = cfg.get_int("data.prefetch", 2);
  d.train_options.rank = rank;
  d.train_options.world = world;
  d.train_options.pad = Pad::kYes;  // every rank the same number of steps
  d.test_options = d.train_options;
  d.test_options.batch_size = cfg.get_int("data.eval_batch_size", 500);
  d.test_options.shuffle = Shuffle::kNo;
  d.test_options.drop_last = DropLast::kNo;
  d.test_options.pad = Pad::kNo;
  d.test_options.augment = eval_aug;

  const std::int64_t side = eval_aug.pad_to > 0 ? eval_aug.pad_to : d.train->height();
  d.geometry.channels = d.train->channels();
  d.geometry.height = side;
  d.geometry.width = eval_aug.pad_to > 0 ? eval_aug.pad_to : d.train->width();
  d.geometry.classes = std::max<std::int64_t>(static_cast<std::int64_t>(d.train->class_names().size()), 1);
  return d;
}

}  // namespace lockstep::train
