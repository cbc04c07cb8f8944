// Data-set array checksums: `write_image_set` stores XXH64 of the images and labels as an xxh64 attribute;
// a flipped byte in the file is an IoError naming file, dataset and both checksums whenever the array is
// read whole (labels always, images with the memory cache) and in split_checksums (inspect --verify);
// files written without the attribute still load.
#include <gtest/gtest.h>
#include <xxhash.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "io/data/convert.h"
#include "io/data/dataset.h"
#include "io/h5/h5.h"
#include "src/core/error.h"
#include "src/tensor/factories.h"
#include "tests/support/expect_error.h"
#include "tests/support/temp_dir.h"

namespace lockstep {
namespace {

namespace fs = std::filesystem;

constexpr std::int64_t kN = 6, kC = 1, kH = 5, kW = 7;

std::vector<std::uint8_t> pixel_values() {
  std::vector<std::uint8_t> v(static_cast<std::size_t>(kN * kC * kH * kW));
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<std::uint8_t>((i * 37 + 11) % 251);
  return v;
}

const std::vector<std::int64_t> kLabels = {0, 2, 1, 2, 0, 1};

// The XXH64 of `bytes` as the attribute stores it, computed here independently of io/data.
std::string reference_xxh64(const void* data, std::size_t bytes) {
  char hex[17];
  std::snprintf(hex, sizeof(hex), "%016llx", static_cast<unsigned long long>(XXH64(data, bytes, 0)));
  return hex;
}

void write_set(const fs::path& path) {
  io::ImageSet set;
  set.images = from_vector(pixel_values(), {kN, kC, kH, kW}, DType::u8);
  set.labels = from_vector(kLabels, {kN}, DType::i64);
  io::write_image_set(path, "train", set, {"a", "b", "c"}, io::h5::Access::kTruncate, "test");
}

std::vector<char> read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Flips one bit of the stored copy of `needle` (found by content: the arrays are stored contiguous).
void flip_inside(const fs::path& path, const void* needle, std::size_t size, std::size_t at) {
  std::vector<char> bytes = read_bytes(path);
  const char* first = static_cast<const char*>(needle);
  const auto found = std::search(bytes.begin(), bytes.end(), first, first + size);
  ASSERT_NE(found, bytes.end()) << "the array's bytes are not stored contiguous in " << path;
  ASSERT_EQ(std::search(found + 1, bytes.end(), first, first + size), bytes.end()) << "found twice";
  *(found + static_cast<std::ptrdiff_t>(at)) ^= 0x10;
  std::ofstream(path, std::ios::binary | std::ios::trunc)
      .write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

TEST(DatasetChecksum, ConvertStoresTheXxh64OfEachArray) {
  const test::TempDir tmp;
  write_set(tmp / "d.h5");
  const io::h5::File file(tmp / "d.h5", io::h5::Access::kRead);
  const io::h5::Group train = file.root().group("train");
  const std::vector<std::uint8_t> pixels = pixel_values();
  EXPECT_EQ(train.dataset("images").attribute_string("xxh64"), reference_xxh64(pixels.data(), pixels.size()));
  EXPECT_EQ(train.dataset("labels").attribute_string("xxh64"),
            reference_xxh64(kLabels.data(), kLabels.size() * sizeof(std::int64_t)));
  for (const auto& check : io::split_checksums(tmp / "d.h5", "train")) {
    EXPECT_TRUE(check.stored()) << check.object;
    EXPECT_TRUE(check.ok()) << check.object << " " << check.expected << " " << check.actual;
  }
}

TEST(DatasetChecksum, FlippedImageByteIsAnIoErrorWhenReadWhole) {
  const test::TempDir tmp;
  write_set(tmp / "d.h5");
  const std::vector<std::uint8_t> pixels = pixel_values();
  flip_inside(tmp / "d.h5", pixels.data(), pixels.size(), 100);
  std::vector<std::uint8_t> damaged = pixels;
  damaged[100] ^= 0x10;
  const std::string expected = reference_xxh64(pixels.data(), pixels.size());
  const std::string actual = reference_xxh64(damaged.data(), damaged.size());
  const auto error =
      test::expect_thrown<IoError>([&] { io::ImageDataset::open(tmp / "d.h5", "train", io::Cache::kMemory); },
                                   {(tmp / "d.h5").string(), "/train/images", expected, actual, "damaged"});
  if (error) {
    EXPECT_EQ(error->file(), (tmp / "d.h5").string());
    EXPECT_EQ(error->object(), "/train/images");
  }
  // Without the memory cache the images are never read whole: the split opens (labels are intact).
  EXPECT_EQ(io::ImageDataset::open(tmp / "d.h5", "train", io::Cache::kNone)->size(), kN);
  const auto checks = io::split_checksums(tmp / "d.h5", "train");
  ASSERT_EQ(checks.size(), 2u);
  EXPECT_EQ(checks[0].object, "/train/images");
  EXPECT_FALSE(checks[0].ok());
  EXPECT_EQ(checks[0].expected, expected);
  EXPECT_EQ(checks[0].actual, actual);
  EXPECT_TRUE(checks[1].ok());
}

TEST(DatasetChecksum, FlippedLabelByteIsAnIoErrorWithEitherCache) {
  const test::TempDir tmp;
  write_set(tmp / "d.h5");
  flip_inside(tmp / "d.h5", kLabels.data(), kLabels.size() * sizeof(std::int64_t), 8);  // label 1: 2 -> 18
  for (const io::Cache cache : {io::Cache::kMemory, io::Cache::kNone}) {
    test::expect_thrown<IoError>([&] { io::ImageDataset::open(tmp / "d.h5", "train", cache); },
                                 {"/train/labels", "xxh64", "damaged"});
  }
}

TEST(DatasetChecksum, FilesWithoutTheAttributeStillLoad) {
  const test::TempDir tmp;
  {
    // The layout of an older conversion: no xxh64 attributes.
    const io::h5::File file(tmp / "old.h5", io::h5::Access::kTruncate);
    const io::h5::Group root = file.root();
    root.set_attribute("format_version", std::int64_t{1});
    root.set_attribute("class_names", std::vector<std::string>{"a", "b", "c"});
    const io::h5::Group train = root.create_group("train");
    train.write_tensor("images", from_vector(pixel_values(), {kN, kC, kH, kW}, DType::u8));
    train.write_tensor("labels", from_vector(kLabels, {kN}, DType::i64));
  }
  const auto set = io::ImageDataset::open(tmp / "old.h5", "train", io::Cache::kMemory);
  EXPECT_EQ(set->labels(), kLabels);
  for (const auto& check : io::split_checksums(tmp / "old.h5", "train")) {
    EXPECT_FALSE(check.stored()) << check.object;
    EXPECT_TRUE(check.ok()) << check.object;
  }
}

}  // namespace
}  // namespace lockstep
