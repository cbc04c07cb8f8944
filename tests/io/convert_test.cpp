// Tests of the data-set converters: IDX (raw and gzip), CIFAR-10, NPY and image-folder sources written as
// fixtures by the tests themselves, round trips into the HDF5 layout and back, every bad input, and the
// real Fashion-MNIST files when installed.
#include "io/data/convert.h"

#include <gtest/gtest.h>
#include <unistd.h>
#include <xxhash.h>
#include <zlib.h>

#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "io/data/cifar.h"
#include "io/data/idx.h"
#include "io/data/image_folder.h"
#include "io/data/npy.h"
#include "io/h5/h5.h"
#include "io/image/png.h"
#include "src/tensor/factories.h"
#include "tests/support/temp_dir.h"

namespace lockstep {
namespace {

namespace fs = std::filesystem;
using Bytes = std::vector<std::uint8_t>;

void write_bytes(const fs::path& path, const Bytes& bytes) {
  fs::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

void write_gz(const fs::path& path, const Bytes& bytes) {
  fs::create_directories(path.parent_path());
  gzFile gz = gzopen(path.c_str(), "wb");
  ASSERT_NE(gz, nullptr);
  ASSERT_EQ(gzwrite(gz, bytes.data(), static_cast<unsigned>(bytes.size())), static_cast<int>(bytes.size()));
  gzclose(gz);
}

Bytes read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::string xxh64_hex(const Bytes& bytes) {
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx",
                static_cast<unsigned long long>(XXH64(bytes.data(), bytes.size(), 0)));
  return hex;
}

void put_be32(Bytes& out, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<std::uint8_t>(v >> shift));
}

std::uint8_t pixel(std::int64_t i, std::int64_t c, std::int64_t y, std::int64_t x) {
  return static_cast<std::uint8_t>((i * 37 + c * 101 + y * 11 + x * 3 + (i * y * x) % 7) % 256);
}

Bytes idx_images(std::int64_t n, std::int64_t rows, std::int64_t cols) {
  Bytes out;
  put_be32(out, 0x00000803);
  for (const std::int64_t d : {n, rows, cols}) put_be32(out, static_cast<std::uint32_t>(d));
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t y = 0; y < rows; ++y)
      for (std::int64_t x = 0; x < cols; ++x) out.push_back(pixel(i, 0, y, x));
  return out;
}

Bytes idx_labels(const std::vector<std::uint8_t>& labels) {
  Bytes out;
  put_be32(out, 0x00000801);
  put_be32(out, static_cast<std::uint32_t>(labels.size()));
  out.insert(out.end(), labels.begin(), labels.end());
  return out;
}

// Mean and population std of pixel/255 over channel c of images u8 [N,C,H,W], two passes in double.
std::pair<double, double> hand_stats(const Tensor& images, std::int64_t c) {
  const auto v = images.to_vector<std::uint8_t>();
  const std::int64_t n = images.size(0), channels = images.size(1), plane = images.size(2) * images.size(3);
  double sum = 0;
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t k = 0; k < plane; ++k)
      sum += v[static_cast<std::size_t>((i * channels + c) * plane + k)] / 255.0;
  const double mean = sum / static_cast<double>(n * plane);
  double sq = 0;
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t k = 0; k < plane; ++k) {
      const double d = v[static_cast<std::size_t>((i * channels + c) * plane + k)] / 255.0 - mean;
      sq += d * d;
    }
  return {mean, std::sqrt(sq / static_cast<double>(n * plane))};
}

// Runs `fn`, expecting an IoError whose message names `file` and whose file() is `file`.
void expect_io_error(const std::function<void()>& fn, const fs::path& file,
                     const std::string& fragment = {}) {
  try {
    fn();
    ADD_FAILURE() << "expected an IoError naming " << file;
  } catch (const IoError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find(file.string()), std::string::npos) << message;
    EXPECT_EQ(e.file(), file.string()) << message;
    if (!fragment.empty()) {
      EXPECT_NE(message.find(fragment), std::string::npos) << message;
    }
  }
}

io::ConvertOptions idx_options(const fs::path& images, const fs::path& labels, const fs::path& out) {
  io::ConvertOptions options;
  options.format = io::SourceFormat::kIdx;
  options.input = images;
  options.labels = labels;
  options.output = out;
  options.class_names = {"a", "b", "c"};
  return options;
}

