// Tests of the training support code: model files (save, reload, mismatches by name), the mapping of
// generator output to a classifier's input, the progress formatting and the metrics log.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "io/h5/h5.h"
#include "io/model/model_file.h"
#include "launch/config/config.h"
#include "launch/train/evaluate.h"
#include "launch/train/progress.h"
#include "launch/train/run.h"
#include "src/models/resnet.h"
#include "src/nn/container.h"
#include "src/nn/linear.h"
#include "src/tensor/factories.h"

namespace lockstep::launch {
namespace {

namespace fs = std::filesystem;

fs::path temp_path(const std::string& name) {
  return fs::temp_directory_path() / str_cat("lockstep_train_test_", ::getpid(), "_", name);
}

TEST(ModelFile, RoundTripsEveryParameterAndBufferUnderPathNames) {
  manual_seed(11);
  models::CifarResNet saved(8, 1, 10);
  const launch::Config cfg = launch::Config::parse("[run]\nseed = 11\n", "run.toml");
  cfg.get_int("run.seed");
  const fs::path path = temp_path("resnet.h5");
  io::write_model_file(path, "classifier", cfg.to_string(), {{"model", &saved}});

  {  // The dotted names are paths in the file; the config is stored as TOML text.
    io::h5::File file(path, io::h5::Access::kRead);
    EXPECT_TRUE(file.root().contains("model/layer1/0/conv1/weight"));
    EXPECT_TRUE(file.root().contains("model/bn1/running_var"));
    EXPECT_EQ(file.root().attribute_string("kind"), "classifier");
  }
  EXPECT_NE(io::read_model_file_info(path).config.find("seed = 11"), std::string::npos);

  manual_seed(12);
  models::CifarResNet loaded(8, 1, 10);
  io::load_model_group(path, "model", loaded);
  const nn::StateDict a = saved.state_dict(), b = loaded.state_dict();
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [name, tensor] : a) {
    const Tensor& other = b.at(name);
    ASSERT_EQ(tensor.shape(), other.shape()) << name;
    if (tensor.dtype() == DType::i64) {
      EXPECT_EQ(tensor.to_vector<std::int64_t>(), other.to_vector<std::int64_t>()) << name;
    } else {
      EXPECT_EQ(tensor.to_vector<float>(), other.to_vector<float>()) << name;
    }
  }
  fs::remove(path);
}

TEST(ModelFile, LoadingAnotherArchitectureNamesEveryMismatch) {
  nn::Sequential small;
  small.push_back(std::make_shared<nn::Linear>(4, 3));
  const launch::Config cfg = launch::Config::parse("", "empty.toml");
  const fs::path path = temp_path("small.h5");
  io::write_model_file(path, "classifier", cfg.to_string(), {{"model", &small}});

  nn::Sequential other;
  other.push_back(std::make_shared<nn::Linear>(5, 3));
  other.push_back(std::make_shared<nn::Linear>(3, 2));
  try {
    io::load_model_group(path, "model", other);
    FAIL() << "expected a ValueError";
  } catch (const ValueError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("0.weight"), std::string::npos) << message;  // shape [3,4] vs [3,5]
    EXPECT_NE(message.find("1.weight"), std::string::npos) << message;  // missing
    EXPECT_NE(message.find("1.bias"), std::string::npos) << message;
  }
  fs::remove(path);
}

TEST(ModelFile, MissingFileIsAnIoErrorNamingIt) {
  nn::Sequential model;
  try {
    io::load_model_group("/nonexistent/model.h5", "model", model);
    FAIL() << "expected an IoError";
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/model.h5"), std::string::npos) << e.what();
  }
}

TEST(ClassifierInput, CropsTheCentreScalesToUnitRangeAndNormalises) {
  // 1 image, 1 channel, 4x4 with value = row * 4 + col mapped into [-1, 1].
  std::vector<float> v(16);
  for (int i = 0; i < 16; ++i) v[static_cast<std::size_t>(i)] = -1.0f + static_cast<float>(i) / 7.5f;
  const Tensor generated = from_vector(v, {1, 1, 4, 4});
  const std::vector<float> out = to_classifier_input(generated, 2, 2, {0.25}, {0.5}).to_vector<float>();
  ASSERT_EQ(out.size(), 4u);
  const int centre[4] = {5, 6, 9, 10};  // rows 1-2, columns 1-2
  for (int i = 0; i < 4; ++i) {
    const double x = -1.0 + centre[i] / 7.5;
    EXPECT_NEAR(out[static_cast<std::size_t>(i)], ((x + 1) / 2 - 0.25) / 0.5, 1e-6) << i;
  }
  EXPECT_THROW(to_classifier_input(generated, 5, 5, {0.25}, {0.5}), ValueError);
  EXPECT_THROW(to_classifier_input(generated, 2, 2, {0.25, 0.1}, {0.5, 0.5}), ValueError);
}

TEST(Progress, DurationsReadLikeAClock) {
  EXPECT_EQ(format_duration(0.4), "0s");
  EXPECT_EQ(format_duration(59.4), "59s");
  EXPECT_EQ(format_duration(65), "1m05s");
  EXPECT_EQ(format_duration(3600 + 180), "1h03m");
  EXPECT_EQ(format_duration(-3), "0s");
}

}  // namespace
}  // namespace lockstep::launch
