// The classic toolkit's keys: model.name = "vgg11" / "vgg16" with model.dropout, model.block for the ResNets,
// optimizer.l1, train.input_noise and train.label_noise; read, checked with errors at the key, and built into
// the model, the optimizer and the training loader's augmentation.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "launch/config/settings.h"
#include "launch/train/factory.h"
#include "src/core/error.h"
#include "tests/support/expect_error.h"

namespace lockstep::launch {
namespace {

using test::expect_error;

constexpr const char* kBase =
    "[data]\npath = \"data.h5\"\nbatch_size = 64\n[model]\nname = \"resnet20\"\n[optimizer]\nname = \"sgd\"\n"
    "lr = 0.1\n";

Settings read(const std::vector<std::string>& overrides) {
  return read_settings(Config::parse(kBase, "run.toml", overrides));
}

std::string names_of(const nn::Module& m) {
  std::string all;
  for (const auto& [name, t] : m.named_parameters()) all += name + " ";
  return all;
}

TEST(ClassicSettings, VggAndItsDropoutBuildForBothImageSizes) {
  const Settings s = read({"model.name=\"vgg16\"", "model.dropout=0.3"});
  EXPECT_EQ(s.model.model.name, "vgg16");
  EXPECT_EQ(s.model.model.dropout, 0.3);
  EXPECT_EQ(read({"model.name=\"vgg11\""}).model.model.dropout, 0.5);
  for (const std::int64_t size : {28, 32}) {
    const auto model =
        make_classifier(s.model.model, {.channels = 1, .height = size, .width = size, .classes = 10});
    EXPECT_NE(names_of(*model).find("features.40.weight"), std::string::npos);  // vgg16's last conv
  }
  expect_error<ConfigError>(
      [&] { make_classifier(s.model.model, {.channels = 1, .height = 64, .width = 64, .classes = 10}); },
      {"model.name", "vgg16 expects 28x28 or 32x32", "64x64"});
  expect_error<ConfigError>(
      [&] {
        read({"model.name=\"vgg11\"", "model.dropout=1"});
      },
      {"model.dropout", "below 1"});
}

TEST(ClassicSettings, BlockPicksPreActivationResNets) {
  const Settings s = read({"model.block=\"preact\""});
  EXPECT_EQ(s.model.model.block, "preact");
  EXPECT_EQ(read({}).model.model.block, "basic");
  const DataGeometry data{.channels = 1, .height = 28, .width = 28, .classes = 10};
  EXPECT_NE(names_of(*make_classifier(s.model.model, data)).find("bn_final.weight"), std::string::npos);
  EXPECT_EQ(names_of(*make_classifier(read({}).model.model, data)).find("bn_final"), std::string::npos);
  const Settings r18 = read({"model.name=\"resnet18\"", "model.block=\"preact\""});
  EXPECT_NE(names_of(*make_classifier(r18.model.model, data)).find("layer2.0.shortcut.weight"),
            std::string::npos);
  expect_error<ConfigError>(
      [&] {
        read({"model.name=\"resnet50\"", "model.block=\"preact\""});
      },
      {"model.block", "resnet50"});
  expect_error<ConfigError>([&] { read({"model.block=\"pre\""}); }, {"model.block", "preact"});
  // Not a key of the other models: rejected as unknown.
  expect_error<ConfigError>(
      [&] {
        read({"model.name=\"vgg11\"", "model.block=\"preact\""});
      },
      {"model.block"});
}

TEST(ClassicSettings, L1ReachesTheOptimizer) {
  const Settings s = read({"optimizer.l1=1e-4"});
  EXPECT_EQ(s.model.optimizer.l1, 1e-4);
  const auto model = make_classifier(s.model.model, {.channels = 1, .height = 8, .width = 8, .classes = 3});
  EXPECT_EQ(make_optimizer(s.model.optimizer, *model)->l1(), 1e-4);
  EXPECT_EQ(make_optimizer(read({}).model.optimizer, *model)->l1(), 0.0);
  expect_error<ConfigError>([&] { read({"optimizer.l1=-1"}); }, {"optimizer.l1", ">= 0"});
}

TEST(ClassicSettings, NoiseKeysReachOnlyTheTrainingLoader) {
  const Settings s = read({"train.input_noise=0.2", "train.label_noise=0.25"});
  EXPECT_EQ(s.train.input_noise, 0.2);
  EXPECT_EQ(s.train.label_noise, 0.25);
  DataSplits data;
  data.geometry.classes = 10;
  data.test_options.augment.input_noise = 0.0;
  add_training_noise(s.train, data);
  EXPECT_EQ(data.train_options.augment.input_noise, 0.2);
  EXPECT_EQ(data.train_options.augment.label_noise, 0.25);
  EXPECT_EQ(data.train_options.augment.classes, 10);
  EXPECT_EQ(data.test_options.augment.input_noise, 0.0);
  EXPECT_EQ(data.test_options.augment.label_noise, 0.0);
  expect_error<ConfigError>([&] { read({"train.label_noise=1.5"}); }, {"train.label_noise", "at most 1"});
  expect_error<ConfigError>([&] { read({"train.input_noise=-0.1"}); }, {"train.input_noise"});
}

}  // namespace
}  // namespace lockstep::launch
