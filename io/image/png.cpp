// PNG reading and writing with libpng. libpng reports errors by longjmp: every libpng call happens inside
// one function per direction that holds only trivially destructible locals, so the jump skips no
// destructor; the error text is kept in the job and turned into an IoError by the caller.
#include "io/image/png.h"

#include <png.h>

#include <cerrno>
#include <csetjmp>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "src/tensor/factories.h"

namespace lockstep::io {

namespace {

constexpr std::size_t kMessageSize = 256;
constexpr std::size_t kSignatureSize = 8;

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};
using FilePtr = std::unique_ptr<std::FILE, FileCloser>;

// What a libpng session works on; `message` receives libpng's error text.
struct PngJob {
  std::FILE* file = nullptr;
  char message[kMessageSize] = {};
};

struct WriteJob : PngJob {
  const std::uint8_t* pixels = nullptr;  // interleaved rows, H * W * C
  png_uint_32 width = 0;
  png_uint_32 height = 0;
  int channels = 0;
};

struct ReadJob : PngJob {
  std::vector<std::uint8_t>* pixels = nullptr;  // receives interleaved rows
  std::vector<png_bytep>* rows = nullptr;
  png_uint_32 width = 0;
  png_uint_32 height = 0;
  int channels = 0;
};

[[noreturn]] void on_error(png_structp png, png_const_charp message) {
  auto* job = static_cast<PngJob*>(png_get_error_ptr(png));
  std::snprintf(job->message, kMessageSize, "%s", message != nullptr ? message : "unknown libpng error");
  png_longjmp(png, 1);
}

// Warnings (e.g. a known-incorrect sRGB profile) do not stop decoding and are not printed.
void on_warning(png_structp /*png*/, png_const_charp /*message*/) {}

void set_message(PngJob& job, const char* message) {
  std::snprintf(job.message, kMessageSize, "%s", message);
}

bool write_with_libpng(WriteJob& job) {
  png_structp png =
      png_create_write_struct(PNG_LIBPNG_VER_STRING, static_cast<PngJob*>(&job), on_error, on_warning);
  if (png == nullptr) {
    set_message(job, "cannot create a libpng write structure");
    return false;
  }
  png_infop info = png_create_info_struct(png);
  if (info == nullptr) {
    png_destroy_write_struct(&png, nullptr);
    set_message(job, "cannot create a libpng info structure");
    return false;
  }
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    return false;
  }
  png_init_io(png, job.file);
  png_set_IHDR(png, info, job.width, job.height, 8,
               job.channels == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  const std::size_t row_bytes = static_cast<std::size_t>(job.width) * static_cast<std::size_t>(job.channels);
  for (png_uint_32 y = 0; y < job.height; ++y) {
    png_write_row(png, const_cast<png_bytep>(job.pixels + y * row_bytes));
  }
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return true;
}

bool read_with_libpng(ReadJob& job) {
  png_structp png =
      png_create_read_struct(PNG_LIBPNG_VER_STRING, static_cast<PngJob*>(&job), on_error, on_warning);
  if (png == nullptr) {
    set_message(job, "cannot create a libpng read structure");
    return false;
  }
  png_infop info = png_create_info_struct(png);
  if (info == nullptr) {
    png_destroy_read_struct(&png, nullptr, nullptr);
    set_message(job, "cannot create a libpng info structure");
    return false;
  }
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, &info, nullptr);
    return false;
  }
  png_init_io(png, job.file);
  png_set_sig_bytes(png, static_cast<int>(kSignatureSize));
  png_read_info(png, info);
  const png_byte color = png_get_color_type(png, info);
  const png_byte depth = png_get_bit_depth(png, info);
  if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
  if (depth == 16) png_set_scale_16(png);
  // A palette's tRNS chunk becomes an alpha channel when the palette is expanded: strip that one too.
  if ((color & PNG_COLOR_MASK_ALPHA) != 0 ||
      (color == PNG_COLOR_TYPE_PALETTE && png_get_valid(png, info, PNG_INFO_tRNS) != 0)) {
    png_set_strip_alpha(png);
  }
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  job.width = png_get_image_width(png, info);
  job.height = png_get_image_height(png, info);
  job.channels = png_get_channels(png, info);
  if (job.channels != 1 && job.channels != 3) {
    png_destroy_read_struct(&png, &info, nullptr);
    std::snprintf(job.message, kMessageSize,
                  "expected 1 (gray) or 3 (RGB) channels after decoding, but got %d", job.channels);
    return false;
  }
  const std::size_t row_bytes = png_get_rowbytes(png, info);
  try {
    job.pixels->resize(row_bytes * job.height);
    job.rows->resize(job.height);
  } catch (...) {
    png_destroy_read_struct(&png, &info, nullptr);
    throw;
  }
  for (png_uint_32 y = 0; y < job.height; ++y) (*job.rows)[y] = job.pixels->data() + y * row_bytes;
  png_read_image(png, job.rows->data());
  png_read_end(png, nullptr);
  png_destroy_read_struct(&png, &info, nullptr);
  return true;
}

