// Tests of the TensorBoard event files: CRC-32C against published check values and a bitwise reference,
// the TFRecord framing parsed by hand here, a scalar event against bytes encoded by hand from event.proto,
// round trips of scalars and images, and corrupt or truncated files that the reader must reject by offset.
#include "io/metrics/tensorboard.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "io/image/png.h"
#include "io/metrics/png_encode.h"
#include "src/tensor/factories.h"
#include "tests/support/expect_error.h"
#include "tests/support/temp_dir.h"

namespace lockstep::io {
namespace {

namespace fs = std::filesystem;
using Bytes = std::vector<std::uint8_t>;

Bytes to_bytes(const std::string& s) { return Bytes(s.begin(), s.end()); }

// CRC-32C one bit at a time (reflected polynomial 0x82F63B78): a reference independent of boost.
std::uint32_t bitwise_crc32c(const Bytes& bytes) {
  std::uint32_t crc = 0xFFFFFFFFU;
  for (const std::uint8_t b : bytes) {
    crc ^= b;
    for (int k = 0; k < 8; ++k) crc = (crc & 1U) != 0 ? (crc >> 1) ^ 0x82F63B78U : crc >> 1;
  }
  return ~crc;
}

Bytes read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void write_file(const fs::path& path, const Bytes& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

std::uint64_t le(const Bytes& b, std::size_t at, int size) {
  std::uint64_t v = 0;
  for (int i = size - 1; i >= 0; --i) v = (v << 8) | b[at + static_cast<std::size_t>(i)];
  return v;
}

// One TFRecord as laid out in the file, split by hand: its offset and its data bytes.
struct RawRecord {
  std::size_t offset;
  Bytes data;
};

// Splits a TFRecord file by hand, checking each masked CRC with the bitwise reference and the mask
// formula ((crc >> 15) | (crc << 17)) + 0xa282ead8.
std::vector<RawRecord> split_records(const Bytes& file) {
  const auto mask = [](std::uint32_t c) { return ((c >> 15) | (c << 17)) + 0xa282ead8U; };
  std::vector<RawRecord> records;
  std::size_t at = 0;
  while (at < file.size()) {
    EXPECT_GE(file.size() - at, 16U) << "record at " << at;
    if (file.size() - at < 16) break;
    const std::uint64_t length = le(file, at, 8);
    EXPECT_EQ(le(file, at + 8, 4),
              mask(bitwise_crc32c(Bytes(file.begin() + static_cast<std::ptrdiff_t>(at),
                                        file.begin() + static_cast<std::ptrdiff_t>(at + 8)))))
        << "length CRC of the record at " << at;
    EXPECT_LE(at + 16 + length, file.size());
    if (at + 16 + length > file.size()) break;
    const auto begin = file.begin() + static_cast<std::ptrdiff_t>(at + 12);
    Bytes data(begin, begin + static_cast<std::ptrdiff_t>(length));
    EXPECT_EQ(le(file, at + 12 + length, 4), mask(bitwise_crc32c(data)))
        << "data CRC of the record at " << at;
    records.push_back({at, std::move(data)});
    at += 16 + length;
  }
  return records;
}

std::string host() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof(buf) - 1) != 0 || buf[0] == '\0') return "localhost";
  return buf;
}

TEST(TensorBoardCrc, PublishedCheckValues) {
  EXPECT_EQ(crc32c(to_bytes("123456789")), 0xE3069283U);
  EXPECT_EQ(crc32c(Bytes{}), 0x00000000U);
  // RFC 3720 (iSCSI) B.4: 32 bytes of zeros, of 0xFF, and ascending 0..31.
  EXPECT_EQ(crc32c(Bytes(32, 0x00)), 0x8A9136AAU);
  EXPECT_EQ(crc32c(Bytes(32, 0xFF)), 0x62A8AB43U);
  Bytes ascending(32);
  for (std::size_t i = 0; i < ascending.size(); ++i) ascending[i] = static_cast<std::uint8_t>(i);
  EXPECT_EQ(crc32c(ascending), 0x46DD794EU);
}

TEST(TensorBoardCrc, MatchesBitwiseReference) {
  std::mt19937 gen(7);
  for (const std::size_t n : {1U, 3U, 8U, 63U, 1000U}) {
    Bytes bytes(n);
    for (auto& b : bytes) b = static_cast<std::uint8_t>(gen());
    EXPECT_EQ(crc32c(bytes), bitwise_crc32c(bytes)) << n << " bytes";
  }
}

