// Tests of PNG reading/writing (round trips, conversions of PNGs from an independent encoder written
// here with zlib, corrupt files) and of image_grid's layout, padding and saturation.
#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <string>
#include <vector>

#include "io/image/grid.h"
#include "io/image/png.h"
#include "src/tensor/factories.h"
#include "tests/support/temp_dir.h"

namespace lockstep {
namespace {

namespace fs = std::filesystem;

// A fresh directory per test, removed afterwards.
class PngTest : public test::TempDirTest {};

using Bytes = std::vector<std::uint8_t>;

void put_u32(Bytes& out, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<std::uint8_t>(v >> shift));
}

void put_chunk(Bytes& out, const char* type, const Bytes& data) {
  put_u32(out, static_cast<std::uint32_t>(data.size()));
  Bytes body(type, type + 4);
  body.insert(body.end(), data.begin(), data.end());
  out.insert(out.end(), body.begin(), body.end());
  put_u32(out, static_cast<std::uint32_t>(crc32(0, body.data(), static_cast<uInt>(body.size()))));
}

// A minimal PNG encoder independent of libpng: `rows` are the packed scanlines without filter bytes.
Bytes encode_png(std::uint32_t width, std::uint32_t height, std::uint8_t depth, std::uint8_t color,
                 const std::vector<Bytes>& rows, const Bytes& palette = {}) {
  Bytes out = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  Bytes header;
  put_u32(header, width);
  put_u32(header, height);
  header.insert(header.end(), {depth, color, 0, 0, 0});
  put_chunk(out, "IHDR", header);
  if (!palette.empty()) put_chunk(out, "PLTE", palette);
  Bytes raw;
  for (const Bytes& row : rows) {
    raw.push_back(0);  // filter: none
    raw.insert(raw.end(), row.begin(), row.end());
  }
  uLongf size = compressBound(static_cast<uLong>(raw.size()));
  Bytes compressed(size);
  EXPECT_EQ(compress(compressed.data(), &size, raw.data(), static_cast<uLong>(raw.size())), Z_OK);
  compressed.resize(size);
  put_chunk(out, "IDAT", compressed);
  put_chunk(out, "IEND", {});
  return out;
}

void write_bytes(const fs::path& path, const Bytes& bytes) {
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

Bytes read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

std::vector<std::uint8_t> pixels_of(const Tensor& t) { return t.to_vector<std::uint8_t>(); }

template <class Fn>
void expect_io_error_naming(Fn&& fn, const fs::path& path, const std::string& fragment) {
  try {
    fn();
    ADD_FAILURE() << "expected IoError";
  } catch (const IoError& e) {
    EXPECT_EQ(e.file(), path.string());
    EXPECT_NE(std::string(e.what()).find(path.string()), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

TEST_F(PngTest, GrayRoundTrip) {
  std::vector<std::uint8_t> values(5 * 7);
  for (std::size_t i = 0; i < values.size(); ++i) values[i] = static_cast<std::uint8_t>(i * 7 + 3);
  const Tensor image = from_vector(values, {1, 5, 7});
  io::write_png(file("g.png"), image);
  const Tensor back = io::read_png(file("g.png"));
  EXPECT_EQ(back.dtype(), DType::u8);
  EXPECT_EQ(back.shape(), (Shape{1, 5, 7}));
  EXPECT_EQ(pixels_of(back), values);
}

TEST_F(PngTest, RgbRoundTripKeepsChannelsApart) {
  std::vector<std::uint8_t> values(3 * 4 * 6);
  for (std::size_t i = 0; i < values.size(); ++i) values[i] = static_cast<std::uint8_t>((i * 11) % 256);
  const Tensor image = from_vector(values, {3, 4, 6});
  io::write_png(file("c.png"), image);
  const Tensor back = io::read_png(file("c.png"));
  EXPECT_EQ(back.shape(), (Shape{3, 4, 6}));
  EXPECT_EQ(pixels_of(back), values);
  // A non-contiguous view is written in logical order.
  const Tensor view = image.slice(2, 1, 5);
  io::write_png(file("v.png"), view);
  EXPECT_EQ(pixels_of(io::read_png(file("v.png"))), pixels_of(view.contiguous()));
}

TEST_F(PngTest, PaletteSixteenBitAlphaAndLowDepthAreConverted) {
  // Palette (2 x 2, 8-bit indices) -> RGB.
  write_bytes(file("pal.png"),
              encode_png(2, 2, 8, 3, {{0, 1}, {2, 0}}, {10, 20, 30, 200, 100, 50, 0, 255, 7}));
  Tensor pal = io::read_png(file("pal.png"));
  EXPECT_EQ(pal.shape(), (Shape{3, 2, 2}));
  EXPECT_EQ(pixels_of(pal), (std::vector<std::uint8_t>{10, 200, 0, 10, 20, 100, 255, 20, 30, 50, 7, 30}));

  // 16-bit gray -> 8 bits, rounded: v / 257.
  write_bytes(file("g16.png"), encode_png(3, 1, 16, 0, {{0x00, 0x00, 0x64, 0x64 + 0, 0xFF, 0xFF}}));
  EXPECT_EQ(pixels_of(io::read_png(file("g16.png"))),
            (std::vector<std::uint8_t>{0, 100, 255}));  // 0x6464 = 100 * 257

  // Gray + alpha -> gray.
  write_bytes(file("ga.png"), encode_png(2, 1, 8, 4, {{90, 0, 180, 255}}));
  Tensor ga = io::read_png(file("ga.png"));
  EXPECT_EQ(ga.shape(), (Shape{1, 1, 2}));
  EXPECT_EQ(pixels_of(ga), (std::vector<std::uint8_t>{90, 180}));

  // RGBA -> RGB.
  write_bytes(file("rgba.png"), encode_png(2, 1, 8, 6, {{1, 2, 3, 0, 4, 5, 6, 128}}));
  Tensor rgba = io::read_png(file("rgba.png"));
  EXPECT_EQ(rgba.shape(), (Shape{3, 1, 2}));
  EXPECT_EQ(pixels_of(rgba), (std::vector<std::uint8_t>{1, 4, 2, 5, 3, 6}));

  // 16-bit RGB -> 8-bit RGB.
  write_bytes(file("rgb16.png"), encode_png(1, 1, 16, 2, {{0x0A, 0x0A, 0x80, 0x80, 0xFF, 0xFF}}));
  EXPECT_EQ(pixels_of(io::read_png(file("rgb16.png"))), (std::vector<std::uint8_t>{10, 128, 255}));

  // 1-bit gray -> 0 / 255.
  write_bytes(file("g1.png"), encode_png(10, 1, 1, 0, {{0b10110000, 0b01000000}}));
  EXPECT_EQ(pixels_of(io::read_png(file("g1.png"))),
            (std::vector<std::uint8_t>{255, 0, 255, 255, 0, 0, 0, 0, 0, 255}));
}

TEST_F(PngTest, CorruptMissingAndForeignFilesAreIoErrorsNamingThem) {
  io::write_png(file("ok.png"), full({3, 16, 16}, 77.0, DType::u8));
  Bytes bytes = read_bytes(file("ok.png"));
  ASSERT_GT(bytes.size(), 60u);

  // Flipped bytes inside IDAT: the chunk CRC no longer matches.
  Bytes flipped = bytes;
  for (std::size_t i = 45; i < 50; ++i) flipped[i] ^= 0xFF;
  write_bytes(file("flipped.png"), flipped);
  expect_io_error_naming([&] { io::read_png(file("flipped.png")); }, file("flipped.png"), "png: cannot read");

  // Truncated after the header.
  write_bytes(file("cut.png"), Bytes(bytes.begin(), bytes.begin() + 40));
  expect_io_error_naming([&] { io::read_png(file("cut.png")); }, file("cut.png"), "png: cannot read");

  std::ofstream(file("text.png")) << "definitely not a png";
  expect_io_error_naming([&] { io::read_png(file("text.png")); }, file("text.png"), "not a PNG file");

  expect_io_error_naming([&] { io::read_png(file("missing.png")); }, file("missing.png"), "open for reading");
  expect_io_error_naming(
      [&] {
        io::write_png(file("no_dir/x.png"), zeros({1, 2, 2}, DType::u8));
      },
      file("no_dir/x.png"), "open for writing");
}

TEST_F(PngTest, WriteRejectsOtherDtypesAndShapes) {
  EXPECT_THROW(io::write_png(file("x.png"), zeros({1, 2, 2}, DType::f32)), TypeError);
  EXPECT_THROW(io::write_png(file("x.png"), zeros({2, 2, 2}, DType::u8)), ValueError);
  EXPECT_THROW(io::write_png(file("x.png"), zeros({2, 2}, DType::u8)), ValueError);
  EXPECT_THROW(io::write_png(file("x.png"), zeros({1, 0, 2}, DType::u8)), ValueError);
  EXPECT_FALSE(fs::exists(file("x.png")));
}

// The u8 value image_grid gives to v for the range [lo, hi].
std::uint8_t mapped(double v, double lo, double hi) {
  return static_cast<std::uint8_t>(std::lround(std::clamp((v - lo) * 255.0 / (hi - lo), 0.0, 255.0)));
}

TEST(ImageGridTest, TilesLandAtTheirPositionsWithPadding) {
  const std::int64_t n = 5, h = 2, w = 3, padding = 1, columns = 3;
  std::vector<float> values(static_cast<std::size_t>(n * h * w));
  for (std::size_t i = 0; i < values.size(); ++i) values[i] = -1.0f + 2.0f * static_cast<float>(i) / 29.0f;
  const Tensor grid = io::image_grid(from_vector(values, {n, 1, h, w}), columns, -1.0, 1.0, padding);
  ASSERT_EQ(grid.dtype(), DType::u8);
  ASSERT_EQ(grid.shape(),
            (Shape{1, 2 * (h + padding) + padding, 3 * (w + padding) + padding}));  // [1, 7, 13]
  const std::vector<std::uint8_t> px = pixels_of(grid);
  std::vector<bool> covered(px.size(), false);
  for (std::int64_t i = 0; i < n; ++i) {
    const std::int64_t top = padding + (i / columns) * (h + padding);
    const std::int64_t left = padding + (i % columns) * (w + padding);
    for (std::int64_t y = 0; y < h; ++y) {
      for (std::int64_t x = 0; x < w; ++x) {
        const auto at = static_cast<std::size_t>((top + y) * 13 + left + x);
        EXPECT_EQ(px[at], mapped(values[static_cast<std::size_t>((i * h + y) * w + x)], -1, 1))
            << "tile " << i << " (" << y << ", " << x << ")";
        covered[at] = true;
      }
    }
  }
  // Padding and the empty sixth tile are 0.
  for (std::size_t at = 0; at < px.size(); ++at) {
    if (!covered[at]) {
      EXPECT_EQ(px[at], 0) << "pixel " << at;
    }
  }
  EXPECT_EQ(px[static_cast<std::size_t>(1 * 13 + 1)], 0);  // tile 0's first value is -1
  EXPECT_EQ(px[static_cast<std::size_t>(5 * 13 + 6)],
            mapped(values[28], -1, 1));  // tile 4 (1, 1): top 4, left 5
}

TEST(ImageGridTest, RgbChannelsStayApartAndDefaultsPadTwo) {
  // Two 3-channel 1x1 images in f64 with the default range [-1, 1] and padding 2.
  const Tensor images = from_vector(std::vector<double>{-1.0, 0.0, 1.0, 0.5, -0.5, 0.25}, {2, 3, 1, 1});
  const Tensor grid = io::image_grid(images, 2);
  ASSERT_EQ(grid.shape(), (Shape{3, 1 + 2 * 2, 2 * 3 + 2}));  // [3, 5, 8]
  const std::vector<std::uint8_t> px = pixels_of(grid);
  const auto at = [](std::int64_t c, std::int64_t y, std::int64_t x) {
    return static_cast<std::size_t>((c * 5 + y) * 8 + x);
  };
  EXPECT_EQ(px[at(0, 2, 2)], 0);
  EXPECT_EQ(px[at(1, 2, 2)], 128);  // 127.5 rounds up
  EXPECT_EQ(px[at(2, 2, 2)], 255);
  EXPECT_EQ(px[at(0, 2, 5)], mapped(0.5, -1, 1));
  EXPECT_EQ(px[at(1, 2, 5)], mapped(-0.5, -1, 1));
  EXPECT_EQ(px[at(2, 2, 5)], mapped(0.25, -1, 1));
  std::int64_t nonzero = 0;
  for (std::uint8_t v : px) nonzero += v != 0;
  EXPECT_EQ(nonzero, 5);  // the six pixels minus the one at -1
}

TEST(ImageGridTest, ValuesSaturateAndColumnsClampToTheBatch) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const Tensor images = from_vector(std::vector<float>{-5.0f, 7.0f, 0.3f, nan}, {1, 1, 1, 4});
  const Tensor grid = io::image_grid(images, 10, 0.0, 1.0, 0);  // one image: columns clamp to 1
  ASSERT_EQ(grid.shape(), (Shape{1, 1, 4}));
  EXPECT_EQ(pixels_of(grid), (std::vector<std::uint8_t>{0, 255, 77, 0}));  // 0.3 * 255 = 76.5 -> 77
}

TEST(ImageGridTest, RejectsBadArguments) {
  EXPECT_THROW(io::image_grid(zeros({2, 1, 4}), 2), ValueError);
  EXPECT_THROW(io::image_grid(zeros({2, 2, 4, 4}), 2), ValueError);
  EXPECT_THROW(io::image_grid(zeros({2, 1, 4, 4}, DType::u8), 2), TypeError);
  EXPECT_THROW(io::image_grid(zeros({2, 1, 4, 4}), 0), ValueError);
  EXPECT_THROW(io::image_grid(zeros({2, 1, 4, 4}), 2, 1.0, 1.0), ValueError);
  EXPECT_THROW(io::image_grid(zeros({2, 1, 4, 4}), 2, -1.0, 1.0, -1), ValueError);
}

}  // namespace
}  // namespace lockstep
