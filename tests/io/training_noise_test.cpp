// train.input_noise and train.label_noise in the loader: each a function of (seed, sample index) (input
// noise also of the epoch), so that any world size sees the same noisy sample; the noise has the requested
// size; label noise is fixed across epochs and leaves evaluation loaders clean.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "io/data/dataset.h"
#include "io/data/loader.h"
#include "io/h5/h5.h"
#include "src/tensor/factories.h"
#include "tests/support/temp_dir.h"

namespace lockstep {
namespace {

namespace fs = std::filesystem;

constexpr std::int64_t kSamples = 300, kClasses = 10, kPixels = 16;

void write_dataset(const fs::path& path) {
  Tensor images = empty({kSamples, 1, 4, 4}, DType::u8);
  std::uint8_t* p = images.data<std::uint8_t>();
  for (std::int64_t i = 0; i < kSamples * kPixels; ++i)
    p[i] = static_cast<std::uint8_t>((7 * i + i / 5) % 256);
  std::vector<std::int64_t> labels(kSamples);
  for (std::int64_t i = 0; i < kSamples; ++i) labels[static_cast<std::size_t>(i)] = i % kClasses;
  io::h5::File file(path, io::h5::Access::kTruncate);
  io::h5::Group root = file.root();
  root.set_attribute("format_version", std::int64_t{1});
  root.set_attribute("class_names",
                     std::vector<std::string>{"c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8", "c9"});
  root.set_attribute("source", "test");
  io::h5::Group split = root.create_group("train");
  split.write_tensor("labels", from_vector(labels, {kSamples}));
  split.create_dataset("images", DType::u8, images.shape()).write(images);
  split.set_attribute("mean", std::vector<double>{0.5});
  split.set_attribute("std", std::vector<double>{0.25});
}

struct Sample {
  std::vector<float> image;
  std::int64_t label = 0;
};

// Every sample of `epoch` as seen by the ranks of a job of `world` ranks (batch 10 per rank), by index.
std::map<std::int64_t, Sample> epoch_of(const std::shared_ptr<io::ImageDataset>& data, std::int64_t world,
                                        std::int64_t epoch, double input_noise, double label_noise) {
  std::map<std::int64_t, Sample> seen;
  for (std::int64_t rank = 0; rank < world; ++rank) {
    io::LoaderOptions o;
    o.batch_size = 10;
    o.seed = 42;
    o.rank = rank;
    o.world = world;
    o.prefetch = rank % 2;  // with and without the prefetch thread
    o.augment.flip = io::Flip::kHorizontal;
    o.augment.input_noise = input_noise;
    o.augment.label_noise = label_noise;
    o.augment.classes = kClasses;
    io::DataLoader loader(data, o);
    loader.start_epoch(epoch);
    while (auto batch = loader.next()) {
      const float* x = batch->images.data<float>();
      for (std::size_t k = 0; k < batch->indices.size(); ++k) {
        Sample s;
        s.image.assign(x + k * kPixels, x + (k + 1) * kPixels);
        s.label = batch->labels.data<std::int64_t>()[k];
        seen[batch->indices[k]] = s;
      }
    }
  }
  return seen;
}

TEST(TrainingNoise, DrawsAreTheSameAtEveryWorldSize) {
  test::TempDir dir;
  write_dataset(dir / "d.h5");
  const auto data = io::ImageDataset::open(dir / "d.h5", "train", io::Cache::kMemory);
  for (const std::int64_t epoch : {0, 1}) {
    const auto one = epoch_of(data, 1, epoch, 0.3, 0.4);
    ASSERT_EQ(one.size(), static_cast<std::size_t>(kSamples));
    for (const std::int64_t world : {2, 3, 4}) {
      const auto many = epoch_of(data, world, epoch, 0.3, 0.4);
      ASSERT_EQ(many.size(), one.size()) << world;
      for (const auto& [index, s] : one) {
        EXPECT_EQ(many.at(index).image, s.image) << "world " << world << ", sample " << index;
        EXPECT_EQ(many.at(index).label, s.label) << "world " << world << ", sample " << index;
      }
    }
  }
}

TEST(TrainingNoise, InputNoiseHasTheRequestedStdAndChangesEachEpoch) {
  test::TempDir dir;
  write_dataset(dir / "d.h5");
  const auto data = io::ImageDataset::open(dir / "d.h5", "train", io::Cache::kMemory);
  const auto clean = epoch_of(data, 1, 0, 0.0, 0.0);
  const auto noisy0 = epoch_of(data, 1, 0, 0.3, 0.0);
  const auto noisy1 = epoch_of(data, 1, 1, 0.3, 0.0);
  const auto clean1 = epoch_of(data, 1, 1, 0.0, 0.0);
  double sum = 0, squares = 0, count = 0, same = 0;
  for (const auto& [index, s] : clean) {
    for (std::int64_t j = 0; j < kPixels; ++j) {
      const double e = noisy0.at(index).image[j] - s.image[j];
      sum += e;
      squares += e * e;
      ++count;
      // Epoch 1 (its own flips) against its own clean images: fresh noise.
      same += noisy1.at(index).image[j] - clean1.at(index).image[j] == e;
    }
  }
  const double mean = sum / count, stdev = std::sqrt(squares / count - mean * mean);
  EXPECT_NEAR(mean, 0.0, 0.03);  // 4800 draws: the mean's std is 0.0043
  EXPECT_NEAR(stdev, 0.3, 0.015);
  EXPECT_LT(same, 0.01 * count);
  // Labels untouched without label noise.
  for (const auto& [index, s] : noisy0) EXPECT_EQ(s.label, index % kClasses);
}

TEST(TrainingNoise, LabelNoiseReplacesTheRequestedFractionOnceForAllEpochs) {
  test::TempDir dir;
  write_dataset(dir / "d.h5");
  const auto data = io::ImageDataset::open(dir / "d.h5", "train", io::Cache::kMemory);
  const auto e0 = epoch_of(data, 1, 0, 0.0, 0.5);
  const auto e3 = epoch_of(data, 1, 3, 0.0, 0.5);
  double changed = 0;
  for (const auto& [index, s] : e0) {
    EXPECT_EQ(e3.at(index).label, s.label) << index;
    EXPECT_GE(s.label, 0);
    EXPECT_LT(s.label, kClasses);
    changed += s.label != index % kClasses;
  }
  // Replaced with probability 0.5 by a uniform class, which differs with probability 0.9: 0.45 of 300 (std
  // 0.029).
  EXPECT_NEAR(changed / kSamples, 0.45, 0.1);
  // All labels replaced: every class still appears, and about 0.9 of them differ.
  const auto all = epoch_of(data, 1, 0, 0.0, 1.0);
  double differ = 0;
  for (const auto& [index, s] : all) differ += s.label != index % kClasses;
  EXPECT_NEAR(differ / kSamples, 0.9, 0.06);
}

TEST(TrainingNoise, BadOptionsAreRejected) {
  test::TempDir dir;
  write_dataset(dir / "d.h5");
  const auto data = io::ImageDataset::open(dir / "d.h5", "train", io::Cache::kMemory);
  io::LoaderOptions o;
  o.augment.label_noise = 0.5;  // without classes
  EXPECT_THROW(io::DataLoader(data, o), ValueError);
  o.augment.label_noise = 1.5;
  o.augment.classes = 3;
  EXPECT_THROW(io::DataLoader(data, o), ValueError);
  o.augment.label_noise = 0.0;
  o.augment.input_noise = -1.0;
  EXPECT_THROW(io::DataLoader(data, o), ValueError);
}

}  // namespace
}  // namespace lockstep
