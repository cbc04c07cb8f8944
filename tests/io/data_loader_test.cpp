// ImageDataset (attributes, gathers from memory and from the file, layout errors naming file and dataset)
// and DataLoader (batches against the sampler and augmenter, prefetch/cache independence, drop_last and
// shard counts, errors from the prefetch thread, early destruction, throughput on an MNIST-sized file).
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <initializer_list>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "io/data/dataset.h"
#include "io/data/loader.h"
#include "io/h5/h5.h"
#include "src/core/error.h"
#include "src/tensor/factories.h"
#include "tests/support/expect_error.h"
#include "tests/support/temp_dir.h"

namespace lockstep {
namespace {

namespace fs = std::filesystem;
using test::expect_error;
using test::expect_thrown;
using test::TempDir;

// u8 [n,c,h,w] with pixel (i, j) = (7 * i + 13 * j + i * j / 5) % 256: rows differ from one another.
Tensor pattern_images(std::int64_t n, std::int64_t c, std::int64_t h, std::int64_t w) {
  Tensor t = empty({n, c, h, w}, DType::u8);
  std::uint8_t* p = t.data<std::uint8_t>();
  const std::int64_t row = c * h * w;
  for (std::int64_t i = 0; i < n; ++i) {
    for (std::int64_t j = 0; j < row; ++j)
      p[i * row + j] = static_cast<std::uint8_t>((7 * i + 13 * j + i * j / 5) % 256);
  }
  return t;
}

Tensor cyclic_labels(std::int64_t n, std::int64_t classes) {
  std::vector<std::int64_t> v(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) v[static_cast<std::size_t>(i)] = (3 * i + 1) % classes;
  return from_vector(v, {n});
}

// Writes a well-formed data set file with one split "train" (3 classes, per-channel mean/std attributes).
void write_dataset(const fs::path& path, const Tensor& images, const Tensor& labels,
                   const io::h5::Chunking& chunking = {}) {
  io::h5::File file(path, io::h5::Access::kTruncate);
  io::h5::Group root = file.root();
  root.set_attribute("format_version", std::int64_t{1});
  root.set_attribute("class_names", std::vector<std::string>{"zero", "one", "two"});
  root.set_attribute("source", "test");
  io::h5::Group split = root.create_group("train");
  split.write_tensor("labels", labels);
  split.create_dataset("images", DType::u8, images.shape(), chunking).write(images);
  const std::int64_t channels = images.size(1);
  split.set_attribute("mean", std::vector<double>(static_cast<std::size_t>(channels), 0.25));
  split.set_attribute("std", std::vector<double>(static_cast<std::size_t>(channels), 0.5));
}

// The object() of the IoError that `fn` throws, whose message names every one of `parts`.
template <class Fn>
std::string object_of(Fn&& fn, std::initializer_list<std::string> parts) {
  const std::optional<IoError> e = expect_thrown<IoError>(std::forward<Fn>(fn), parts);
  return e ? e->object() : std::string("<no IoError>");
}

TEST(ImageDatasetTest, OpensTheSplitAndItsAttributes) {
  TempDir dir;
  const fs::path path = dir / "d.h5";
  write_dataset(path, pattern_images(10, 2, 3, 4), cyclic_labels(10, 3));
  for (const io::Cache cache : {io::Cache::kMemory, io::Cache::kNone}) {
    const auto dataset = io::ImageDataset::open(path, "train", cache);
    EXPECT_EQ(dataset->size(), 10);
    EXPECT_EQ(dataset->channels(), 2);
    EXPECT_EQ(dataset->height(), 3);
    EXPECT_EQ(dataset->width(), 4);
    EXPECT_EQ(dataset->image_bytes(), 24);
    EXPECT_EQ(dataset->class_names(), (std::vector<std::string>{"zero", "one", "two"}));
    EXPECT_EQ(dataset->mean(), (std::vector<double>{0.25, 0.25}));
    EXPECT_EQ(dataset->std(), (std::vector<double>{0.5, 0.5}));
    EXPECT_EQ(dataset->labels(), cyclic_labels(10, 3).to_vector<std::int64_t>());
  }
}

TEST(ImageDatasetTest, GatherReturnsTheRequestedRowsFromMemoryAndFromTheFile) {
  TempDir dir;
  const fs::path path = dir / "d.h5";
  const Tensor images = pattern_images(12, 1, 5, 3), labels = cyclic_labels(12, 3);
  write_dataset(path, images, labels);
  // Unsorted, with a repeat and runs of consecutive rows (3,4,5 and 10,11).
  const std::vector<std::int64_t> indices = {11, 0, 4, 3, 5, 4, 10, 8};
  const std::int64_t row = 15;
  const std::uint8_t* source = images.data<std::uint8_t>();
  const std::vector<std::int64_t> all_labels = labels.to_vector<std::int64_t>();
  for (const io::Cache cache : {io::Cache::kMemory, io::Cache::kNone}) {
    const auto dataset = io::ImageDataset::open(path, "train", cache);
    std::vector<std::uint8_t> got(indices.size() * row);
    std::vector<std::int64_t> got_labels(indices.size());
    dataset->gather(indices, got.data(), got_labels.data());
    for (std::size_t k = 0; k < indices.size(); ++k) {
      EXPECT_EQ(std::memcmp(got.data() + k * row, source + indices[k] * row, row), 0) << "position " << k;
      EXPECT_EQ(got_labels[k], all_labels[static_cast<std::size_t>(indices[k])]);
    }
    const std::vector<std::int64_t> bad = {3, 12};
    expect_error<IndexError>([&] { dataset->gather(bad, got.data(), got_labels.data()); },
                               {"ImageDataset::gather", "[0, 12)", "12", path.string()});
  }
}

TEST(ImageDatasetTest, MissingFileAndSplitNameTheFile) {
  TempDir dir;
  const fs::path missing = dir / "absent.h5";
  const auto no_file =
      expect_thrown<IoError>([&] { io::ImageDataset::open(missing, "train", io::Cache::kMemory); },
                             {missing.string(), "does not exist"});
  if (no_file) {
    EXPECT_EQ(no_file->file(), missing.string());
  }

  const fs::path path = dir / "d.h5";
  write_dataset(path, pattern_images(4, 1, 2, 2), cyclic_labels(4, 3));
  const auto no_split = expect_thrown<IoError>(
      [&] { io::ImageDataset::open(path, "test", io::Cache::kNone); }, {path.string(), "/test", "train"});
  if (no_split) {
    EXPECT_EQ(no_split->file(), path.string());
    EXPECT_EQ(no_split->object(), "/test");
  }
}

// Writes a file whose "train" split holds the given datasets (undefined tensors are left out).
void write_raw(const fs::path& path, const Tensor& images, const Tensor& labels) {
  io::h5::File file(path, io::h5::Access::kTruncate);
  const io::h5::Group split = file.root().create_group("train");
  if (images.defined()) split.write_tensor("images", images);
  if (labels.defined()) split.write_tensor("labels", labels);
}

TEST(ImageDatasetTest, LayoutErrorsNameTheFileAndTheDataset) {
  TempDir dir;
  const fs::path path = dir / "bad.h5";
  const Tensor good_images = pattern_images(4, 1, 2, 2), good_labels = cyclic_labels(4, 3);
  const auto open = [&] { io::ImageDataset::open(path, "train", io::Cache::kMemory); };

  write_raw(path, good_images.to(DType::f32), good_labels);
  expect_error<TypeError>(open, {path.string(), "/train/images", "u8 [N,C,H,W]", "f32"});

  write_raw(path, good_images, good_labels.to(DType::f64));
  expect_error<TypeError>(open, {path.string(), "/train/labels", "i64 [N]", "f64"});

  write_raw(path, good_images.reshape({4, 2, 2}), good_labels);
  EXPECT_EQ(object_of(open, {path.string(), "/train/images", "[4, 2, 2]"}), "/train/images");

  write_raw(path, good_images, good_labels.reshape({2, 2}));
  EXPECT_EQ(object_of(open, {path.string(), "/train/labels", "[2, 2]"}), "/train/labels");

  write_raw(path, good_images, Tensor());
  EXPECT_EQ(object_of(open, {path.string(), "/train/labels", "images"}), "/train/labels");

  write_raw(path, Tensor(), good_labels);
  EXPECT_EQ(object_of(open, {path.string(), "/train/images"}), "/train/images");

  write_raw(path, good_images, cyclic_labels(5, 3));
  EXPECT_EQ(object_of(open, {path.string(), "[4, 1, 2, 2]", "[5]"}), "/train");

  // Labels outside the class list, and a mean with the wrong number of channels.
  write_dataset(path, good_images, from_vector(std::vector<std::int64_t>{0, 1, 3, 2}, {4}));
  expect_error<ValueError>(open, {path.string(), "[0, 3)", "/train/labels[2]", "3"});
  write_dataset(path, good_images, good_labels);
  io::h5::File(path, io::h5::Access::kReadWrite)
      .root()
      .group("train")
      .set_attribute("mean", std::vector<double>{0.1, 0.2});
  expect_error<IoError>(open, {path.string(), "mean", "one value per channel (1)", "2"});
}

// Every batch of one epoch, kept alive (the loader hands out fresh tensors).
std::vector<io::Batch> run_epoch(io::DataLoader& loader, std::int64_t epoch) {
  loader.start_epoch(epoch);
  std::vector<io::Batch> batches;
  while (auto batch = loader.next()) batches.push_back(std::move(*batch));
  EXPECT_FALSE(loader.next().has_value()) << "the epoch stays over";
  return batches;
}

TEST(DataLoaderTest, BatchesFollowTheSamplerAndTheAugmenter) {
  TempDir dir;
  const fs::path path = dir / "d.h5";
  const Tensor images = pattern_images(100, 1, 5, 6), labels = cyclic_labels(100, 3);
  write_dataset(path, images, labels);
  const io::LoaderOptions options{.batch_size = 32,
                                  .shuffle = io::Shuffle::kYes,
                                  .drop_last = io::DropLast::kNo,
                                  .seed = 3,
                                  .augment = {.pad_to = 6, .crop_padding = 2, .flip = io::Flip::kHorizontal}};
  io::DataLoader loader(io::ImageDataset::open(path, "train", io::Cache::kMemory), options);
  ASSERT_EQ(loader.batches_per_epoch(), 4);
  const std::vector<io::Batch> batches = run_epoch(loader, 2);
  ASSERT_EQ(batches.size(), 4u);

  const std::vector<std::int64_t> order = io::Sampler(100, 3, io::Shuffle::kYes).indices(2);
  const io::Augmenter augmenter(options.augment, 1, 5, 6, {0.25}, {0.5}, 3);
  const std::vector<std::int64_t> all_labels = labels.to_vector<std::int64_t>();
  std::size_t position = 0;
  for (const io::Batch& batch : batches) {
    const std::int64_t b = batch.labels.size(0);
    EXPECT_EQ(b, position < 96 ? 32 : 4);
    ASSERT_EQ(batch.images.shape(), (Shape{b, 1, 6, 6}));
    ASSERT_EQ(batch.images.dtype(), DType::f32);
    ASSERT_EQ(batch.labels.dtype(), DType::i64);
    for (std::int64_t k = 0; k < b; ++k, ++position) {
      const std::int64_t index = order[position];
      ASSERT_EQ(batch.indices[static_cast<std::size_t>(k)], index);
      EXPECT_EQ(batch.labels.data<std::int64_t>()[k], all_labels[static_cast<std::size_t>(index)]);
      std::vector<float> want(36);
      augmenter.apply(images.data<std::uint8_t>() + index * 30, 2, index, want.data());
      EXPECT_EQ(std::memcmp(batch.images.data<float>() + k * 36, want.data(), 36 * sizeof(float)), 0)
          << index;
    }
  }
  EXPECT_EQ(position, 100u);
}

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.dtype() == b.dtype() &&
         std::memcmp(a.data(), b.data(), static_cast<std::size_t>(a.numel()) * element_size(a.dtype())) == 0;
}

TEST(DataLoaderTest, PrefetchAndCacheModeDoNotChangeTheBatches) {
  TempDir dir;
  const fs::path path = dir / "d.h5";
  write_dataset(path, pattern_images(203, 3, 6, 5), cyclic_labels(203, 3));
  const auto memory = io::ImageDataset::open(path, "train", io::Cache::kMemory);
  const auto file = io::ImageDataset::open(path, "train", io::Cache::kNone);
  const auto options = [](std::int64_t prefetch) {
    return io::LoaderOptions{.batch_size = 16,
                             .shuffle = io::Shuffle::kYes,
                             .drop_last = io::DropLast::kNo,
                             .seed = 8,
                             .augment = {.crop_padding = 2,
                                         .flip = io::Flip::kHorizontal,
                                         .mean = {0.4, 0.5, 0.6},
                                         .std = {0.2, 0.25, 0.3}},
                             .prefetch = prefetch,
                             .rank = 1,
                             .world = 2};
  };
  io::DataLoader reference_loader(memory, options(0));
  for (const std::int64_t epoch : {0, 1}) {
    const std::vector<io::Batch> reference = run_epoch(reference_loader, epoch);
    ASSERT_EQ(reference.size(), 7u);  // 102 samples on rank 1 of 2 (padded), batches of 16
    for (const auto& [dataset, prefetch] :
         {std::pair{memory, std::int64_t{2}}, std::pair{file, std::int64_t{0}},
          std::pair{file, std::int64_t{2}}, std::pair{file, std::int64_t{5}}}) {
      io::DataLoader loader(dataset, options(prefetch));
      const std::vector<io::Batch> got = run_epoch(loader, epoch);
      ASSERT_EQ(got.size(), reference.size());
      for (std::size_t i = 0; i < got.size(); ++i) {
        EXPECT_TRUE(same_bits(got[i].images, reference[i].images)) << "epoch " << epoch << " batch " << i;
        EXPECT_TRUE(same_bits(got[i].labels, reference[i].labels)) << "epoch " << epoch << " batch " << i;
      }
    }
  }
  // Epochs differ (order and augmentation).
  io::DataLoader loader(memory, options(2));
  EXPECT_FALSE(same_bits(run_epoch(loader, 0)[0].images, run_epoch(loader, 1)[0].images));
}

TEST(DataLoaderTest, BatchCountsFollowDropLastAndSharding) {
  TempDir dir;
  const fs::path path = dir / "d.h5";
  write_dataset(path, pattern_images(100, 1, 2, 2), cyclic_labels(100, 3));
  const auto dataset = io::ImageDataset::open(path, "train", io::Cache::kMemory);
  struct Case {
    std::int64_t batch, rank, world;
    io::Pad pad;
    io::DropLast drop;
    std::int64_t samples, batches, last;
  };
  const Case cases[] = {
      {32, 0, 1, io::Pad::kYes, io::DropLast::kNo, 100, 4, 4},
      {32, 0, 1, io::Pad::kYes, io::DropLast::kYes, 100, 3, 32},
      {32, 1, 3, io::Pad::kYes, io::DropLast::kNo, 34, 2, 2},
      {32, 1, 3, io::Pad::kYes, io::DropLast::kYes, 34, 1, 32},
      {32, 0, 3, io::Pad::kNo, io::DropLast::kNo, 34, 2, 2},
      {32, 2, 3, io::Pad::kNo, io::DropLast::kNo, 33, 2, 1},
      {25, 0, 1, io::Pad::kYes, io::DropLast::kYes, 100, 4, 25},
      {200, 0, 1, io::Pad::kYes, io::DropLast::kYes, 100, 0, 0},
      {200, 0, 1, io::Pad::kYes, io::DropLast::kNo, 100, 1, 100},
  };
  for (const Case& c : cases) {
    io::DataLoader loader(dataset, {.batch_size = c.batch,
                                    .shuffle = io::Shuffle::kNo,
                                    .drop_last = c.drop,
                                    .rank = c.rank,
                                    .world = c.world,
                                    .pad = c.pad});
    EXPECT_EQ(loader.samples_per_epoch(), c.samples);
    EXPECT_EQ(loader.batches_per_epoch(), c.batches);
    const std::vector<io::Batch> batches = run_epoch(loader, 0);
    ASSERT_EQ(static_cast<std::int64_t>(batches.size()), c.batches)
        << "batch " << c.batch << " rank " << c.rank;
    if (!batches.empty()) {
      EXPECT_EQ(batches.back().labels.size(0), c.last);
      EXPECT_EQ(batches.front().indices.front(), c.rank);  // Shuffle::kNo: rank r's first sample is r
    }
  }
}

TEST(DataLoaderTest, RestartingAnEpochMidwayGivesTheFullEpoch) {
  TempDir dir;
  const fs::path path = dir / "d.h5";
  write_dataset(path, pattern_images(64, 1, 3, 3), cyclic_labels(64, 3));
  const auto dataset = io::ImageDataset::open(path, "train", io::Cache::kNone);
  const io::LoaderOptions options{
      .batch_size = 4, .seed = 1, .augment = {.flip = io::Flip::kHorizontal}, .prefetch = 3};
  io::DataLoader fresh(dataset, options);
  const std::vector<io::Batch> want = run_epoch(fresh, 1);
  io::DataLoader loader(dataset, options);
  loader.start_epoch(0);
  ASSERT_TRUE(loader.next().has_value());
  ASSERT_TRUE(loader.next().has_value());
  const std::vector<io::Batch> got = run_epoch(loader, 1);
  ASSERT_EQ(got.size(), want.size());
  for (std::size_t i = 0; i < got.size(); ++i) EXPECT_TRUE(same_bits(got[i].images, want[i].images)) << i;
}

// start_epoch(e, k) gives exactly batches k.. of start_epoch(e): the same samples, labels and augmented
// pixels, with or without prefetch, from a fresh loader or one abandoning another epoch midway; k may be
// batches_per_epoch() (nothing left), anything else outside [0, batches_per_epoch()] is a ValueError.
TEST(DataLoaderTest, StartingAnEpochAtABatchGivesTheRestOfThatEpoch) {
  TempDir dir;
  const fs::path path = dir / "d.h5";
  write_dataset(path, pattern_images(90, 1, 4, 4), cyclic_labels(90, 3));
  const auto dataset = io::ImageDataset::open(path, "train", io::Cache::kMemory);
  for (const std::int64_t prefetch : {0, 2}) {
    const io::LoaderOptions options{.batch_size = 8,
                                    .shuffle = io::Shuffle::kYes,
                                    .drop_last = io::DropLast::kNo,
                                    .seed = 5,
                                    .augment = {.crop_padding = 1, .flip = io::Flip::kHorizontal},
                                    .prefetch = prefetch};
    io::DataLoader reference(dataset, options);
    const std::vector<io::Batch> full = run_epoch(reference, 3);
    const std::int64_t batches = reference.batches_per_epoch();
    ASSERT_EQ(batches, 12);  // 90 samples: 11 batches of 8 and one of 2
    ASSERT_EQ(static_cast<std::int64_t>(full.size()), batches);
    for (const std::int64_t first : {std::int64_t{0}, std::int64_t{5}, batches - 1, batches}) {
      for (const bool reused : {false, true}) {
        io::DataLoader loader(dataset, options);
        if (reused) {  // abandon epoch 0 after two batches
          loader.start_epoch(0);
          ASSERT_TRUE(loader.next().has_value());
          ASSERT_TRUE(loader.next().has_value());
        }
        loader.start_epoch(3, first);
        std::vector<io::Batch> got;
        while (auto batch = loader.next()) got.push_back(std::move(*batch));
        EXPECT_FALSE(loader.next().has_value()) << "the epoch stays over";
        const std::string where =
            str_cat("prefetch ", prefetch, ", first batch ", first, reused ? ", reused" : "");
        ASSERT_EQ(static_cast<std::int64_t>(got.size()), batches - first) << where;
        for (std::size_t i = 0; i < got.size(); ++i) {
          const io::Batch& want = full[static_cast<std::size_t>(first) + i];
          EXPECT_EQ(got[i].indices, want.indices) << where << ", batch " << i;
          EXPECT_TRUE(same_bits(got[i].images, want.images)) << where << ", batch " << i;
          EXPECT_TRUE(same_bits(got[i].labels, want.labels)) << where << ", batch " << i;
        }
      }
    }
    // The smaller last batch is batch 11.
    io::DataLoader last(dataset, options);
    last.start_epoch(3, batches - 1);
    const std::optional<io::Batch> tail = last.next();
    ASSERT_TRUE(tail.has_value());
    EXPECT_EQ(tail->labels.size(0), 2);
    EXPECT_FALSE(last.next().has_value());

    io::DataLoader loader(dataset, options);
    expect_error<ValueError>([&] { loader.start_epoch(3, batches + 1); }, {"[0, 12]", "13"});
    expect_error<ValueError>([&] { loader.start_epoch(3, -1); }, {"[0, 12]", "-1"});
    expect_error<ValueError>([&] { loader.next(); }, {"start_epoch"});  // a rejected start starts nothing
  }
}

TEST(DataLoaderTest, DestructionMidEpochStopsTheThread) {
  TempDir dir;
  const fs::path path = dir / "d.h5";
  write_dataset(path, pattern_images(512, 1, 8, 8), cyclic_labels(512, 3));
  const auto dataset = io::ImageDataset::open(path, "train", io::Cache::kNone);
  for (int round = 0; round < 20; ++round) {
    io::DataLoader loader(dataset,
                          {.batch_size = 8, .seed = static_cast<std::uint64_t>(round), .prefetch = 4});
    loader.start_epoch(round);
    if (round % 2 == 1) {
      ASSERT_TRUE(loader.next().has_value());
    }
  }
  // A loader whose epoch never started, and one that finished, also destroy cleanly.
  { io::DataLoader idle(dataset, {.batch_size = 8}); }
  {
    io::DataLoader done(dataset, {.batch_size = 256});
    EXPECT_EQ(run_epoch(done, 0).size(), 2u);
  }
}

TEST(DataLoaderTest, ErrorsOnThePrefetchThreadReachNext) {
  TempDir dir;
  for (const std::int64_t prefetch : {0, 2}) {
    const fs::path path = dir / ("damaged_" + std::to_string(prefetch) + ".h5");
    // Chunked and compressed rows, so that reading a damaged file fails instead of returning zeros.
    write_dataset(path, pattern_images(256, 1, 16, 16), cyclic_labels(256, 3),
                  {.chunk = {1, 1, 16, 16}, .deflate = 1});
    io::DataLoader loader(io::ImageDataset::open(path, "train", io::Cache::kNone),
                          {.batch_size = 16, .seed = 2, .prefetch = prefetch});
    // Damage the file under the open data set: everything past the first 4 KiB is gone.
    fs::resize_file(path, 4096);
    loader.start_epoch(0);
    expect_error<IoError>(
        [&] {
          for (std::int64_t i = 0; i <= loader.batches_per_epoch(); ++i) loader.next();
        },
        {path.string(), "/train/images"});
    // The failed epoch keeps failing rather than pretending to be over.
    EXPECT_THROW(loader.next(), IoError);
  }
}

TEST(DataLoaderTest, RejectsBadUse) {
  TempDir dir;
  const fs::path path = dir / "d.h5";
  write_dataset(path, pattern_images(10, 1, 2, 2), cyclic_labels(10, 3));
  const auto dataset = io::ImageDataset::open(path, "train", io::Cache::kMemory);
  expect_error<ValueError>([&] { io::DataLoader(dataset, {.batch_size = 0}); }, {"batch_size", "0"});
  expect_error<ValueError>([&] { io::DataLoader(dataset, {.prefetch = -1}); }, {"prefetch", "-1"});
  expect_error<ValueError>([&] { io::DataLoader(nullptr, {}); }, {"null"});
  expect_error<ValueError>([&] { io::DataLoader(dataset, {.rank = 2, .world = 2}); }, {"rank 2", "world 2"});
  io::DataLoader loader(dataset, {});
  expect_error<ValueError>([&] { loader.next(); }, {"start_epoch"});
  EXPECT_THROW(loader.start_epoch(-1), ValueError);
}

// Batches per second over one epoch of a 60000x1x28x28 file, batch 128, normalisation only, no consumer
// work (each batch is dropped at once, so prefetch shows only its overhead): printed for the record, not
// asserted (it depends on the machine and its load). CPU time counts every thread of the process.
TEST(DataLoaderTest, ThroughputOnAnMnistSizedFile) {
  TempDir dir;
  const fs::path path = dir / "mnist_sized.h5";
  write_dataset(path, pattern_images(60000, 1, 28, 28), cyclic_labels(60000, 3));
  const std::pair<io::Cache, std::int64_t> configurations[] = {
      {io::Cache::kMemory, 0}, {io::Cache::kMemory, 2}, {io::Cache::kNone, 2}};
  for (const auto& [cache, prefetch] : configurations) {
    const auto start = std::chrono::steady_clock::now();
    const auto dataset = io::ImageDataset::open(path, "train", cache);
    const double open_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    io::DataLoader loader(dataset, {.batch_size = 128, .seed = 1, .prefetch = prefetch});
    const auto begin = std::chrono::steady_clock::now();
    const std::clock_t cpu_begin = std::clock();
    loader.start_epoch(0);
    std::int64_t batches = 0;
    while (loader.next()) ++batches;
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
    const double cpu = static_cast<double>(std::clock() - cpu_begin) / CLOCKS_PER_SEC;
    EXPECT_EQ(batches, 469);
    std::printf(
        "[ loader   ] %s prefetch %lld: open %.3f s; %lld batches in %.3f s = %.0f batches/s (CPU %.3f s)\n",
        cache == io::Cache::kMemory ? "kMemory" : "kNone  ", static_cast<long long>(prefetch), open_s,
        static_cast<long long>(batches), seconds, static_cast<double>(batches) / seconds, cpu);
  }
}

}  // namespace
}  // namespace lockstep