// Checks a converted IDX fixture of n images of rows x cols with labels i % 3.
void check_idx_split(const fs::path& file, const std::string& split, std::int64_t n, std::int64_t rows,
                     std::int64_t cols, const std::vector<fs::path>& sources) {
  io::h5::File h5file(file, io::h5::Access::kRead);
  const io::h5::Group root = h5file.root();
  EXPECT_EQ(root.attribute_int("format_version"), 1);
  EXPECT_EQ(root.attribute_strings("class_names"), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_FALSE(root.attribute_string("source").empty());
  const io::h5::Group group = root.group(split);
  const Tensor images = group.read_tensor("images");
  ASSERT_EQ(images.dtype(), DType::u8);
  ASSERT_EQ(images.shape(), (Shape{n, 1, rows, cols}));
  const auto pixels = images.to_vector<std::uint8_t>();
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t y = 0; y < rows; ++y)
      for (std::int64_t x = 0; x < cols; ++x)
        ASSERT_EQ(pixels[static_cast<std::size_t>((i * rows + y) * cols + x)], pixel(i, 0, y, x))
            << i << " " << y;
  const Tensor labels = group.read_tensor("labels");
  ASSERT_EQ(labels.dtype(), DType::i64);
  const auto label_values = labels.to_vector<std::int64_t>();
  ASSERT_EQ(label_values.size(), static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) EXPECT_EQ(label_values[static_cast<std::size_t>(i)], i % 3);
  const auto [mean, std] = hand_stats(images, 0);
  ASSERT_EQ(group.attribute_doubles("mean").size(), 1u);
  EXPECT_NEAR(group.attribute_doubles("mean")[0], mean, 1e-12);
  EXPECT_NEAR(group.attribute_doubles("std")[0], std, 1e-12);
  std::vector<std::string> names, hashes;
  for (const fs::path& p : sources) {
    names.push_back(fs::absolute(p).lexically_normal().string());
    hashes.push_back(xxh64_hex(read_bytes(p)));
  }
  EXPECT_EQ(group.attribute_strings("source_files"), names);
  EXPECT_EQ(group.attribute_strings("source_xxh64"), hashes);
}

std::vector<std::uint8_t> labels_mod3(std::int64_t n) {
  std::vector<std::uint8_t> labels;
  for (std::int64_t i = 0; i < n; ++i) labels.push_back(static_cast<std::uint8_t>(i % 3));
  return labels;
}

TEST(ConvertIdxTest, RawFilesRoundTripThroughHdf5) {
  test::TempDir dir;
  write_bytes(dir / "img.idx", idx_images(7, 5, 4));
  write_bytes(dir / "lab.idx", idx_labels(labels_mod3(7)));
  convert(idx_options(dir / "img.idx", dir / "lab.idx", dir / "out.h5"));
  check_idx_split(dir / "out.h5", "train", 7, 5, 4, {dir / "img.idx", dir / "lab.idx"});
  EXPECT_FALSE(fs::exists(dir / "out.h5.tmp"));
}

TEST(ConvertIdxTest, GzipFilesRoundTripAndHashTheCompressedBytes) {
  test::TempDir dir;
  write_gz(dir / "img.gz", idx_images(9, 3, 6));
  write_gz(dir / "lab.gz", idx_labels(labels_mod3(9)));
  ASSERT_EQ(read_bytes(dir / "img.gz")[0], 0x1f);
  convert(idx_options(dir / "img.gz", dir / "lab.gz", dir / "out.h5"));
  check_idx_split(dir / "out.h5", "train", 9, 3, 6, {dir / "img.gz", dir / "lab.gz"});
  EXPECT_NE(xxh64_hex(read_bytes(dir / "img.gz")), xxh64_hex(idx_images(9, 3, 6)));
}

TEST(ConvertIdxTest, AddSplitKeepsTheFirstSplitAndRefusesADuplicate) {
  test::TempDir dir;
  write_bytes(dir / "img.idx", idx_images(6, 2, 2));
  write_bytes(dir / "lab.idx", idx_labels(labels_mod3(6)));
  write_gz(dir / "timg.gz", idx_images(4, 2, 2));
  write_gz(dir / "tlab.gz", idx_labels(labels_mod3(4)));
  convert(idx_options(dir / "img.idx", dir / "lab.idx", dir / "out.h5"));
  io::ConvertOptions test = idx_options(dir / "timg.gz", dir / "tlab.gz", dir / "out.h5");
  test.split = "test";
  test.mode = io::OutputMode::kAddSplit;
  convert(test);
  check_idx_split(dir / "out.h5", "train", 6, 2, 2, {dir / "img.idx", dir / "lab.idx"});
  check_idx_split(dir / "out.h5", "test", 4, 2, 2, {dir / "timg.gz", dir / "tlab.gz"});
  const auto before = read_bytes(dir / "out.h5");
  EXPECT_THROW(convert(test), IoError);
  EXPECT_EQ(read_bytes(dir / "out.h5"), before);
  EXPECT_FALSE(fs::exists(dir / "out.h5.tmp"));
  test.class_names = {"x", "y", "z"};
  test.split = "other";
  EXPECT_THROW(convert(test), IoError);
}

