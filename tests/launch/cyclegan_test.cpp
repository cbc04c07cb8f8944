// Tests of the CycleGAN task: the image pools against a plain re-implementation of the reference's
// ImagePool.query with the same draws; the losses the task logs for a step against an independent
// computation from the saved networks and the domains' images; the settings it refuses; `lockstep sample`
// translating a split's images against the generators loaded independently; domain B from a file of its own;
// `lockstep eval --translator` against the classifier's decisions computed here.
#include "launch/train/cyclegan.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <tuple>
#include <vector>

#include "io/data/dataset.h"
#include "io/h5/h5.h"
#include "io/image/grid.h"
#include "io/image/png.h"
#include "io/model/model_file.h"
#include "io/state/state_file.h"
#include "launch/cli/commands.h"
#include "launch/cli/common.h"
#include "launch/config/config.h"
#include "launch/config/settings.h"
#include "launch/train/loop.h"
#include "launch/train/progress.h"
#include "launch/train/run.h"
#include "src/autograd/grad_mode.h"
#include "src/core/rng.h"
#include "src/core/strings.h"
#include "src/models/mlp.h"
#include "src/ops/elementwise.h"
#include "src/ops/shape.h"
#include "src/tensor/factories.h"
#include "tests/support/expect_error.h"
#include "tests/support/temp_dir.h"