TEST(TensorBoardCrc, MaskByHand) {
  EXPECT_EQ(mask_crc32c(0x00000000U), 0xA282EAD8U);
  EXPECT_EQ(mask_crc32c(0x00000001U), 0xA284EAD8U);             // 1 << 17 added
  EXPECT_EQ(mask_crc32c(0x00008000U), 0xA282EAD9U);             // 1 << 15 rotates to bit 0
  EXPECT_EQ(mask_crc32c(0x80000000U), 0xA282EAD8U + 0x10000U);  // bit 31 rotates to bit 16
}

class EventWriterTest : public test::TempDirTest {};

TEST_F(EventWriterTest, NamesFileAndWritesVersionFirst) {
  // Whole seconds of the clock the writer reads (system_clock).
  const auto seconds_now = [] {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  };
  const long long before = seconds_now();
  fs::path path;
  {
    EventWriter writer(dir_ / "run" / "tb", ".rank0");
    path = writer.path();
  }
  const long long after = seconds_now();
  EXPECT_EQ(path.parent_path(), dir_ / "run" / "tb");
  const std::string name = path.filename().string();
  const std::string prefix = "events.out.tfevents.";
  ASSERT_EQ(name.rfind(prefix, 0), 0U) << name;
  const std::string stamp = name.substr(prefix.size(), 10);
  const long long seconds = std::stoll(stamp);
  EXPECT_GE(seconds, before);
  EXPECT_LE(seconds, after);
  EXPECT_EQ(name.substr(prefix.size() + 10), str_cat(".", host(), ".rank0"));

  const std::vector<TensorBoardEvent> events = read_events(path);
  ASSERT_EQ(events.size(), 1U);
  EXPECT_EQ(events[0].file_version, "brain.Event:2");
  EXPECT_TRUE(events[0].values.empty());
  EXPECT_GE(events[0].wall_time, static_cast<double>(before));
  EXPECT_LE(events[0].wall_time, static_cast<double>(after + 1));
}

// The bytes of Event{wall_time: 2.0, step: 3, summary {value {tag: "a", simple_value: 1.0}}} encoded by
// hand from event.proto and summary.proto, inside TFRecord framing checked by hand.
TEST_F(EventWriterTest, ScalarEventMatchesHandEncoding) {
  fs::path path;
  {
    EventWriter writer(dir_.path());
    writer.add_scalar("a", 1.0, 3, 2.0);
    path = writer.path();
  }
  const std::vector<RawRecord> records = split_records(read_file(path));
  ASSERT_EQ(records.size(), 2U);
  // clang-format off
  const Bytes expected = {
      0x09, 0, 0, 0, 0, 0, 0, 0, 0x40,  // field 1 (fixed64): wall_time 2.0
      0x10, 0x03,                       // field 2 (varint): step 3
      0x2a, 0x0a,                       // field 5 (bytes, 10): summary
      0x0a, 0x08,                       //   field 1 (bytes, 8): value
      0x0a, 0x01, 'a',                  //     field 1 (bytes, 1): tag "a"
      0x15, 0, 0, 0x80, 0x3f,           //     field 2 (fixed32): simple_value 1.0f
  };
  // clang-format on
  EXPECT_EQ(records[1].data, expected);
  EXPECT_EQ(records[1].offset, 16 + records[0].data.size());
}

TEST_F(EventWriterTest, ScalarsRoundTrip) {
  struct Point {
    std::string tag;
    double value;
    std::int64_t step;
    double wall_time;
  };
  const std::vector<Point> points = {{"train/loss", 2.302585, 0, 1700000000.25},
                                     {"train/loss", 0.125, 1, 1700000001.5},
                                     {"eval/accuracy", 0.9375, 1, 1700000002.0},
                                     {"lr", 1e-4, std::int64_t{1} << 40, 1700000003.0},
                                     {"odd/negative_step", -3.5, -7, 0.0}};
  fs::path path;
  {
    EventWriter writer(dir_.path());
    for (const Point& p : points) writer.add_scalar(p.tag, p.value, p.step, p.wall_time);
    path = writer.path();
  }
  const std::vector<TensorBoardEvent> events = read_events(path);
  ASSERT_EQ(events.size(), points.size() + 1);
  for (std::size_t i = 0; i < points.size(); ++i) {
    const TensorBoardEvent& e = events[i + 1];
    EXPECT_EQ(e.step, points[i].step) << i;
    EXPECT_EQ(e.wall_time, points[i].wall_time) << i;
    EXPECT_TRUE(e.file_version.empty()) << i;
    ASSERT_EQ(e.values.size(), 1U) << i;
    EXPECT_EQ(e.values[0].tag, points[i].tag) << i;
    ASSERT_TRUE(e.values[0].scalar.has_value()) << i;
    EXPECT_EQ(*e.values[0].scalar, static_cast<float>(points[i].value)) << i;
    EXPECT_FALSE(e.values[0].image.has_value()) << i;
  }
}