TEST(ConvertIdxTest, DefaultClassNamesCountUpToTheLargestLabel) {
  test::TempDir dir;
  write_bytes(dir / "img.idx", idx_images(3, 2, 2));
  write_bytes(dir / "lab.idx", idx_labels({4, 0, 2}));
  io::ConvertOptions options = idx_options(dir / "img.idx", dir / "lab.idx", dir / "out.h5");
  options.class_names.clear();
  convert(options);
  io::h5::File file(dir / "out.h5", io::h5::Access::kRead);
  EXPECT_EQ(file.root().attribute_strings("class_names"),
            (std::vector<std::string>{"0", "1", "2", "3", "4"}));
}

TEST(ConvertIdxTest, BadFilesRaiseIoErrorsNamingTheFile) {
  test::TempDir dir;
  const Bytes images = idx_images(4, 3, 3);
  const Bytes labels = idx_labels(labels_mod3(4));
  write_bytes(dir / "img", images);
  write_bytes(dir / "lab", labels);
  expect_io_error([&] { io::read_idx(dir / "missing", dir / "lab"); }, dir / "missing", "does not exist");
  expect_io_error([&] { io::read_idx(dir / "img", dir / "missing"); }, dir / "missing", "does not exist");
  // Swapped files: wrong magic, with the hint.
  expect_io_error([&] { io::read_idx(dir / "lab", dir / "img"); }, dir / "lab", "expected magic 0x00000803");
  Bytes bad_magic = images;
  bad_magic[2] = 0x0d;  // f64 data
  write_bytes(dir / "magic", bad_magic);
  expect_io_error([&] { io::read_idx(dir / "magic", dir / "lab"); }, dir / "magic", "but got 0x00000d03");
  // Truncated payload and header, raw and gzip.
  Bytes truncated(images.begin(), images.end() - 1);
  write_bytes(dir / "short", truncated);
  expect_io_error([&] { io::read_idx(dir / "short", dir / "lab"); }, dir / "short", "expected 52 bytes");
  write_gz(dir / "short.gz", truncated);
  expect_io_error([&] { io::read_idx(dir / "short.gz", dir / "lab"); }, dir / "short.gz", "found 51 bytes");
  write_bytes(dir / "header", Bytes(images.begin(), images.begin() + 10));
  expect_io_error([&] { io::read_idx(dir / "header", dir / "lab"); }, dir / "header", "16-byte header");
  Bytes short_labels(labels.begin(), labels.end() - 2);
  write_bytes(dir / "short_labels", short_labels);
  expect_io_error([&] { io::read_idx(dir / "img", dir / "short_labels"); }, dir / "short_labels",
                  "expected 12 bytes");
  // Trailing bytes, raw and gzip.
  Bytes extra = images;
  extra.push_back(0);
  extra.push_back(0);
  write_bytes(dir / "extra", extra);
  expect_io_error([&] { io::read_idx(dir / "extra", dir / "lab"); }, dir / "extra", "2 trailing bytes");
  write_gz(dir / "extra.gz", extra);
  expect_io_error([&] { io::read_idx(dir / "extra.gz", dir / "lab"); }, dir / "extra.gz", "2 trailing bytes");
  // A gzip stream cut short.
  Bytes cut = read_bytes(dir / "extra.gz");
  cut.resize(cut.size() - 12);
  write_bytes(dir / "cut.gz", cut);
  expect_io_error([&] { io::read_idx(dir / "cut.gz", dir / "lab"); }, dir / "cut.gz");
  // Count mismatch.
  write_bytes(dir / "lab5", idx_labels(labels_mod3(5)));
  expect_io_error([&] { io::read_idx(dir / "img", dir / "lab5"); }, dir / "lab5", "holds 5 labels");
  // A zero dimension, and a header claiming far more than a small gzip file can hold.
  write_bytes(dir / "zero", idx_images(0, 3, 3));
  expect_io_error([&] { io::read_idx(dir / "zero", dir / "lab"); }, dir / "zero", "positive dimensions");
  Bytes huge;
  put_be32(huge, 0x00000803);
  for (std::uint32_t d : {4u, 1u << 30, 1u << 30}) put_be32(huge, d);
  write_gz(dir / "huge.gz", huge);
  write_bytes(dir / "lab4", labels);
  expect_io_error([&] { io::read_idx(dir / "huge.gz", dir / "lab4"); }, dir / "huge.gz", "found 16 bytes");
}