[[noreturn]] void fail(const char* what, const std::string& file, const std::string& detail) {
  throw IoError(str_cat("png: cannot ", what, " '", file, "': ", detail), file);
}

}  // namespace

void write_png(const std::filesystem::path& path, const Tensor& image) {
  const std::string name = path.string();
  LOCKSTEP_CHECK(image.dtype() == DType::u8, TypeError, "write_png: expected a u8 image, but got ",
                 dtype_name(image.dtype()), " for '", name,
                 "'. Map values to 0..255 first (e.g. image_grid)");
  LOCKSTEP_CHECK(image.dim() == 3 && (image.size(0) == 1 || image.size(0) == 3) && image.size(1) > 0 &&
                     image.size(2) > 0,
                 ValueError, "write_png: expected a non-empty image [C,H,W] with C = 1 or 3, but got ",
                 shape_str(image.shape()), " for '", name, "'");
  const std::int64_t channels = image.size(0);
  // Interleave [C,H,W] into rows of H x W x C (a permuted contiguous copy; free for C = 1).
  const Tensor hwc = image.to(kCPU).permute({1, 2, 0}).contiguous();

  FilePtr file(std::fopen(name.c_str(), "wb"));
  if (!file) fail("open for writing", name, std::strerror(errno));
  WriteJob job;
  job.file = file.get();
  job.pixels = hwc.data<std::uint8_t>();
  job.width = static_cast<png_uint_32>(image.size(2));
  job.height = static_cast<png_uint_32>(image.size(1));
  job.channels = static_cast<int>(channels);
  if (!write_with_libpng(job)) fail("write", name, job.message);
  if (std::fclose(file.release()) != 0) fail("finish writing", name, std::strerror(errno));
}

Tensor read_png(const std::filesystem::path& path) {
  const std::string name = path.string();
  FilePtr file(std::fopen(name.c_str(), "rb"));
  if (!file) fail("open for reading", name, std::strerror(errno));
  png_byte signature[kSignatureSize] = {};
  if (std::fread(signature, 1, kSignatureSize, file.get()) != kSignatureSize ||
      png_sig_cmp(signature, 0, kSignatureSize) != 0) {
    fail("read", name, "not a PNG file (bad signature)");
  }
  std::vector<std::uint8_t> pixels;
  std::vector<png_bytep> rows;
  ReadJob job;
  job.file = file.get();
  job.pixels = &pixels;
  job.rows = &rows;
  if (!read_with_libpng(job)) fail("read", name, job.message);

  const auto channels = static_cast<std::int64_t>(job.channels);
  const auto height = static_cast<std::int64_t>(job.height);
  const auto width = static_cast<std::int64_t>(job.width);
  Tensor out = empty({channels, height, width}, DType::u8);
  std::uint8_t* dst = out.data<std::uint8_t>();
  const std::int64_t plane = height * width;
  for (std::int64_t i = 0; i < plane; ++i) {
    for (std::int64_t c = 0; c < channels; ++c)
      dst[c * plane + i] = pixels[static_cast<std::size_t>(i * channels + c)];
  }
  return out;
}

}  // namespace lockstep::io
