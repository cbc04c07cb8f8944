// image_grid: tiles a batch into one u8 picture, mapping [lo, hi] to 0..255 with saturation.
#include "io/image/grid.h"

#include <algorithm>
#include <cmath>

#include "src/tensor/factories.h"

namespace lockstep::io {

namespace {

template <class T>
void fill_grid(const T* src, std::uint8_t* dst, std::int64_t n, std::int64_t channels, std::int64_t height,
               std::int64_t width, std::int64_t columns, std::int64_t padding, std::int64_t grid_h,
               std::int64_t grid_w, double lo, double hi) {
  const double scale = 255.0 / (hi - lo);
#pragma omp parallel for collapse(2) if (n * channels * height * width > (1 << 16))
  for (std::int64_t i = 0; i < n; ++i) {
    for (std::int64_t c = 0; c < channels; ++c) {
      const std::int64_t top = padding + (i / columns) * (height + padding);
      const std::int64_t left = padding + (i % columns) * (width + padding);
      const T* plane = src + (i * channels + c) * height * width;
      std::uint8_t* out = dst + c * grid_h * grid_w;
      for (std::int64_t y = 0; y < height; ++y) {
        const T* row = plane + y * width;
        std::uint8_t* out_row = out + (top + y) * grid_w + left;
        for (std::int64_t x = 0; x < width; ++x) {
          // NaN maps to 0 (std::clamp keeps NaN, the comparison below does not).
          const double v = (static_cast<double>(row[x]) - lo) * scale;
          const double clamped = v > 0.0 ? std::min(v, 255.0) : 0.0;
          out_row[x] = static_cast<std::uint8_t>(std::lround(clamped));
        }
      }
    }
  }
}

}  // namespace

Tensor image_grid(const Tensor& images, std::int64_t columns, double lo, double hi, std::int64_t padding) {
  LOCKSTEP_CHECK(images.dim() == 4 && images.size(0) > 0, ValueError,
                 "image_grid: expected images [N,C,H,W] with N > 0, but got ", shape_str(images.shape()));
  LOCKSTEP_CHECK(images.size(1) == 1 || images.size(1) == 3, ValueError,
                 "image_grid: expected 1 or 3 channels, but got ", images.size(1), " in ",
                 shape_str(images.shape()));
  LOCKSTEP_CHECK(is_floating(images.dtype()), TypeError,
                 "image_grid: expected floating-point images, but got ", dtype_name(images.dtype()));
  LOCKSTEP_CHECK(columns > 0, ValueError, "image_grid: expected columns > 0, but got ", columns);
  LOCKSTEP_CHECK(padding >= 0, ValueError, "image_grid: expected padding >= 0, but got ", padding);
  LOCKSTEP_CHECK(hi > lo, ValueError, "image_grid: expected lo < hi, but got lo = ", lo, ", hi = ", hi);
  const std::int64_t n = images.size(0);
  const std::int64_t channels = images.size(1);
  const std::int64_t height = images.size(2);
  const std::int64_t width = images.size(3);
  const std::int64_t cols = std::min(columns, n);
  const std::int64_t rows = (n + cols - 1) / cols;
  const std::int64_t grid_h = rows * (height + padding) + padding;
  const std::int64_t grid_w = cols * (width + padding) + padding;
  Tensor grid = zeros({channels, grid_h, grid_w}, DType::u8);
  Tensor src = images.detach().to(kCPU).contiguous();
  std::uint8_t* dst = grid.data<std::uint8_t>();
  dispatch_floating("image_grid", src.dtype(), [&](auto tag) {
    using T = decltype(tag);
    fill_grid(src.data<T>(), dst, n, channels, height, width, cols, padding, grid_h, grid_w, lo, hi);
  });
  return grid;
}

}  // namespace lockstep::io