TEST_F(EventWriterTest, ImagesRoundTrip) {
  std::vector<std::uint8_t> pixels(3 * 5 * 7);
  for (std::size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<std::uint8_t>(i * 37 + 11);
  const Tensor rgb = from_vector(pixels, {3, 5, 7});
  const Tensor gray = full({1, 4, 2}, 200.0, DType::u8);
  const Bytes gray_png = encode_png(gray);
  fs::path path;
  {
    EventWriter writer(dir_.path());
    writer.add_image("samples/rgb", rgb, 12, 5.0);
    writer.add_image("samples/gray", gray_png, 4, 2, 1, 13, 6.0);
    path = writer.path();
  }
  const std::vector<TensorBoardEvent> events = read_events(path);
  ASSERT_EQ(events.size(), 3U);

  const TensorBoardEvent& first = events[1];
  EXPECT_EQ(first.step, 12);
  EXPECT_EQ(first.wall_time, 5.0);
  ASSERT_EQ(first.values.size(), 1U);
  EXPECT_EQ(first.values[0].tag, "samples/rgb");
  EXPECT_FALSE(first.values[0].scalar.has_value());
  ASSERT_TRUE(first.values[0].image.has_value());
  const SummaryImage& image = *first.values[0].image;
  EXPECT_EQ(image.height, 5);
  EXPECT_EQ(image.width, 7);
  EXPECT_EQ(image.channels, 3);
  // The embedded PNG decodes (through the file reader) to the original pixels.
  write_file(file("rgb.png"), image.encoded);
  const Tensor back = io::read_png(file("rgb.png"));
  ASSERT_EQ(back.shape(), rgb.shape());
  EXPECT_EQ(std::vector<std::uint8_t>(back.data<std::uint8_t>(), back.data<std::uint8_t>() + pixels.size()),
            pixels);

  const TensorBoardEvent& second = events[2];
  EXPECT_EQ(second.step, 13);
  ASSERT_EQ(second.values.size(), 1U);
  ASSERT_TRUE(second.values[0].image.has_value());
  EXPECT_EQ(second.values[0].image->height, 4);
  EXPECT_EQ(second.values[0].image->width, 2);
  EXPECT_EQ(second.values[0].image->channels, 1);
  EXPECT_EQ(second.values[0].image->encoded, gray_png);
}

// A job killed without closing its writer keeps every record written so far.
TEST_F(EventWriterTest, RecordsReachTheFileBeforeClose) {
  EventWriter writer(dir_.path());
  writer.add_scalar("loss", 1.5, 1, 10.0);
  writer.add_scalar("loss", 0.75, 2, 11.0);
  const std::vector<TensorBoardEvent> events = read_events(writer.path());
  ASSERT_EQ(events.size(), 3U);
  EXPECT_EQ(*events[2].values[0].scalar, 0.75F);
  writer.flush();
  EXPECT_EQ(read_events(writer.path()).size(), 3U);
}

class TensorBoardCorruptionTest : public EventWriterTest {
 protected:
  // Writes the version event and three scalars; returns the file's bytes and its records.
  void SetUp() override {
    EventWriter writer(dir_.path());
    for (int i = 0; i < 3; ++i) writer.add_scalar("loss", 1.0 / (i + 1), i, 100.0 + i);
    path_ = writer.path();
    bytes_ = read_file(path_);
    records_ = split_records(bytes_);
    ASSERT_EQ(records_.size(), 4U);
  }

  // Expects read_events to fail naming the file and the byte offset `offset`, with `detail` in the message.
  void expect_rejected(std::size_t offset, const std::string& detail) {
    const std::optional<IoError> e = test::expect_thrown<IoError>(
        [&] { read_events(path_); }, {path_.string(), "byte offset " + std::to_string(offset) + " ", detail});
    if (e) {
      EXPECT_EQ(e->file(), path_.string());
      EXPECT_EQ(e->object(), "byte offset " + std::to_string(offset));
    }
  }

  fs::path path_;
  Bytes bytes_;
  std::vector<RawRecord> records_;
};

TEST_F(TensorBoardCorruptionTest, FlippedDataByteNamesRecordOffset) {
  const std::size_t offset = records_[2].offset;
  Bytes bad = bytes_;
  bad[offset + 12 + 3] ^= 0x01;  // inside the data of the third record
  write_file(path_, bad);
  expect_rejected(offset, "data bytes to be");
}

TEST_F(TensorBoardCorruptionTest, FlippedLengthByteNamesRecordOffset) {
  const std::size_t offset = records_[1].offset;
  Bytes bad = bytes_;
  bad[offset] ^= 0x40;
  write_file(path_, bad);
  expect_rejected(offset, "CRC-32C of the length");
}

TEST_F(TensorBoardCorruptionTest, FlippedDataCrcNamesRecordOffset) {
  const std::size_t offset = records_[3].offset;
  Bytes bad = bytes_;
  bad.back() ^= 0x80;  // the last record's data CRC
  write_file(path_, bad);
  expect_rejected(offset, "data bytes to be");
}

TEST_F(TensorBoardCorruptionTest, TruncatedRecordNamesItsOffset) {
  const std::size_t offset = records_[3].offset;
  write_file(path_, Bytes(bytes_.begin(), bytes_.end() - 2));
  expect_rejected(offset, "truncated");
  write_file(path_, Bytes(bytes_.begin(), bytes_.begin() + static_cast<std::ptrdiff_t>(offset + 5)));
  expect_rejected(offset, "truncated");
}

// Valid framing (CRCs from the bitwise reference) around a malformed Event: the reader names the record.
TEST_F(TensorBoardCorruptionTest, MalformedEventNamesRecordOffset) {
  const auto mask = [](std::uint32_t c) { return ((c >> 15) | (c << 17)) + 0xa282ead8U; };
  const auto with_record = [&](const Bytes& event) {
    Bytes out = bytes_;
    Bytes length(8, 0);
    length[0] = static_cast<std::uint8_t>(event.size());
    const std::uint32_t length_crc = mask(bitwise_crc32c(length));
    const std::uint32_t data_crc = mask(bitwise_crc32c(event));
    out.insert(out.end(), length.begin(), length.end());
    for (int i = 0; i < 4; ++i) out.push_back(static_cast<std::uint8_t>(length_crc >> (8 * i)));
    out.insert(out.end(), event.begin(), event.end());
    for (int i = 0; i < 4; ++i) out.push_back(static_cast<std::uint8_t>(data_crc >> (8 * i)));
    return out;
  };
  const std::size_t offset = bytes_.size();
  // Field 4 (graph_def, skipped) declared 127 bytes long with 1 byte left.
  write_file(path_, with_record({0x22, 0x7f, 'x'}));
  expect_rejected(offset, "more bytes of protobuf");
  // Field 1 (wall_time, a double) sent as a length-delimited field.
  write_file(path_, with_record({0x0a, 0x01, 'x'}));
  expect_rejected(offset, "wire type 1 for field 1");
}

TEST_F(EventWriterTest, RejectsBadArguments) {
  EventWriter writer(dir_.path());
  test::expect_error<ValueError>([&] { writer.add_scalar("", 1.0, 0); }, {"add_scalar", "non-empty tag"});
  const Bytes png = encode_png(zeros({1, 2, 2}, DType::u8));
  test::expect_error<ValueError>([&] { writer.add_image("img", png, 2, 2, 5, 0); },
                                 {"add_image", "channels"});
  test::expect_error<ValueError>([&] { writer.add_image("img", png, 0, 2, 1, 0); }, {"add_image", "height"});
  test::expect_error<ValueError>([&] { writer.add_image("img", to_bytes("GIF89a-not-a-png"), 2, 2, 1, 0); },
                                 {"add_image", "PNG signature"});
  test::expect_error<ValueError>(
      [&] {
        writer.add_image("img", zeros({2, 2, 2}, DType::u8), 0);
      },
      {"encode_png", "C = 1 or 3"});
  test::expect_error<TypeError>([&] { writer.add_image("img", zeros({3, 2, 2}), 0); }, {"encode_png", "u8"});
  test::expect_error<ValueError>([&] { EventWriter bad(dir_.path(), "x/y"); }, {"EventWriter", "suffix"});
  // Nothing was written by the rejected calls.
  EXPECT_EQ(read_events(writer.path()).size(), 1U);
}

TEST_F(EventWriterTest, UnwritableDirectoryIsIoError) {
  write_file(file("plain"), to_bytes("not a directory"));
  test::expect_error<IoError>([&] { EventWriter writer(file("plain") / "tb"); },
                              {"EventWriter", (file("plain") / "tb").string()});
}

}  // namespace
}  // namespace lockstep::io
