// Tests of reading a config into typed settings: every value checked where it is read and named with its
// file and line or override; the GAN's per-network optimizers, schedules and clipping with their fallbacks
// and the DCGAN paper's defaults; the batch keys and their overrides; the validation hold-out.
#include "launch/config/settings.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "io/data/sampler.h"
#include "src/core/error.h"
#include "tests/support/expect_error.h"

namespace lockstep::launch {
namespace {

using test::expect_error;

constexpr const char* kClassifier =
    "[run]\nseed = 3\n[data]\npath = \"data.h5\"\nbatch_size = 64\n[model]\nname = \"mlp\"\n"
    "[optimizer]\nname = \"sgd\"\nlr = 0.1\n";
constexpr const char* kGan =
    "task = \"gan\"\n[data]\npath = \"data.h5\"\nbatch_size = 64\npad_to = 32\n[generator]\nname = "
    "\"dcgan\"\n[discriminator]\nname = \"dcgan\"\n";

Settings read(const std::string& text, const std::vector<std::string>& overrides = {}) {
  return read_settings(Config::parse(text, "run.toml", overrides));
}

TEST(Settings, ADcganWithoutAnOptimizerGetsThePapersAdamForBothNetworks) {
  const Settings s = read(kGan);
  for (const NetworkSection* net : {&s.generator, &s.discriminator}) {
    EXPECT_EQ(net->optimizer.name, "adam");
    EXPECT_EQ(net->optimizer.lr, 2e-4);
    EXPECT_EQ(net->optimizer.beta1, 0.5);
    EXPECT_EQ(net->optimizer.beta2, 0.999);
    EXPECT_EQ(net->schedule.name, "constant");
    EXPECT_EQ(net->clip_grad_norm, 0.0);
  }
  EXPECT_EQ(s.gan.real_label, 1.0);
  EXPECT_EQ(s.gan.ema_decay, 0.0);
  // The defaults used are part of the effective config stored with the run.
  EXPECT_NE(s.config_text.find("lr = 2e-04"), std::string::npos) << s.config_text;
}

TEST(Settings, WganGpGetsItsPapersDefaultsAndRefusesABatchNormCritic) {
  const Settings s = read(kGan, {"gan.loss=\"wasserstein-gp\"", "discriminator.name=\"wgan-critic\"",
                                 "discriminator.norm=\"layer\""});
  EXPECT_EQ(s.gan.d_steps, 5);
  EXPECT_EQ(s.gan.gp_lambda, 10.0);
  EXPECT_EQ(s.discriminator.model.norm, "layer");
  for (const NetworkSection* net : {&s.generator, &s.discriminator}) {
    EXPECT_EQ(net->optimizer.name, "adam");
    EXPECT_EQ(net->optimizer.lr, 1e-4);
    EXPECT_EQ(net->optimizer.beta1, 0.0);
    EXPECT_EQ(net->optimizer.beta2, 0.9);
  }
  // kGan's discriminator is DCGAN's, with batch norm: refused at its name, with the way out.
  expect_error<ConfigError>([&] { read(kGan, {"gan.loss=\"wasserstein-gp\""}); },
                            {"run.toml:9", "discriminator.name", "without batch norm", "wasserstein-gp",
                             "\"wgan-critic\""});
  // Weight clipping and label smoothing belong to other losses: unknown keys here.
  expect_error<ConfigError>(
      [&] { read(kGan, {"gan.loss=\"wasserstein-gp\"", "discriminator.name=\"mlp\"", "gan.weight_clip=0.01"}); },
      {"gan.weight_clip"});
  expect_error<ConfigError>(
      [&] { read(kGan, {"gan.loss=\"wasserstein-gp\"", "discriminator.name=\"mlp\"", "gan.gp_lambda=0"}); },
      {"gan.gp_lambda", "expected a positive finite number"});
}

TEST(Settings, TheMlpGanHasTheCoursesWidthsAndNoDropoutKey) {
  const Settings s = read(kGan, {"generator.name=\"mlp\"", "discriminator.name=\"mlp\"", "gan.conditional=true"});
  EXPECT_EQ(s.generator.model.hidden, (std::vector<std::int64_t>{256, 512, 1024}));
  EXPECT_EQ(s.discriminator.model.hidden, (std::vector<std::int64_t>{512, 256}));
  EXPECT_TRUE(s.gan.conditional);
  expect_error<ConfigError>([&] { read(kGan, {"generator.name=\"mlp\"", "generator.dropout=0.5"}); },
                            {"generator.dropout"});
}

TEST(Settings, AnAutoencoderReadsIntensitiesInZeroOneAndTheKlSparsityNeedsSigmoidCodes) {
  const std::string ae = "task = \"autoencoder\"\n[data]\npath = \"data.h5\"\nbatch_size = 64\n";
  const Settings s = read(ae, {"autoencoder.sparsity=\"kl\""});
  EXPECT_EQ(s.data.normalize, "none");
  EXPECT_EQ(s.autoencoder.code_activation, "sigmoid");
  EXPECT_EQ(s.autoencoder.sparsity_weight, 0.1);
  EXPECT_EQ(s.model.optimizer.name, "adam");
  EXPECT_EQ(s.model.optimizer.lr, 1e-3);
  expect_error<ConfigError>([&] { read(ae, {"data.normalize=\"tanh\""}); },
                            {"data.normalize", "expected \"none\" for task \"autoencoder\"", "\"tanh\""});
  expect_error<ConfigError>(
      [&] { read(ae, {"autoencoder.sparsity=\"kl\"", "autoencoder.code_activation=\"linear\""}); },
      {"autoencoder.code_activation", "needs codes in (0, 1)"});
  // Keys of the deterministic autoencoders are unknown to a VAE, and the other way round.
  expect_error<ConfigError>([&] { read(ae, {"autoencoder.variational=true", "autoencoder.noise=\"gaussian\""}); },
                            {"autoencoder.noise"});
  expect_error<ConfigError>([&] { read(ae, {"autoencoder.beta=2"}); }, {"autoencoder.beta"});
}

TEST(Settings, PerNetworkSectionsOverrideTheSharedOnesKeyByKey) {
  const Settings s = read(std::string(kGan) +
                              "[optimizer]\nname = \"adam\"\nlr = 3e-4\nbeta2 = 0.99\n[schedule]\nname = \"linear\"\n"
                              "[train]\nclip_grad_norm = 2.0\n[generator.schedule]\nname = \"cosine\"\n",
                          {"generator.optimizer.lr=1e-4", "discriminator.optimizer.lr=4e-4", "gan.ema_decay=0.999",
                           "gan.real_label=0.9", "discriminator.clip_grad_norm=1.5"});
  EXPECT_EQ(s.generator.optimizer.lr, 1e-4);
  EXPECT_EQ(s.discriminator.optimizer.lr, 4e-4);
  EXPECT_EQ(s.generator.optimizer.beta2, 0.99);  // from [optimizer]
  EXPECT_EQ(s.discriminator.optimizer.beta2, 0.99);
  EXPECT_EQ(s.generator.optimizer.beta1, 0.5);  // Adam is the DCGAN paper's: its beta1
  EXPECT_EQ(s.generator.schedule.name, "cosine");
  EXPECT_EQ(s.discriminator.schedule.name, "linear");
  EXPECT_EQ(s.generator.clip_grad_norm, 2.0);  // from [train]
  EXPECT_EQ(s.discriminator.clip_grad_norm, 1.5);
  EXPECT_EQ(s.gan.ema_decay, 0.999);
  EXPECT_EQ(s.gan.real_label, 0.9);
}

TEST(Settings, AMisspeltKeyInAGanSectionIsStillAnErrorNamingFileLineAndKey) {
  expect_error<ConfigError>([] { read(std::string(kGan) + "[generator.schedule]\nnmae = \"cosine\"\n"); },
                            {"generator.schedule.nmae", "run.toml:11", "name"});
  expect_error<ConfigError>([] { read(kGan, {"generator.optimiser.lr=1e-4"}); },
                            {"generator.optimiser.lr", "command-line override"});
}

TEST(Settings, BadNumbersNameTheKeyAndWhereTheyCameFrom) {
  for (const char* value : {"-0.1", "nan", "inf"}) {
    expect_error<ConfigError>([&] { read(kClassifier, {str_cat("optimizer.lr=", value)}); },
                              {"optimizer.lr", "command-line override", value});
  }
  expect_error<ConfigError>([] { read(std::string(kClassifier) + "[schedule]\nname = \"cosine\"\nmin_lr = -1\n"); },
                            {"schedule.min_lr", "run.toml:13", "-1"});
  expect_error<ConfigError>([] { read(kClassifier, {"run.max_steps=-5"}); }, {"run.max_steps", "at least 0", "-5"});
  expect_error<ConfigError>([] { read(kGan, {"gan.ema_decay=1"}); }, {"gan.ema_decay", "below 1"});
  expect_error<ConfigError>([] { read(kGan, {"gan.real_label=0"}); }, {"gan.real_label", "0"});
  expect_error<ConfigError>([] { read(kClassifier, {"data.validation_fraction=0.9"}); },
                            {"data.validation_fraction", "0.9"});
}

TEST(Settings, ABatchKeyGivenOnTheCommandLineReplacesTheOtherOneOfTheFile) {
  const Settings global = read(kClassifier, {"data.global_batch_size=256"});
  EXPECT_EQ(global.data.global_batch_size, 256);
  EXPECT_FALSE(global.data.batch_size.has_value());
  EXPECT_EQ(global.data.batch_key.key, "data.global_batch_size");
  EXPECT_EQ(global.data.batch_key.file, Config::kCommandLine);
  // Both in the file (or both on the command line) is still ambiguous.
  expect_error<ConfigError>([] { read(std::string(kClassifier), {"data.global_batch_size=256", "data.batch_size=8"}); },
                            {"data.global_batch_size", "both"});
}

TEST(Settings, TheValidationHoldOutIsSeededDisjointAndCoversTheSplit) {
  const auto [held, rest] = io::holdout_split(1000, 0.1, 7);
  EXPECT_EQ(held.size(), 100u);
  EXPECT_EQ(rest.size(), 900u);
  std::vector<std::int64_t> all = held;
  all.insert(all.end(), rest.begin(), rest.end());
  std::sort(all.begin(), all.end());
  for (std::int64_t i = 0; i < 1000; ++i) ASSERT_EQ(all[static_cast<std::size_t>(i)], i);
  EXPECT_EQ(io::holdout_split(1000, 0.1, 7).first, held);  // reproducible
  EXPECT_NE(io::holdout_split(1000, 0.1, 8).first, held);  // seeded
  EXPECT_TRUE(io::holdout_split(1000, 0.0, 7).first.empty());
}

}  // namespace
}  // namespace lockstep::launch

