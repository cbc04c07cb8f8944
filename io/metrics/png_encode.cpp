// PNG encoding into memory with libpng's simplified write API (no setjmp/longjmp here: the simplified API
// reports failure through its return value and png_image::message).
#include "io/metrics/png_encode.h"

#include <png.h>

#include <cstring>
#include <string>

namespace lockstep::io {

std::vector<std::uint8_t> encode_png(const Tensor& image) {
  LOCKSTEP_CHECK(image.dtype() == DType::u8, TypeError, "encode_png: expected a u8 image, but got ",
                 dtype_name(image.dtype()), ". Map values to 0..255 first (e.g. image_grid)");
  LOCKSTEP_CHECK(image.dim() == 3 && (image.size(0) == 1 || image.size(0) == 3) && image.size(1) > 0 &&
                     image.size(2) > 0,
                 ValueError, "encode_png: expected a non-empty image [C,H,W] with C = 1 or 3, but got ",
                 shape_str(image.shape()));
  LOCKSTEP_CHECK(image.size(1) <= PNG_UINT_31_MAX && image.size(2) <= PNG_UINT_31_MAX / 3, ValueError,
                 "encode_png: expected an image PNG can hold, but got ", shape_str(image.shape()));
  const std::int64_t channels = image.size(0);
  // Interleave [C,H,W] into rows of H x W x C (a permuted contiguous copy; free for C = 1).
  const Tensor hwc = image.to(kCPU).permute({1, 2, 0}).contiguous();

  png_image png;
  std::memset(&png, 0, sizeof(png));
  png.version = PNG_IMAGE_VERSION;
  png.width = static_cast<png_uint_32>(image.size(2));
  png.height = static_cast<png_uint_32>(image.size(1));
  png.format = channels == 1 ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;
  // An upper bound on the encoded size, so one compression pass suffices; shrunk to the real size below.
  png_alloc_size_t size = PNG_IMAGE_PNG_SIZE_MAX(png);
  std::vector<std::uint8_t> out(size);
  const int ok = png_image_write_to_memory(&png, out.data(), &size, /*convert_to_8_bit=*/0,
                                           hwc.data<std::uint8_t>(), /*row_stride=*/0, /*colormap=*/nullptr);
  const std::string message = png.message;
  png_image_free(&png);
  if (ok == 0) {
    throw IoError(str_cat("encode_png: cannot encode a ", shape_str(image.shape()), " image: ", message),
                  "<memory>");
  }
  out.resize(size);
  return out;
}

}  // namespace lockstep::io