namespace lockstep::launch {
namespace {

namespace fs = std::filesystem;
using test::expect_error;

// An image [1, 2, 2] filled with `v`.
Tensor image_of(double v) { return full({1, 2, 2}, v); }

TEST(ImagePools, DrawLikeTheReferenceQueryWithOneCounterPerFullPoolImage) {
  constexpr std::int64_t kCapacity = 3;
  constexpr std::uint64_t kSeed = 77;
  ImagePools pools(kCapacity, 1, 2, 2, kSeed);
  std::vector<std::string> names;
  for (const auto& [name, t] : pools.named_buffers()) names.push_back(name);
  EXPECT_EQ(names, (std::vector<std::string>{"stream", "a.images", "a.count", "b.images", "b.count"}));

  // The reference, on plain numbers (each image is identified by its fill value); one stream for both pools.
  std::vector<double> ref_a, ref_b;
  std::uint64_t counter = 0;
  const auto ref_query = [&](std::vector<double>& pool, double v) {
    if (static_cast<std::int64_t>(pool.size()) < kCapacity) {
      pool.push_back(v);
      return v;
    }
    const auto words = philox4x32(kSeed, 0, counter++);
    if (words[0] < (1u << 31)) return v;
    const std::size_t slot = words[1] % kCapacity;
    const double old = pool[slot];
    pool[slot] = v;
    return old;
  };
  double next = 1.0;
  int swapped = 0;
  for (int round = 0; round < 12; ++round) {
    for (const auto domain : {ImagePools::Domain::kB, ImagePools::Domain::kA}) {
      std::vector<Tensor> batch;
      std::vector<double> values;
      for (int i = 0; i < 2; ++i) {
        values.push_back(next);
        batch.push_back(image_of(next++));
      }
      const Tensor out = pools.query(domain, stack(batch, 0));
      ASSERT_EQ(out.shape(), (Shape{2, 1, 2, 2}));
      const std::vector<float> got = out.to_vector<float>();
      for (int i = 0; i < 2; ++i) {
        const double want = ref_query(domain == ImagePools::Domain::kA ? ref_a : ref_b, values[i]);
        swapped += want != values[i];
        for (int k = 0; k < 4; ++k) EXPECT_EQ(got[4 * i + k], want) << "round " << round << " image " << i;
      }
    }
  }
  EXPECT_GT(swapped, 5);  // about half of the 40 full-pool draws return a stored image
  EXPECT_LT(swapped, 35);
  EXPECT_EQ(pools.pool(ImagePools::Domain::kA).count(), kCapacity);
  const std::vector<float> stored = pools.pool(ImagePools::Domain::kA).images().to_vector<float>();
  for (std::int64_t s = 0; s < kCapacity; ++s) EXPECT_EQ(stored[4 * s], ref_a[s]);
  for (const auto& [name, t] : pools.named_buffers()) {
    if (name == "stream") {
      EXPECT_EQ(t.to_vector<std::int64_t>()[1], static_cast<std::int64_t>(counter));
    }
  }

  // Without a pool, the newest images pass through.
  ImagePools none(0, 1, 2, 2, kSeed);
  EXPECT_EQ(none.query(ImagePools::Domain::kA, stack({image_of(5.0)}, 0)).to_vector<float>(),
            image_of(5.0).to_vector<float>());
}

// 12 random 32x32 training images: 4 each of classes 0 (domain A), 1 (domain B) and 2 (neither); and 6 test
// images, classes 0, 1, 2, 0, 1, 2.
fs::path write_three_classes(const fs::path& path) {
  Generator gen(11);
  const io::h5::File out(path, io::h5::Access::kTruncate);
  const io::h5::Group root = out.root();
  root.set_attribute("format_version", std::int64_t{1});
  root.set_attribute("class_names", std::vector<std::string>{"zero", "one", "two"});
  for (const auto& [name, n] : {std::pair{"train", std::int64_t{12}}, std::pair{"test", std::int64_t{6}}}) {
    const Tensor pixels = rand({n, 1, 32, 32}, 0.0, 255.0, DType::f32, kCPU, &gen).to(DType::u8);
    std::vector<std::int64_t> labels;
    for (std::int64_t i = 0; i < n; ++i) labels.push_back(i % 3);
    const io::h5::Group split = root.create_group(name);
    split.write_tensor("images", pixels);
    split.write_tensor("labels", from_vector(labels, {n}));
    split.set_attribute("mean", std::vector<double>{0.5});
    split.set_attribute("std", std::vector<double>{0.25});
  }
  out.flush();
  return path;
}

std::string config_text(const fs::path& data, const fs::path& output) {
  return str_cat(
      "task = \"cyclegan\"\n[run]\nseed = 3\nepochs = 1\nthreads = 1\noutput = \"", output.string(),
      "\"\n[data]\npath = \"", data.string(),
      "\"\ntest_split = \"\"\nbatch_size = 4\nnormalize = \"tanh\"\n[cyclegan]\ndomain_a.classes = [0]\n"
      "domain_b.classes = [1]\neval_images = 0\n[generator]\nname = \"cyclegan-resnet\"\nwidth = 2\n"
      "residual_blocks = 1\n[discriminator]\nname = \"patchgan\"\nwidth = 2\n[optimizer]\nlr = 0.0\n");
}

TrainResult train_text(const std::string& text, const std::vector<std::string>& overrides = {}) {
  const Settings settings = read_settings(Config::parse(text, "run.toml", overrides));
  RunSettings run = setup_run(settings);
  std::FILE* sink = std::tmpfile();
  Progress progress(sink, Style::kLines);
  TrainResult result = train(settings, run, progress);
  std::fclose(sink);
  return result;
}

// The images of `label` in split `split` in [-1, 1], in file order.
Tensor domain_images(const fs::path& data, std::int64_t label, const std::string& split = "train") {
  const auto set = io::ImageDataset::open(data, split, io::Cache::kMemory);
  std::vector<std::int64_t> indices;
  for (std::int64_t i = 0; i < set->size(); ++i)
    if (set->labels()[static_cast<std::size_t>(i)] == label) indices.push_back(i);
  std::vector<std::uint8_t> bytes(indices.size() * static_cast<std::size_t>(set->image_bytes()));
  std::vector<std::int64_t> labels(indices.size());
  set->gather(indices, bytes.data(), labels.data());
  std::vector<float> values;
  for (const std::uint8_t v : bytes) values.push_back(static_cast<float>(v / 255.0 * 2.0 - 1.0));
  return from_vector(values, {static_cast<std::int64_t>(indices.size()), 1, 32, 32});
}

double mean_abs(const Tensor& x, const Tensor& y) {
  const std::vector<float> a = x.to_vector<float>(), b = y.to_vector<float>();
  double s = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) s += std::fabs(static_cast<double>(a[i]) - b[i]);
  return s / static_cast<double>(a.size());
}

double mean_square_from(const Tensor& x, double target) {
  const std::vector<float> a = x.to_vector<float>();
  double s = 0.0;
  for (const float v : a) s += (v - target) * (v - target);
  return s / static_cast<double>(a.size());
}

using CycleGanTask = test::TempDirTest;

// The losses `r` logged for its one step, against those computed here from the networks saved in
// <out>/model.h5 and all of domain A's images `a` and domain B's `b` (one batch each); returns the cycle
// loss.
double expect_logged_losses(const TrainResult& r, const fs::path& out, const Tensor& a, const Tensor& b) {
  EXPECT_EQ(r.steps, 1);
  const io::h5::File model(out / "model.h5", io::h5::Access::kRead);
  const auto load = [&](nn::Module& m, const char* group) {
    m.load_state_dict(io::read_state_dict(model.root().group(group)));
  };
  models::CycleGANGenerator g({.channels = 1, .width = 2, .residual_blocks = 1});
  models::CycleGANGenerator f({.channels = 1, .width = 2, .residual_blocks = 1});
  models::PatchGANDiscriminator d_a({.channels = 1, .width = 2, .layers = 2});
  models::PatchGANDiscriminator d_b({.channels = 1, .width = 2, .layers = 2});
  load(g, "generator_a2b");
  load(f, "generator_b2a");
  load(d_a, "discriminator_a");
  load(d_b, "discriminator_b");
  NoGradGuard no_grad;
  const Tensor fake_b = g(a), fake_a = f(b);
  const double cycle = 10.0 * (mean_abs(f(fake_b), a) + mean_abs(g(fake_a), b));
  const double identity = 10.0 * 0.5 * (mean_abs(g(b), b) + mean_abs(f(a), a));
  const double adversarial = mean_square_from(d_b(fake_b), 1.0) + mean_square_from(d_a(fake_a), 1.0);
  // The pools were empty: the discriminators saw this step's translations.
  const double d = 0.5 * (mean_square_from(d_a(a), 1.0) + mean_square_from(d_a(fake_a), 0.0)) +
                   0.5 * (mean_square_from(d_b(b), 1.0) + mean_square_from(d_b(fake_b), 0.0));
  EXPECT_NEAR(r.figure("cycle_loss"), cycle, 1e-5 * cycle);
  EXPECT_NEAR(r.figure("identity_loss"), identity, 1e-5 * identity);
  EXPECT_NEAR(r.figure("g_adversarial"), adversarial, 1e-5 * adversarial);
  EXPECT_NEAR(r.figure("d_loss"), d, 1e-5 * d);
  EXPECT_GT(cycle, 1.0);  // untrained: far from the identity map
  return cycle;
}

TEST_F(CycleGanTask, LoggedLossesOfAStepEqualAnIndependentComputationOnTheDomainsImages) {
  // Learning rate 0: the saved networks are those the step ran with. Each domain holds exactly one batch of
  // 4 images, so the step saw all of them (in some order; every loss is a mean over images).
  const fs::path data = write_three_classes(file("three.h5")), out = file("run");
  const TrainResult r = train_text(config_text(data, out));
  const Tensor a = domain_images(data, 0), b = domain_images(data, 1);
  ASSERT_EQ(a.size(0), 4);
  ASSERT_EQ(b.size(0), 4);
  const double cycle = expect_logged_losses(r, out, a, b);

  // Without the identity term the cycle loss is the same and the identity loss 0.
  const TrainResult no_identity = train_text(config_text(data, file("run2")), {"cyclegan.lambda_identity=0"});
  EXPECT_NEAR(no_identity.figure("cycle_loss"), cycle, 1e-5 * cycle);
  EXPECT_EQ(no_identity.figure("identity_loss"), 0.0);
  EXPECT_TRUE(fs::exists(out / "translations_epoch_1.png"));
}

TEST_F(CycleGanTask, SettingsItCannotTrainOnAreConfigErrorsNamingTheKey) {
  const fs::path data = write_three_classes(file("three.h5")), out = file("run");
  const std::string text = config_text(data, out);
  expect_error<ConfigError>([&] { train_text(text, {"data.normalize=dataset"}); },
                            {"data.normalize", "tanh"});
  expect_error<ConfigError>([&] { train_text(text, {"cyclegan.domain_b.classes=[1, 0]"}); },
                            {"cyclegan.domain_b.classes", "both hold class 0"});
  expect_error<ConfigError>([&] { train_text(text, {"cyclegan.domain_b.classes=[5]"}); },
                            {"cyclegan.domain_b.classes", "below the data set's 3", "5"});
  expect_error<ConfigError>([&] { train_text(text, {"discriminator.layers=4"}); },
                            {"discriminator.name", "at least 48x48", "32x32"});
  expect_error<ConfigError>([&] { train_text(text, {"data.batch_size=8"}); }, {"data.batch_size"});
}

TEST_F(CycleGanTask, SampleTranslatesTheSplitsImagesOfTheSourceDomainAndBack) {
  const fs::path data = write_three_classes(file("three.h5")), out = file("run");
  train_text(config_text(data, out), {"optimizer.lr=0.01"});
  const fs::path model_path = out / "model.h5";
  models::CycleGANGenerator g({.channels = 1, .width = 2, .residual_blocks = 1});
  models::CycleGANGenerator f({.channels = 1, .width = 2, .residual_blocks = 1});
  io::load_model_group(model_path, "generator_a2b", g);
  io::load_model_group(model_path, "generator_b2a", f);
  for (const auto& [direction, label] :
       {std::pair{"a2b", std::int64_t{0}}, std::pair{"b2a", std::int64_t{1}}}) {
    SCOPED_TRACE(direction);
    const fs::path png = file(str_cat(direction, ".png"));
    testing::internal::CaptureStdout();
    const int code = run_sample({model_path.string(), "--input", data.string(), "--split", "test",
                                 "--direction", direction, "--count", "5", "--output", png.string()});
    const std::string printed = testing::internal::GetCapturedStdout();
    ASSERT_EQ(code, 0);
    EXPECT_NE(printed.find(str_cat("wrote 2 translations (", direction, ") of ", data.string(), " [test]")),
              std::string::npos)
        << printed;
    // Test images 0 and 3 (class 0) or 1 and 4 (class 1), each as input | translation | reconstruction.
    const Tensor x = domain_images(data, label, "test");
    ASSERT_EQ(x.size(0), 2);
    nn::Module& there = label == 0 ? static_cast<nn::Module&>(g) : f;
    nn::Module& back = label == 0 ? static_cast<nn::Module&>(f) : g;
    NoGradGuard no_grad;
    std::vector<Tensor> tiles;
    for (std::int64_t i = 0; i < 2; ++i) {
      const Tensor xi = x.slice(0, i, i + 1);
      const Tensor yi = there(xi);
      tiles.insert(tiles.end(), {xi, yi, back(yi)});
    }
    const Tensor want = io::image_grid(cat(tiles, 0), 6);
    const Tensor got = io::read_png(png);
    ASSERT_EQ(got.shape(), want.shape());
    const std::vector<std::uint8_t> a = got.to_vector<std::uint8_t>(), b = want.to_vector<std::uint8_t>();
    std::int64_t off_by_more_than_one = 0;  // f32 rounding of other batch shapes may move a pixel by 1
    for (std::size_t i = 0; i < a.size(); ++i) off_by_more_than_one += std::abs(int{a[i]} - int{b[i]}) > 1;
    EXPECT_EQ(off_by_more_than_one, 0);
  }
  expect_error<UsageError>(
      [&] {
        run_sample({model_path.string(), "--direction", "sideways"});
      },
      {"--direction", "a2b or b2a", "sideways"});
  // Another file whose split holds no image of domain A's class 0: nothing to translate.
  const fs::path other = file("other.h5");
  {
    const io::h5::File o(other, io::h5::Access::kTruncate);
    o.root().set_attribute("format_version", std::int64_t{1});
    const io::h5::Group t = o.root().create_group("test");
    t.write_tensor("images", zeros({2, 1, 32, 32}, DType::u8));
    t.write_tensor("labels", from_vector(std::vector<std::int64_t>{1, 2}, {2}));
    o.flush();
  }
  expect_error<ValueError>(
      [&] {
        run_sample({model_path.string(), "--input", other.string(), "--split", "test", "--output",
                    file("y.png").string()});
      },
      {"domain A", "split 'test'", other.string(), "has none"});
}

// 4 training and 2 test images of one class ("boot") of `size` x `size`, in a file of their own.
fs::path write_boots(const fs::path& path, std::int64_t size) {
  Generator gen(12);
  const io::h5::File out(path, io::h5::Access::kTruncate);
  const io::h5::Group root = out.root();
  root.set_attribute("format_version", std::int64_t{1});
  root.set_attribute("class_names", std::vector<std::string>{"boot"});
  for (const auto& [name, n] : {std::pair{"train", std::int64_t{4}}, std::pair{"test", std::int64_t{2}}}) {
    const io::h5::Group split = root.create_group(name);
    split.write_tensor("images", rand({n, 1, size, size}, 0.0, 255.0, DType::f32, kCPU, &gen).to(DType::u8));
    split.write_tensor("labels", zeros({n}, DType::i64));
  }
  out.flush();
  return path;
}

TEST_F(CycleGanTask, DomainBFromAFileOfItsOwnTrainsOnEveryImageOfItAndSampleTranslatesItsTestSplit) {
  const fs::path data = write_three_classes(file("three.h5")), boots = write_boots(file("boots.h5"), 32);
  const fs::path out = file("run");
  // Class 0 is domain A in three.h5 and, by itself, no class of boots.h5's domain B (every class of it).
  std::string text = config_text(data, out);
  text.erase(text.find("domain_b.classes = [1]\n"), 23);
  const TrainResult r = train_text(
      text, {str_cat("cyclegan.domain_b.path=\"", boots.string(), "\""), "cyclegan.eval_images=2"});
  expect_logged_losses(r, out, domain_images(data, 0), domain_images(boots, 0));
  EXPECT_FALSE(std::isnan(r.figure("cycle_mae_b")));  // boots.h5 images (no test split in this config)
  const fs::path png = file("b2a.png");
  testing::internal::CaptureStdout();
  EXPECT_EQ(run_sample({(out / "model.h5").string(), "--direction", "b2a", "--output", png.string()}), 0);
  const std::string printed = testing::internal::GetCapturedStdout();
  EXPECT_NE(printed.find(str_cat("wrote 2 translations (b2a) of ", boots.string(), " [test]")),
            std::string::npos)
      << printed;

  // Images of another size than data.path's are refused at the key.
  const fs::path small = write_boots(file("small.h5"), 28);
  expect_error<ConfigError>(
      [&] {
        train_text(config_text(data, file("run2")),
                   {str_cat("cyclegan.domain_b.path=\"", small.string(), "\"")});
      },
      {"cyclegan.domain_b.path", "1x32x32", "1x28x28"});
}

TEST_F(CycleGanTask, EvalCountsTranslationsTheClassifierAssignsToTheTargetDomain) {
  const fs::path data = write_three_classes(file("three.h5")), out = file("cyclegan"), mlp = file("mlp");
  train_text(config_text(data, out), {"optimizer.lr=0.01", "data.test_split=\"test\""});
  // A classifier of the three classes (an MLP trained for 3 steps: its decisions need not be good, only
  // counted right), normalised with the file's mean 0.5 and std 0.25.
  train_text(str_cat("[run]\nseed = 2\nthreads = 1\noutput = \"", mlp.string(), "\"\n[data]\npath = \"",
                     data.string(),
                     "\"\nbatch_size = 4\n[model]\nname = \"mlp\"\nhidden = [16]\n"
                     "[optimizer]\nname = \"adam\"\nlr = 0.01\n"));
  testing::internal::CaptureStdout();
  EXPECT_EQ(
      run_eval({"--classifier", (mlp / "model.h5").string(), "--translator", (out / "model.h5").string()}),
      0);
  const std::string printed = testing::internal::GetCapturedStdout();

  models::CycleGANGenerator g({.channels = 1, .width = 2, .residual_blocks = 1});
  models::CycleGANGenerator f({.channels = 1, .width = 2, .residual_blocks = 1});
  io::load_model_group(out / "model.h5", "generator_a2b", g);
  io::load_model_group(out / "model.h5", "generator_b2a", f);
  models::MLP classifier(32 * 32, {16}, 3);
  io::load_model_group(mlp / "model.h5", "model", classifier);
  NoGradGuard no_grad;
  classifier.eval();
  // The class the classifier gives each image in [-1, 1], from its own normalisation (x + 1) / 2 -> (. - 0.5)
  // / 0.25.
  const auto classes_of = [&](const Tensor& images) {
    const std::vector<float> logits = classifier(((images + 1.0) * 0.5 - 0.5) * 4.0).to_vector<float>();
    std::vector<int> out;
    for (std::size_t i = 0; i < logits.size(); i += 3)
      out.push_back(
          static_cast<int>(std::max_element(logits.begin() + i, logits.begin() + i + 3) - logits.begin()) -
          static_cast<int>(i));
    return out;
  };
  for (const auto& [direction, from, to] : {std::tuple{"a2b", 0, 1}, std::tuple{"b2a", 1, 0}}) {
    const Tensor x = domain_images(data, from, "test");
    nn::Module& there = from == 0 ? static_cast<nn::Module&>(g) : f;
    nn::Module& back = from == 0 ? static_cast<nn::Module&>(f) : g;
    const Tensor y = there(x);
    int translated = 0, inputs = 0;
    for (const int k : classes_of(y)) translated += k == to;
    for (const int k : classes_of(x)) inputs += k == to;
    const std::string line = str_cat(
        "  ", direction, " on 2 test images: ", format_fixed(translated / 2.0, 4),
        " of translations classified as the target domain (untranslated: ", format_fixed(inputs / 2.0, 4),
        "), reconstruction mean absolute error ", format_fixed(mean_abs(back(y), x), 4), "\n");
    EXPECT_NE(printed.find(line), std::string::npos) << "expected\n" << line << "in\n" << printed;
  }
  expect_error<ValueError>(
      [&] {
        run_eval({"--classifier", (mlp / "model.h5").string(), "--translator", (mlp / "model.h5").string()});
      },
      {"--translator", "kind \"classifier\""});
}

}  // namespace
}  // namespace lockstep::launch