namespace lockstep::launch {
namespace {

TEST(Settings, PrecisionIsF32OrBf16InEitherMode) {
  EXPECT_EQ(read(kClassifier).run.precision, "f32");
  EXPECT_EQ(read(kClassifier, {"run.precision=\"bf16\""}).run.precision, "bf16");
  expect_error<ConfigError>([&] { read(kClassifier, {"run.precision=\"fp16\""}); },
                            {"run.precision", "f32", "bf16", "fp16"});
  EXPECT_EQ(read(kClassifier, {"distributed.deterministic=true", "run.precision=\"bf16\""}).run.precision,
            "bf16");
}

TEST(Settings, DeterministicModeReadsPowerOfTwoMicroShardsAndRefusesWhatItCannotKeep) {
  const Settings s = read(kClassifier, {"distributed.deterministic=true"});
  EXPECT_TRUE(s.distributed.deterministic);
  EXPECT_EQ(s.distributed.micro_shards, 8);
  EXPECT_EQ(
      read(kGan, {"distributed.deterministic=true", "distributed.micro_shards=16"}).distributed.micro_shards,
      16);
  EXPECT_EQ(read(kClassifier).distributed.micro_shards, 0);
  expect_error<ConfigError>(
      [&] {
        read(kClassifier, {"distributed.deterministic=true", "distributed.micro_shards=6"});
      },
      {"distributed.micro_shards", "power of two", "6"});
  expect_error<ConfigError>([&] { read(kClassifier, {"distributed.micro_shards=8"}); },
                            {"distributed.micro_shards", "only under distributed.deterministic = true"});
  expect_error<ConfigError>(
      [&] {
        read(kClassifier, {"distributed.deterministic=true", "distributed.sync_batchnorm=false"});
      },
      {"distributed.sync_batchnorm", "depend on the world size"});
  expect_error<ConfigError>(
      [&] {
        read(kClassifier, {"distributed.deterministic=true", "model.name=\"lstm\""});
      },
      {"model.name", "recurrent models"});
  expect_error<ConfigError>(
      [&] {
        read(kGan,
             {"distributed.deterministic=true", "gan.loss=\"wasserstein-gp\"", "discriminator.name=\"mlp\""});
      },
      {"gan.loss", "gradient penalty"});
  expect_error<ConfigError>(
      [&] {
        read(kGan, {"distributed.deterministic=true", "gan.conditional=true"});
      },
      {"gan.conditional", "conditional GANs"});
  expect_error<ConfigError>(
      [&] {
        read(std::string("task = \"autoencoder\"\n") + "[data]\npath = \"d.h5\"\nbatch_size = 8\n",
             {"distributed.deterministic=true"});
      },
      {"task", "does not support task \"autoencoder\""});
}

}  // namespace
}  // namespace lockstep::launch