TEST(ConvertIdxTest, LabelsOutOfRangeForTheClassNamesNameTheLabelsFile) {
  test::TempDir dir;
  write_bytes(dir / "img", idx_images(3, 2, 2));
  write_bytes(dir / "lab", idx_labels({0, 3, 1}));
  expect_io_error([&] { convert(idx_options(dir / "img", dir / "lab", dir / "out.h5")); }, dir / "lab",
                  "label 1 in");
  EXPECT_FALSE(fs::exists(dir / "out.h5"));
  EXPECT_FALSE(fs::exists(dir / "out.h5.tmp"));
}

// Writes the four MNIST-style files (train: 6 images, test: 4) into `dir`, gzip-compressed.
void write_mnist_dir(const fs::path& dir, std::vector<std::uint8_t> train_labels) {
  write_gz(dir / "train-images-idx3-ubyte.gz", idx_images(6, 4, 4));
  write_gz(dir / "train-labels-idx1-ubyte.gz", idx_labels(train_labels));
  write_bytes(dir / "t10k-images-idx3-ubyte", idx_images(4, 4, 4));
  write_bytes(dir / "t10k-labels-idx1-ubyte", idx_labels({9, 8, 7, 6}));
}

TEST(ConvertMnistTest, DirectoryConvertsBothSplitsWithTheClassNames) {
  test::TempDir dir;
  write_mnist_dir(dir.path() / "src", {0, 1, 2, 3, 4, 5});
  io::ConvertOptions options;
  options.format = io::SourceFormat::kFashionMnist;
  options.input = dir / "src";
  options.output = dir / "sub" / "fmnist.h5";
  convert(options);
  io::h5::File file(options.output, io::h5::Access::kRead);
  const io::h5::Group root = file.root();
  EXPECT_EQ(root.attribute_strings("class_names"), io::fashion_mnist_classes());
  EXPECT_EQ(io::fashion_mnist_classes().front(), "T-shirt/top");
  EXPECT_EQ(io::fashion_mnist_classes().back(), "Ankle boot");
  EXPECT_EQ(root.group("train").dataset("images").shape(), (Shape{6, 1, 4, 4}));
  EXPECT_EQ(root.group("test").read_tensor("labels").to_vector<std::int64_t>(),
            (std::vector<std::int64_t>{9, 8, 7, 6}));
  EXPECT_EQ(root.group("train").attribute_strings("source_files").back(),
            fs::absolute(dir / "src" / "train-labels-idx1-ubyte.gz").lexically_normal().string());

  options.format = io::SourceFormat::kMnist;
  options.output = dir / "mnist.h5";
  convert(options);
  io::h5::File mnist(options.output, io::h5::Access::kRead);
  EXPECT_EQ(mnist.root().attribute_strings("class_names"),
            (std::vector<std::string>{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}));
}

TEST(ConvertMnistTest, LabelTenAndMissingFilesAreIoErrorsAndLeaveNoFile) {
  test::TempDir dir;
  write_mnist_dir(dir.path() / "src", {0, 1, 10, 3, 4, 5});
  io::ConvertOptions options;
  options.format = io::SourceFormat::kMnist;
  options.input = dir / "src";
  options.output = dir / "mnist.h5";
  expect_io_error([&] { convert(options); }, dir / "src" / "train-labels-idx1-ubyte.gz", "[0, 10)");
  EXPECT_FALSE(fs::exists(options.output));
  EXPECT_FALSE(fs::exists(dir / "mnist.h5.tmp"));
  // A failed conversion leaves an existing file of the same name untouched.
  write_bytes(options.output, {1, 2, 3});
  fs::remove(dir / "src" / "t10k-images-idx3-ubyte");
  write_gz(dir / "src" / "train-labels-idx1-ubyte.gz", idx_labels({0, 1, 2, 3, 4, 5}));
  expect_io_error([&] { convert(options); }, dir / "src" / "t10k-images-idx3-ubyte", "neither exists");
  EXPECT_EQ(read_bytes(options.output), (Bytes{1, 2, 3}));
  EXPECT_FALSE(fs::exists(dir / "mnist.h5.tmp"));
}

// A CIFAR-10 batch of `n` records with labels (first + i) % 10 and pixels pixel(first + i, c, y, x).
Bytes cifar_batch(std::int64_t first, std::int64_t n) {
  Bytes out;
  for (std::int64_t i = first; i < first + n; ++i) {
    out.push_back(static_cast<std::uint8_t>(i % 10));
    for (std::int64_t c = 0; c < 3; ++c)
      for (std::int64_t y = 0; y < 32; ++y)
        for (std::int64_t x = 0; x < 32; ++x) out.push_back(pixel(i, c, y, x));
  }
  return out;
}

void write_cifar_dir(const fs::path& dir) {
  for (int b = 1; b <= 5; ++b)
    write_bytes(dir / ("data_batch_" + std::to_string(b) + ".bin"), cifar_batch((b - 1) * 3, 3));
  write_bytes(dir / "test_batch.bin", cifar_batch(100, 2));
}

