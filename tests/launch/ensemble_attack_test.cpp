// `lockstep eval` for classifiers: an ensemble's figures against the members' probabilities averaged
// independently, the FGSM evaluation (epsilon 0 changes nothing; the PNG's layout), adversarial training's
// metrics record, and the command line's errors. Two MLPs trained for a few steps on 320 real images.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "io/data/loader.h"
#include "io/image/png.h"
#include "io/json/json.h"
#include "io/model/model_file.h"
#include "launch/cli/commands.h"
#include "launch/cli/common.h"
#include "launch/cli/eval_classifier.h"
#include "launch/config/config.h"
#include "launch/config/settings.h"
#include "launch/train/evaluate.h"
#include "launch/train/factory.h"
#include "launch/train/loop.h"
#include "launch/train/progress.h"
#include "launch/train/run.h"
#include "src/core/strings.h"
#include "tests/support/expect_error.h"
#include "tests/support/fashion_mnist.h"
#include "tests/support/temp_dir.h"

namespace lockstep::launch {
namespace {

namespace fs = std::filesystem;

TrainResult train_text(const std::string& text, const std::vector<std::string>& overrides = {}) {
  const Settings settings = read_settings(Config::parse(text, "run.toml", overrides));
  RunSettings run = setup_run(settings);
  std::FILE* sink = std::tmpfile();
  Progress progress(sink, Style::kLines);
  TrainResult result = train(settings, run, progress);
  std::fclose(sink);
  return result;
}

std::string mlp_config(const fs::path& out, int seed) {
  return str_cat("[run]\nseed = ", seed, "\nthreads = 1\nepochs = 1\nmax_steps = 6\noutput = \"",
                 out.string(), "\"\n[data]\npath = \"", test::small_fashion_mnist_h5().string(),
                 "\"\nbatch_size = 32\n[model]\nname = \"mlp\"\nhidden = [32]\n[optimizer]\nname = \"adam\"\n"
                 "lr = 0.01\n");
}

class ClassifierEval : public test::TempDirTest {
 protected:
  void SetUp() override {
    test::TempDirTest::SetUp();
    train_text(mlp_config(file("a"), 1));
    train_text(mlp_config(file("b"), 2));
  }
  std::string model(const char* name) const { return (file(name) / "model.h5").string(); }
};

// The model of `file` and its test loader.
struct Loaded {
  DataSplits data;
  std::shared_ptr<nn::Module> model;
};
Loaded load(const std::string& file) {
  const Settings s = stored_settings(file, "");
  Loaded l{make_data(s.data, 0), nullptr};
  l.model = make_classifier(s.model.model, l.data.geometry);
  io::load_model_group(file, "model", *l.model);
  return l;
}

TEST_F(ClassifierEval, AnEnsembleAveragesTheMembersProbabilities) {
  Loaded a = load(model("a")), b = load(model("b"));
  io::DataLoader la(a.data.test, a.data.test_options), lb(b.data.test, b.data.test_options);
  const EnsembleAccuracy got = evaluate_ensemble({a.model.get(), b.model.get()}, {&la, &lb});

  // Independent: every test image's softmax per member in double, averaged.
  std::vector<std::vector<double>> probability(2);
  std::vector<std::int64_t> labels;
  for (int m = 0; m < 2; ++m) {
    Loaded& l = m == 0 ? a : b;
    io::DataLoader loader(l.data.test, l.data.test_options);
    loader.start_epoch(0);
    l.model->eval();
    while (std::optional<io::Batch> batch = loader.next()) {
      const std::vector<float> z = (*l.model)(batch->images).to_vector<float>();
      for (std::size_t i = 0; i < z.size() / 10; ++i) {
        const double top = *std::max_element(z.begin() + static_cast<std::ptrdiff_t>(i * 10),
                                             z.begin() + static_cast<std::ptrdiff_t>(i * 10 + 10));
        double total = 0;
        for (std::size_t k = 0; k < 10; ++k) total += std::exp(z[i * 10 + k] - top);
        for (std::size_t k = 0; k < 10; ++k) probability[m].push_back(std::exp(z[i * 10 + k] - top) / total);
      }
      if (m == 0)
        for (const std::int64_t y : batch->labels.to_vector<std::int64_t>()) labels.push_back(y);
    }
  }
  ASSERT_EQ(labels.size(), static_cast<std::size_t>(test::kSmallTestImages));
  std::int64_t correct = 0, correct_a = 0;
  double loss = 0;
  for (std::size_t i = 0; i < labels.size(); ++i) {
    std::size_t best = 0, best_a = 0;
    for (std::size_t k = 0; k < 10; ++k) {
      const double p = (probability[0][i * 10 + k] + probability[1][i * 10 + k]) / 2;
      if (p > (probability[0][i * 10 + best] + probability[1][i * 10 + best]) / 2) best = k;
      if (probability[0][i * 10 + k] > probability[0][i * 10 + best_a]) best_a = k;
    }
    const auto y = static_cast<std::size_t>(labels[i]);
    correct += best == y;
    correct_a += best_a == y;
    loss -= std::log((probability[0][i * 10 + y] + probability[1][i * 10 + y]) / 2);
  }
  const double n = static_cast<double>(labels.size());
  EXPECT_EQ(got.ensemble.count, test::kSmallTestImages);
  EXPECT_DOUBLE_EQ(got.ensemble.accuracy, static_cast<double>(correct) / n);
  EXPECT_NEAR(got.ensemble.loss, loss / n, 1e-6 * loss / n);
  EXPECT_DOUBLE_EQ(got.members[0].accuracy, static_cast<double>(correct_a) / n);
  // Members are the plain evaluation's figures.
  io::DataLoader again(b.data.test, b.data.test_options);
  const Accuracy plain = evaluate_classifier(*b.model, again);
  EXPECT_EQ(got.members[1].accuracy, plain.accuracy);
  EXPECT_EQ(got.members[1].confusion, plain.report.confusion);
  EXPECT_NE(got.members[0].confusion, got.members[1].confusion);  // two different members

  testing::internal::CaptureStdout();
  EXPECT_EQ(run_eval({"--classifier", model("a"), model("b")}), 0);
  const std::string printed = testing::internal::GetCapturedStdout();
  EXPECT_NE(printed.find(str_cat("ensemble of 2 (mean probability): test accuracy ",
                                 format_fixed(got.ensemble.accuracy, 4))),
            std::string::npos)
      << printed;
  EXPECT_NE(printed.find("confusion matrix"), std::string::npos) << printed;
  EXPECT_NE(printed.find("Ankle boot"), std::string::npos) << printed;
}

TEST_F(ClassifierEval, FgsmLowersAccuracyEpsilonZeroDoesNotAndThePngHoldsCleanPerturbationAdversarial) {
  Loaded a = load(model("a"));
  io::DataLoader loader(a.data.test, a.data.test_options);
  const models::InputNormalization norm = input_normalization(*a.data.test, a.data.test_options);
  const AttackAccuracy none = evaluate_fgsm(*a.model, loader, 0.0, norm);
  EXPECT_EQ(none.adversarial.confusion, none.clean.confusion);
  std::pair<Tensor, Tensor> examples;
  const AttackAccuracy attack = evaluate_fgsm(*a.model, loader, 0.1, norm, 8, &examples);
  EXPECT_EQ(attack.clean.confusion, none.clean.confusion);
  EXPECT_LT(attack.adversarial.accuracy, attack.clean.accuracy - 0.1);
  EXPECT_GT(attack.adversarial.loss, attack.clean.loss);
  // Pixels in [0, 1] moved by at most epsilon.
  const std::vector<float> clean = examples.first.to_vector<float>(),
                           adv = examples.second.to_vector<float>();
  ASSERT_EQ(clean.size(), 8u * 28 * 28);
  for (std::size_t i = 0; i < clean.size(); ++i) {
    ASSERT_GE(adv[i], -1e-5F);
    ASSERT_LE(adv[i], 1 + 1e-5F);
    ASSERT_LE(std::abs(adv[i] - clean[i]), 0.1F + 1e-5F);
  }

  const fs::path png = file("fgsm.png");
  testing::internal::CaptureStdout();
  EXPECT_EQ(run_eval({"--classifier", model("a"), "--attack", "fgsm", "--epsilon", "0.1", "--attack-png",
                      png.string()}),
            0);
  const std::string printed = testing::internal::GetCapturedStdout();
  EXPECT_NE(printed.find(str_cat("clean accuracy ", format_fixed(attack.clean.accuracy, 4),
                                 ", adversarial accuracy ", format_fixed(attack.adversarial.accuracy, 4))),
            std::string::npos)
      << printed;
  const Tensor image = io::read_png(png);
  EXPECT_EQ(image.shape(), (Shape{1, 8 * 30 + 2, 3 * 30 + 2}));  // 8 rows of 3 tiles, 2-pixel padding
}

TEST_F(ClassifierEval, BadAttackOptionsAreUsageErrors) {
  test::expect_error<UsageError>(
      [&] {
        run_eval({"--classifier", model("a"), "--attack", "pgd"});
      },
      {"--attack", "pgd"});
  test::expect_error<UsageError>(
      [&] {
        run_eval({"--classifier", model("a"), "--attack", "fgsm", "--epsilon", "2"});
      },
      {"--epsilon", "2"});
  test::expect_error<UsageError>(
      [&] {
        run_eval({"--classifier", model("a"), model("b"), "--attack", "fgsm"});
      },
      {"--attack", "ensemble"});
}

TEST_F(ClassifierEval, AdversarialTrainingRecordsTheConfusionMatrixOfTheTestSplit) {
  const TrainResult r = train_text(mlp_config(file("adv"), 3), {"train.adversarial_epsilon=0.1"});
  EXPECT_EQ(r.steps, 6);
  std::ifstream in(file("adv") / "metrics.jsonl");
  std::string line, last;
  while (std::getline(in, line)) last = line;
  const io::JsonValue record = io::parse_json(last, "metrics.jsonl");
  const io::JsonValue* confusion = record.member("test_confusion");
  ASSERT_NE(confusion, nullptr) << last;
  ASSERT_EQ(confusion->items.size(), 10u);
  std::int64_t total = 0;
  for (const io::JsonValue& row : confusion->items) {
    ASSERT_EQ(row.items.size(), 10u);
    for (const io::JsonValue& v : row.items) total += std::stoll(v.text);
  }
  EXPECT_EQ(total, test::kSmallTestImages);
  for (const char* key : {"test_top5_accuracy", "test_macro_f1", "test_precision", "test_recall", "test_f1"})
    EXPECT_NE(record.member(key), nullptr) << key;
  test::expect_error<ConfigError>(
      [&] { train_text(mlp_config(file("x"), 3), {"train.adversarial_epsilon=-1"}); },
      {"train.adversarial_epsilon"});
}

}  // namespace
}  // namespace lockstep::launch
