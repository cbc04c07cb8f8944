// `lockstep inspect` on data sets: whether array checksums are stored, `--verify` checking them (exit 1
// naming file, dataset and both checksums for a flipped byte), and warnings that say what `lockstep train`
// would say about labels outside the classes or images that are not u8.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "io/data/convert.h"
#include "io/data/dataset.h"
#include "io/h5/h5.h"
#include "launch/cli/commands.h"
#include "src/tensor/factories.h"
#include "tests/support/temp_dir.h"

namespace lockstep {
namespace {

namespace fs = std::filesystem;

struct Output {
  int code = 0;
  std::string out;
};

Output inspect(const std::vector<std::string>& args) {
  std::ostringstream captured;
  std::streambuf* saved = std::cout.rdbuf(captured.rdbuf());
  Output result;
  try {
    result.code = launch::run_inspect(args);
  } catch (...) {
    std::cout.rdbuf(saved);
    throw;
  }
  std::cout.rdbuf(saved);
  result.out = captured.str();
  return result;
}

bool contains(const std::string& text, const std::string& fragment) {
  return text.find(fragment) != std::string::npos;
}
#define EXPECT_CONTAINS(text, fragment) EXPECT_TRUE(contains(text, fragment)) << (text)
#define EXPECT_LACKS(text, fragment) EXPECT_FALSE(contains(text, fragment)) << (text)

std::vector<std::uint8_t> pixel_values() {
  std::vector<std::uint8_t> v(4 * 1 * 3 * 5);
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<std::uint8_t>(i * 29 + 3);
  return v;
}

void write_converted(const fs::path& path) {
  io::ImageSet set;
  set.images = from_vector(pixel_values(), {4, 1, 3, 5}, DType::u8);
  set.labels = from_vector(std::vector<std::int64_t>{0, 1, 2, 1}, {4}, DType::i64);
  io::write_image_set(path, "train", set, {"a", "b", "c"}, io::h5::Access::kTruncate, "test");
}

// The layout of an older conversion (no checksums), with the given images and labels.
void write_older(const fs::path& path, const Tensor& images, const std::vector<std::int64_t>& labels) {
  const io::h5::File file(path, io::h5::Access::kTruncate);
  const io::h5::Group root = file.root();
  root.set_attribute("format_version", std::int64_t{1});
  root.set_attribute("class_names", std::vector<std::string>{"a", "b", "c"});
  const io::h5::Group train = root.create_group("train");
  train.write_tensor("images", images);
  train.write_tensor("labels", from_vector(labels, {static_cast<std::int64_t>(labels.size())}, DType::i64));
}

TEST(InspectVerify, ConvertedFileSaysChecksumsAreStoredAndVerifies) {
  const test::TempDir tmp;
  write_converted(tmp / "d.h5");
  const Output plain = inspect({(tmp / "d.h5").string()});
  EXPECT_EQ(plain.code, 0);
  EXPECT_CONTAINS(plain.out, "array checksums: xxh64 stored");
  EXPECT_LACKS(plain.out, "warning");
  const Output verified = inspect({"--verify", (tmp / "d.h5").string()});
  EXPECT_EQ(verified.code, 0) << verified.out;
  const std::vector<std::uint8_t> pixels = pixel_values();
  EXPECT_CONTAINS(verified.out, "/train/images xxh64 " + io::bytes_xxh64(pixels) + ": verified");
  EXPECT_CONTAINS(verified.out, ": verified\n");
  EXPECT_LACKS(verified.out, "FAILED");
}

TEST(InspectVerify, FlippedImageByteFailsVerificationNamingBothChecksums) {
  const test::TempDir tmp;
  write_converted(tmp / "d.h5");
  std::vector<char> bytes;
  {
    std::ifstream in(tmp / "d.h5", std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  std::vector<std::uint8_t> pixels = pixel_values();
  const auto found = std::search(bytes.begin(), bytes.end(), pixels.begin(), pixels.end(),
                                 [](char a, std::uint8_t b) { return static_cast<std::uint8_t>(a) == b; });
  ASSERT_NE(found, bytes.end());
  *(found + 7) ^= 0x01;
  std::ofstream(tmp / "d.h5", std::ios::binary | std::ios::trunc)
      .write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  const std::string expected = io::bytes_xxh64(pixels);
  pixels[7] ^= 0x01;
  const std::string actual = io::bytes_xxh64(pixels);

  const Output verified = inspect({"--verify", (tmp / "d.h5").string()});
  EXPECT_EQ(verified.code, 1) << verified.out;
  EXPECT_CONTAINS(verified.out, "FAILED");
  EXPECT_CONTAINS(verified.out, (tmp / "d.h5").string());
  EXPECT_CONTAINS(verified.out, "/train/images");
  EXPECT_CONTAINS(verified.out, "hash to xxh64 " + expected);
  EXPECT_CONTAINS(verified.out, "bytes hash to " + actual);
  EXPECT_CONTAINS(verified.out, "/train/labels xxh64 ");
  // Without --verify nothing reads the images: the damage is not seen (and not claimed absent).
  EXPECT_EQ(inspect({(tmp / "d.h5").string()}).code, 0);
}

TEST(InspectVerify, OlderFileWithoutChecksumsSaysSo) {
  const test::TempDir tmp;
  write_older(tmp / "old.h5", from_vector(pixel_values(), {4, 1, 3, 5}, DType::u8), {0, 1, 2, 1});
  const Output plain = inspect({(tmp / "old.h5").string()});
  EXPECT_EQ(plain.code, 0);
  EXPECT_CONTAINS(plain.out, "array checksums: none stored (converted by an older `lockstep convert`)");
  const Output verified = inspect({"--verify", (tmp / "old.h5").string()});
  EXPECT_EQ(verified.code, 0);
  EXPECT_CONTAINS(verified.out, "none stored (converted by an older `lockstep convert`), not verified");
  EXPECT_LACKS(verified.out, "warning");
}

TEST(InspectVerify, WarnsWhatTrainWouldSayAboutLabelsAndImageDtype) {
  const test::TempDir tmp;
  const Tensor pixels = from_vector(pixel_values(), {4, 1, 3, 5}, DType::u8);
  write_older(tmp / "labels.h5", pixels, {0, 1, 7, 1});
  const Output labels = inspect({(tmp / "labels.h5").string()});
  EXPECT_EQ(labels.code, 0);
  EXPECT_CONTAINS(labels.out, "warning: `lockstep train` would stop on this split: ");
  EXPECT_CONTAINS(labels.out, "expected labels in [0, 3)");
  EXPECT_CONTAINS(labels.out, "/train/labels[2] is 7");

  write_older(tmp / "f32.h5", pixels.to(DType::f32), {0, 1, 2, 1});
  const Output f32 = inspect({(tmp / "f32.h5").string()});
  EXPECT_CONTAINS(f32.out, "warning: `lockstep train` would stop on this split: ");
  EXPECT_CONTAINS(f32.out, "/train/images in " + (tmp / "f32.h5").string() + " to be u8 [N,C,H,W]");
  EXPECT_CONTAINS(f32.out, "its dtype is f32");
}

}  // namespace
}  // namespace lockstep