TEST(ConvertCifarTest, BatchesRoundTripWithPerChannelStatistics) {
  test::TempDir dir;
  write_cifar_dir(dir.path() / "cifar" / "cifar-10-batches-bin");
  io::ConvertOptions options;
  options.format = io::SourceFormat::kCifar10;
  options.input = dir / "cifar";
  options.output = dir / "cifar.h5";
  convert(options);
  io::h5::File file(options.output, io::h5::Access::kRead);
  const io::h5::Group root = file.root();
  EXPECT_EQ(root.attribute_strings("class_names"), io::cifar10_classes());
  EXPECT_EQ(io::cifar10_classes().front(), "airplane");
  EXPECT_EQ(io::cifar10_classes().back(), "truck");
  const io::h5::Group train = root.group("train");
  const Tensor images = train.read_tensor("images");
  ASSERT_EQ(images.shape(), (Shape{15, 3, 32, 32}));
  const auto pixels = images.to_vector<std::uint8_t>();
  for (std::int64_t i = 0; i < 15; ++i)
    for (std::int64_t c = 0; c < 3; ++c)
      for (std::int64_t k = 0; k < 1024; ++k)
        ASSERT_EQ(pixels[static_cast<std::size_t>((i * 3 + c) * 1024 + k)], pixel(i, c, k / 32, k % 32));
  const auto labels = train.read_tensor("labels").to_vector<std::int64_t>();
  for (std::int64_t i = 0; i < 15; ++i) EXPECT_EQ(labels[static_cast<std::size_t>(i)], i % 10);
  ASSERT_EQ(train.attribute_doubles("mean").size(), 3u);
  for (std::int64_t c = 0; c < 3; ++c) {
    const auto [mean, std] = hand_stats(images, c);
    EXPECT_NEAR(train.attribute_doubles("mean")[static_cast<std::size_t>(c)], mean, 1e-12);
    EXPECT_NEAR(train.attribute_doubles("std")[static_cast<std::size_t>(c)], std, 1e-12);
  }
  EXPECT_EQ(train.attribute_strings("source_files").size(), 5u);
  EXPECT_EQ(root.group("test").read_tensor("labels").to_vector<std::int64_t>(),
            (std::vector<std::int64_t>{0, 1}));
  EXPECT_THROW(io::read_cifar10(dir / "cifar", "val"), ValueError);
}

TEST(ConvertCifarTest, BadBatchesNameTheFile) {
  test::TempDir dir;
  write_cifar_dir(dir.path());
  Bytes odd = cifar_batch(0, 2);
  odd.push_back(7);
  write_bytes(dir / "data_batch_3.bin", odd);
  expect_io_error([&] { io::read_cifar10(dir.path(), "train"); }, dir / "data_batch_3.bin",
                  "multiple of 3073");
  Bytes bad_label = cifar_batch(0, 2);
  bad_label[3073] = 10;
  write_bytes(dir / "data_batch_3.bin", bad_label);
  expect_io_error([&] { io::read_cifar10(dir.path(), "train"); }, dir / "data_batch_3.bin",
                  "record 1 has label 10");
  fs::remove(dir / "test_batch.bin");
  expect_io_error([&] { io::read_cifar10(dir.path(), "test"); }, dir / "test_batch.bin", "does not exist");
  write_bytes(dir / "test_batch.bin", {});
  expect_io_error([&] { io::read_cifar10(dir.path(), "test"); }, dir / "test_batch.bin", "found 0 bytes");
}

// An NPY file: version 1 or 2 preamble, the header dict padded to a multiple of 64 bytes, then `payload`.
Bytes npy_file(const std::string& dict, const Bytes& payload, int version = 1) {
  const std::size_t preamble = version == 1 ? 10 : 12;
  std::string header = dict;
  while ((preamble + header.size() + 1) % 64 != 0) header.push_back(' ');
  header.push_back('\n');
  Bytes out = {0x93, 'N', 'U', 'M', 'P', 'Y', static_cast<std::uint8_t>(version), 0};
  for (int i = 0; i < (version == 1 ? 2 : 4); ++i)
    out.push_back(static_cast<std::uint8_t>(header.size() >> (8 * i)));
  out.insert(out.end(), header.begin(), header.end());
  out.insert(out.end(), payload.begin(), payload.end());
  return out;
}

std::string npy_dict(const std::string& descr, const std::string& shape, const std::string& order = "False") {
  return "{'descr': '" + descr + "', 'fortran_order': " + order + ", 'shape': " + shape + ", }";
}

