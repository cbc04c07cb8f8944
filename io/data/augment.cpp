// The fused augmentation pass: each output row is the source row (shifted by the crop, maybe mirrored)
// looked up in a per-channel table, with the table's value of pixel 0 where the crop leaves the image.
#include "io/data/augment.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "io/data/sampler.h"
#include "src/core/error.h"

namespace lockstep::io {
namespace {

// The per-channel value of `values` (one value = every channel); `what` names it in errors.
std::vector<double> per_channel(const std::vector<double>& values, std::int64_t channels, const char* what) {
  LOCKSTEP_CHECK(values.size() == 1 || static_cast<std::int64_t>(values.size()) == channels, ValueError,
                 "Augmenter: expected ", what, " with 1 or ", channels, " values (one per channel), but got ",
                 values.size(), " values");
  if (values.size() == 1) return std::vector<double>(static_cast<std::size_t>(channels), values[0]);
  return values;
}

// A uniform double in [0, 1) from the top 53 bits of a word.
double unit(std::uint64_t word) { return static_cast<double>(word >> 11) * 0x1.0p-53; }

}  // namespace

Augmenter::Augmenter(const Augmentation& augmentation, std::int64_t channels, std::int64_t height,
                     std::int64_t width, const std::vector<double>& default_mean,
                     const std::vector<double>& default_std, std::uint64_t seed)
    : channels_(channels),
      height_(height),
      width_(width),
      crop_padding_(augmentation.crop_padding),
      flip_(augmentation.flip),
      input_noise_(augmentation.input_noise),
      label_noise_(augmentation.label_noise),
      classes_(augmentation.classes),
      seed_(seed) {
  LOCKSTEP_CHECK(std::isfinite(input_noise_) && input_noise_ >= 0.0, ValueError,
                 "Augmenter: expected input_noise >= 0 and finite, but got ", input_noise_);
  LOCKSTEP_CHECK(label_noise_ >= 0.0 && label_noise_ <= 1.0, ValueError,
                 "Augmenter: expected label_noise in [0, 1], but got ", label_noise_);
  LOCKSTEP_CHECK(label_noise_ == 0.0 || classes_ >= 1, ValueError,
                 "Augmenter: expected classes >= 1 for label noise, but got ", classes_);
  LOCKSTEP_CHECK(channels >= 1 && height >= 1 && width >= 1, ValueError,
                 "Augmenter: expected images with at least one channel, row and column, but got [", channels,
                 ", ", height, ", ", width, "]");
  const std::int64_t pad_to = augmentation.pad_to;
  LOCKSTEP_CHECK(pad_to == 0 || (pad_to >= height && pad_to >= width), ValueError,
                 "Augmenter: expected pad_to = 0 (off) or >= the image size ", height, "x", width,
                 ", but got ", pad_to, ". Padding never shrinks an image");
  LOCKSTEP_CHECK(crop_padding_ >= 0, ValueError, "Augmenter: expected crop_padding >= 0, but got ",
                 crop_padding_);
  out_height_ = pad_to == 0 ? height : pad_to;
  out_width_ = pad_to == 0 ? width : pad_to;
  top_ = (out_height_ - height) / 2;
  left_ = (out_width_ - width) / 2;

  const bool own = !augmentation.mean.empty() || !augmentation.std.empty();
  const std::vector<double>& mean_in = own ? augmentation.mean : default_mean;
  const std::vector<double>& std_in = own ? augmentation.std : default_std;
  LOCKSTEP_CHECK(
      !mean_in.empty() && !std_in.empty(), ValueError,
      "Augmenter: expected normalisation mean and std (both given, or both taken from the data set), "
      "but got ",
      mean_in.size(), " mean and ", std_in.size(), " std values. ",
      own ? "Give both augment mean and std" : "The data set file has no mean/std attributes; set them");
  const std::vector<double> mean = per_channel(mean_in, channels, "mean");
  const std::vector<double> stdev = per_channel(std_in, channels, "std");
  lut_.resize(static_cast<std::size_t>(channels * 256));
  for (std::int64_t c = 0; c < channels; ++c) {
    const double s = stdev[static_cast<std::size_t>(c)];
    LOCKSTEP_CHECK(s > 0.0, ValueError, "Augmenter: expected std > 0 for every channel, but channel ", c,
                   " has ", s);
    for (int v = 0; v < 256; ++v) {
      lut_[static_cast<std::size_t>(c * 256 + v)] =
          static_cast<float>((v / 255.0 - mean[static_cast<std::size_t>(c)]) / s);
    }
  }
}

void Augmenter::apply(const std::uint8_t* image, std::int64_t epoch, std::int64_t sample, float* out) const {
  std::int64_t dy = crop_padding_, dx = crop_padding_;  // crop origin in the zero-padded image
  bool mirror = false;
  if (crop_padding_ > 0 || flip_ == Flip::kHorizontal) {
    PhiloxStream stream(seed_, data_stream_counter(DataStream::kAugmentation, epoch),
                        static_cast<std::uint64_t>(sample) << 32);
    if (crop_padding_ > 0) {
      const auto range = static_cast<std::uint64_t>(2 * crop_padding_ + 1);
      dy = static_cast<std::int64_t>(stream.below(range));
      dx = static_cast<std::int64_t>(stream.below(range));
    }
    if (flip_ == Flip::kHorizontal) mirror = (stream.next32() & 1u) != 0;
  }
  // Output (y, x) reads image row y + row_shift and column x + col_shift (or col_shift - x when mirrored).
  const std::int64_t row_shift = dy - crop_padding_ - top_;
  const std::int64_t col_shift =
      mirror ? out_width_ - 1 + dx - crop_padding_ - left_ : dx - crop_padding_ - left_;
  // Output columns [x0, x1) fall inside the image.
  const std::int64_t x0 =
      mirror ? std::max<std::int64_t>(0, col_shift - width_ + 1) : std::max<std::int64_t>(0, -col_shift);
  const std::int64_t x1 =
      mirror ? std::min(out_width_, col_shift + 1) : std::min(out_width_, width_ - col_shift);
  for (std::int64_t c = 0; c < channels_; ++c) {
    const float* lut = lut_.data() + c * 256;
    const float zero = lut[0];
    for (std::int64_t y = 0; y < out_height_; ++y) {
      float* row = out + (c * out_height_ + y) * out_width_;
      const std::int64_t iy = y + row_shift;
      if (iy < 0 || iy >= height_ || x0 >= x1) {
        std::fill(row, row + out_width_, zero);
        continue;
      }
      const std::uint8_t* src = image + (c * height_ + iy) * width_;
      std::fill(row, row + x0, zero);
      if (mirror) {
        for (std::int64_t x = x0; x < x1; ++x) row[x] = lut[src[col_shift - x]];
      } else {
        for (std::int64_t x = x0; x < x1; ++x) row[x] = lut[src[x + col_shift]];
      }
      std::fill(row + x1, row + out_width_, zero);
    }
  }
  if (input_noise_ > 0.0) {
    // Box-Muller: each pair of uniforms gives two independent N(0, 1) values.
    PhiloxStream stream(seed_, data_stream_counter(DataStream::kInputNoise, epoch),
                        static_cast<std::uint64_t>(sample) << 32);
    const std::int64_t n = out_elements();
    for (std::int64_t i = 0; i < n; i += 2) {
      const double radius = input_noise_ * std::sqrt(-2.0 * std::log(1.0 - unit(stream.next64())));
      const double angle = 2.0 * std::numbers::pi * unit(stream.next64());
      out[i] += static_cast<float>(radius * std::cos(angle));
      if (i + 1 < n) out[i + 1] += static_cast<float>(radius * std::sin(angle));
    }
  }
}

std::int64_t Augmenter::label(std::int64_t label, std::int64_t sample) const {
  if (label_noise_ == 0.0) return label;
  PhiloxStream stream(seed_, data_stream_counter(DataStream::kLabelNoise, 0),
                      static_cast<std::uint64_t>(sample) << 32);
  if (unit(stream.next64()) >= label_noise_) return label;
  return static_cast<std::int64_t>(stream.below(static_cast<std::uint64_t>(classes_)));
}

}  // namespace lockstep::io