Bytes le_values(const std::vector<std::int64_t>& values, int size) {
  Bytes out;
  for (const std::int64_t v : values)
    for (int i = 0; i < size; ++i)
      out.push_back(static_cast<std::uint8_t>(static_cast<std::uint64_t>(v) >> (8 * i)));
  return out;
}

// Pixels of n images of c x h x w in NCHW order, or in NHWC order when `nhwc`.
Bytes npy_pixels(std::int64_t n, std::int64_t c, std::int64_t h, std::int64_t w, bool nhwc) {
  Bytes out;
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t a = 0; a < (nhwc ? h : c); ++a)
      for (std::int64_t b = 0; b < (nhwc ? w : h); ++b)
        for (std::int64_t d = 0; d < (nhwc ? c : w); ++d)
          out.push_back(nhwc ? pixel(i, d, a, b) : pixel(i, a, b, d));
  return out;
}

void expect_pixels(const Tensor& images, std::int64_t n, std::int64_t c, std::int64_t h, std::int64_t w) {
  ASSERT_EQ(images.shape(), (Shape{n, c, h, w}));
  const auto v = images.to_vector<std::uint8_t>();
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t ch = 0; ch < c; ++ch)
      for (std::int64_t y = 0; y < h; ++y)
        for (std::int64_t x = 0; x < w; ++x)
          ASSERT_EQ(v[static_cast<std::size_t>(((i * c + ch) * h + y) * w + x)], pixel(i, ch, y, x));
}

TEST(ConvertNpyTest, AcceptedLayoutsAndLabelTypesRoundTrip) {
  test::TempDir dir;
  write_bytes(dir / "gray.npy", npy_file(npy_dict("|u1", "(3, 4, 5)"), npy_pixels(3, 1, 4, 5, false)));
  write_bytes(dir / "nchw.npy", npy_file(npy_dict("|u1", "(3, 3, 4, 5)"), npy_pixels(3, 3, 4, 5, false), 2));
  write_bytes(dir / "nhwc.npy", npy_file(npy_dict("|u1", "(3, 4, 5, 3)"), npy_pixels(3, 3, 4, 5, true)));
  write_bytes(dir / "i8.npy", npy_file(npy_dict("<i8", "(3,)"), le_values({2, 0, 1}, 8)));
  write_bytes(dir / "i4.npy", npy_file("{\"descr\": \"<i4\", \"fortran_order\": False, \"shape\": (3,)}",
                                       le_values({1, 2, 0}, 4)));
  write_bytes(dir / "u1.npy", npy_file(npy_dict("|u1", "(3,)"), {0, 0, 2}));
  io::ImageSet gray = io::read_npy(dir / "gray.npy", dir / "i8.npy");
  expect_pixels(gray.images, 3, 1, 4, 5);
  EXPECT_EQ(gray.labels.to_vector<std::int64_t>(), (std::vector<std::int64_t>{2, 0, 1}));
  expect_pixels(io::read_npy(dir / "nchw.npy", dir / "i4.npy").images, 3, 3, 4, 5);
  io::ImageSet nhwc = io::read_npy(dir / "nhwc.npy", dir / "u1.npy", io::NpyLayout::kNHWC);
  expect_pixels(nhwc.images, 3, 3, 4, 5);
  EXPECT_EQ(nhwc.labels.to_vector<std::int64_t>(), (std::vector<std::int64_t>{0, 0, 2}));
  EXPECT_EQ(nhwc.source_xxh64[0], xxh64_hex(read_bytes(dir / "nhwc.npy")));

  io::ConvertOptions options;
  options.format = io::SourceFormat::kNpy;
  options.input = dir / "nhwc.npy";
  options.labels = dir / "i4.npy";
  options.npy_layout = io::NpyLayout::kNHWC;
  options.split = "val";
  options.output = dir / "out.h5";
  convert(options);
  io::h5::File file(options.output, io::h5::Access::kRead);
  expect_pixels(file.root().group("val").read_tensor("images"), 3, 3, 4, 5);
  EXPECT_EQ(file.root().attribute_strings("class_names"), (std::vector<std::string>{"0", "1", "2"}));
}

TEST(ConvertNpyTest, BadFilesNameTheFile) {
  test::TempDir dir;
  const Bytes pixels = npy_pixels(2, 1, 3, 3, false);
  write_bytes(dir / "img.npy", npy_file(npy_dict("|u1", "(2, 3, 3)"), pixels));
  write_bytes(dir / "lab.npy", npy_file(npy_dict("<i8", "(2,)"), le_values({0, 1}, 8)));
  ASSERT_NO_THROW(io::read_npy(dir / "img.npy", dir / "lab.npy"));
  auto bad_images = [&](const Bytes& bytes, const std::string& fragment,
                        io::NpyLayout layout = io::NpyLayout::kNCHW) {
    write_bytes(dir / "bad.npy", bytes);
    expect_io_error([&] { io::read_npy(dir / "bad.npy", dir / "lab.npy", layout); }, dir / "bad.npy",
                    fragment);
  };
  auto bad_labels = [&](const Bytes& bytes, const std::string& fragment) {
    write_bytes(dir / "badlab.npy", bytes);
    expect_io_error([&] { io::read_npy(dir / "img.npy", dir / "badlab.npy"); }, dir / "badlab.npy", fragment);
  };
  expect_io_error([&] { io::read_npy(dir / "none.npy", dir / "lab.npy"); }, dir / "none.npy",
                  "does not exist");
  bad_images(Bytes{'P', 'K', 3, 4, 0, 0, 0, 0, 0, 0}, "magic");
  Bytes version = npy_file(npy_dict("|u1", "(2, 3, 3)"), pixels);
  version[6] = 4;
  bad_images(version, "version 4.0");
  bad_images(npy_file("{'descr': '|u1', 'fortran_order': False, 'shape': (2, 3, 3) ", pixels), "'}'");
  bad_images(npy_file("{'descr': '|u1', 'fortran_order': Nope, 'shape': (2, 3, 3)}", pixels),
             "True or False");
  bad_images(npy_file("{'descr': '|u1', 'shape': (2, 3, 3)}", pixels), "missing");
  bad_images(npy_file(npy_dict("<f4", "(2, 3, 3)"), Bytes(pixels.size() * 4, 0)), "'<f4'");
  bad_images(npy_file(npy_dict("|u1", "(2, 3, 3)", "True"), pixels), "fortran_order False");
  bad_images(npy_file(npy_dict("|u1", "(2, 9)"), Bytes(18, 0)), "[2, 9]");
  bad_images(npy_file(npy_dict("|u1", "(2, 5, 5, 1)"), Bytes(50, 0)), "NpyLayout::kNHWC");
  bad_images(npy_file(npy_dict("|u1", "(2, 3, 3)"), Bytes(pixels.begin(), pixels.end() - 1)), "truncated");
  Bytes long_payload = pixels;
  long_payload.push_back(0);
  bad_images(npy_file(npy_dict("|u1", "(2, 3, 3)"), long_payload), "1 trailing bytes");
  Bytes cut_header = npy_file(npy_dict("|u1", "(2, 3, 3)"), pixels);
  cut_header.resize(30);
  bad_images(cut_header, "truncated");
  bad_labels(npy_file(npy_dict(">i8", "(2,)"), le_values({0, 1}, 8)), "'>i8'");
  bad_labels(npy_file(npy_dict("<i8", "(2,)"), le_values({0, -1}, 8)), "label 1 is -1");
  bad_labels(npy_file(npy_dict("<i8", "(2, 1)"), le_values({0, 1}, 8)), "shape [N]");
  bad_labels(npy_file(npy_dict("<i4", "(3,)"), le_values({0, 1, 1}, 4)), "holds 3 labels");
}

TEST(ConvertImageFolderTest, ClassesAreSortedFoldersAndImagesRoundTrip) {
  test::TempDir dir;
  const fs::path root = dir / "images";
  // Class "dog" before "cat" on disk; sorted names give cat = 0, dog = 1.
  const std::vector<std::pair<std::string, std::string>> files = {
      {"dog", "b.png"}, {"dog", "a.PNG"}, {"cat", "z.png"}};
  std::vector<Tensor> written;
  for (std::size_t k = 0; k < files.size(); ++k) {
    Tensor image = empty({3, 4, 6}, DType::u8);
    auto* p = image.data<std::uint8_t>();
    for (std::int64_t j = 0; j < image.numel(); ++j) p[j] = static_cast<std::uint8_t>(j * 5 + k * 40);
    fs::create_directories(root / files[k].first);
    io::write_png(root / files[k].first / files[k].second, image);
    written.push_back(image);
  }
  write_bytes(root / "dog" / "notes.txt", {'h', 'i'});
  write_bytes(root / "README", {'x'});
  io::ConvertOptions options;
  options.format = io::SourceFormat::kImageFolder;
  options.input = root;
  options.output = dir / "folder.h5";
  convert(options);
  io::h5::File file(options.output, io::h5::Access::kRead);
  EXPECT_EQ(file.root().attribute_strings("class_names"), (std::vector<std::string>{"cat", "dog"}));
  const io::h5::Group train = file.root().group("train");
  EXPECT_EQ(train.read_tensor("labels").to_vector<std::int64_t>(), (std::vector<std::int64_t>{0, 1, 1}));
  const Tensor images = train.read_tensor("images");
  ASSERT_EQ(images.shape(), (Shape{3, 3, 4, 6}));
  // Order: cat/z.png, dog/a.PNG, dog/b.png.
  for (const auto& [row, k] : {std::pair{0, 2}, std::pair{1, 1}, std::pair{2, 0}}) {
    EXPECT_EQ(images.select(0, row).contiguous().to_vector<std::uint8_t>(),
              written[static_cast<std::size_t>(k)].to_vector<std::uint8_t>());
  }
  EXPECT_EQ(train.attribute_strings("source_files").size(), 2u);
  EXPECT_EQ(train.attribute_strings("source_xxh64").size(), 2u);
  EXPECT_EQ(train.attribute_strings("source_xxh64")[0].size(), 16u);
}

TEST(ConvertImageFolderTest, MismatchedImagesAndEmptyClassesNameTheFile) {
  test::TempDir dir;
  const fs::path root = dir / "images";
  fs::create_directories(root / "a");
  fs::create_directories(root / "b");
  io::write_png(root / "a" / "1.png", zeros({1, 5, 5}, DType::u8));
  io::write_png(root / "b" / "1.png", zeros({1, 5, 5}, DType::u8));
  io::write_png(root / "b" / "2.png", zeros({1, 5, 6}, DType::u8));
  expect_io_error([&] { io::read_image_folder(root); }, root / "b" / "2.png", "5x6");
  io::write_png(root / "b" / "2.png", zeros({3, 5, 5}, DType::u8));
  expect_io_error([&] { io::read_image_folder(root); }, root / "b" / "2.png", "3 channel(s)");
  write_bytes(root / "b" / "2.png", {'n', 'o', 't'});
  expect_io_error([&] { io::read_image_folder(root); }, root / "b" / "2.png");
  fs::remove(root / "b" / "2.png");
  fs::create_directories(root / "c");
  expect_io_error([&] { io::read_image_folder(root); }, root / "c", "has none");
  expect_io_error([&] { io::read_image_folder(dir / "nowhere"); }, dir / "nowhere", "not a directory");
}

TEST(ConvertStatsTest, ChannelStatsAndHashMatchIndependentComputations) {
  Generator gen(7);
  const Tensor images = rand({5, 3, 7, 9}, 0.0, 256.0, DType::f32, kCPU, &gen).to(DType::u8);
  const io::ChannelStats stats = io::channel_stats(images);
  for (std::int64_t c = 0; c < 3; ++c) {
    const auto [mean, std] = hand_stats(images, c);
    EXPECT_NEAR(stats.mean[static_cast<std::size_t>(c)], mean, 1e-12);
    EXPECT_NEAR(stats.std[static_cast<std::size_t>(c)], std, 1e-12);
  }
  test::TempDir dir;
  write_bytes(dir / "empty", {});
  EXPECT_EQ(io::file_xxh64(dir / "empty"),
            "ef46db3751d8e999");  // the XXH64 specification's empty-input value
  write_bytes(dir / "abc", {'a', 'b', 'c'});
  EXPECT_EQ(io::file_xxh64(dir / "abc"), "44bc2cf5ad770999");
}

TEST(ConvertFashionMnistTest, RealDataConvertsWithKnownStatistics) {
  const fs::path source = "/usr/share/datasets/fashion-mnist";
  if (!fs::exists(source / "train-images-idx3-ubyte.gz"))
    GTEST_SKIP() << "Fashion-MNIST is not installed in " << source;
  test::TempDir dir;
  io::ConvertOptions options;
  options.format = io::SourceFormat::kFashionMnist;
  options.input = source;
  options.output = dir / "fashion.h5";
  convert(options);
  io::h5::File file(options.output, io::h5::Access::kRead);
  const io::h5::Group root = file.root();
  EXPECT_EQ(root.group("train").dataset("images").shape(), (Shape{60000, 1, 28, 28}));
  EXPECT_EQ(root.group("test").dataset("images").shape(), (Shape{10000, 1, 28, 28}));
  EXPECT_EQ(root.group("train").dataset("labels").shape(), (Shape{60000}));
  EXPECT_NEAR(root.group("train").attribute_doubles("mean")[0], 0.2860, 1e-3);
  EXPECT_NEAR(root.group("train").attribute_doubles("std")[0], 0.3530, 1e-3);
  const auto labels = root.group("test").read_tensor("labels").to_vector<std::int64_t>();
  std::vector<int> counts(10, 0);
  for (const std::int64_t l : labels) ++counts[static_cast<std::size_t>(l)];
  for (const int count : counts) EXPECT_EQ(count, 1000);  // Fashion-MNIST's test split is balanced
  EXPECT_EQ(root.group("train").attribute_strings("source_xxh64")[0],
            xxh64_hex(read_bytes(source / "train-images-idx3-ubyte.gz")));
}

}  // namespace
}  // namespace lockstep
