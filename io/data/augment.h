// Per-sample image augmentation fused with the u8 -> f32 conversion: centred padding, random crop with
// zero padding, random horizontal flip and per-channel normalisation in one pass over the output, then
// optional Gaussian input noise; and optional label noise. The random choices of a sample come from Philox
// at (seed, epoch, sample index) only (label noise: (seed, sample index), the same every epoch), so they
// never depend on threads, ranks, batch composition or prefetch timing.
#pragma once

#include <cstdint>
#include <vector>

namespace lockstep::io {

enum class Flip : std::uint8_t { kNo, kHorizontal /*mirror left-right with probability 1/2*/ };

// What to do to each image. Padding is in pixels of value 0 before normalisation (as torchvision's Pad and
// RandomCrop(padding=...) before Normalize), so a padded pixel of channel c becomes -mean[c] / std[c].
struct Augmentation {
  std::int64_t pad_to = 0;        // zero-pad centred to pad_to x pad_to (28 -> 32 for DCGAN); 0 = off
  std::int64_t crop_padding = 0;  // random crop of the (padded) size after zero-padding each side by this
  Flip flip = Flip::kNo;          // random horizontal flip
  std::vector<double> mean = {},
                      std = {};  // normalise (pixel / 255 - mean[c]) / std[c]; empty = the data set's
  double input_noise = 0.0;      // std of N(0, std^2) noise added to every normalised value; 0 = off
  // Probability that a sample's label is replaced, once for all epochs, by a class drawn uniformly from
  // [0, classes) (which may be its own); 0 = off. Needs classes >= 1.
  double label_noise = 0.0;
  std::int64_t classes = 0;
};

// An Augmentation resolved against an image geometry and a seed: output size and per-channel lookup
// tables fixed. Immutable after construction; thread-safe.
class Augmenter {
 public:
  // `mean`/`std` are used when the augmentation gives none; one value applies to every channel.
  Augmenter(const Augmentation& augmentation, std::int64_t channels, std::int64_t height, std::int64_t width,
            const std::vector<double>& default_mean, const std::vector<double>& default_std,
            std::uint64_t seed);

  std::int64_t channels() const { return channels_; }
  std::int64_t out_height() const { return out_height_; }
  std::int64_t out_width() const { return out_width_; }
  std::int64_t in_elements() const { return channels_ * height_ * width_; }
  std::int64_t out_elements() const { return channels_ * out_height_ * out_width_; }

  // Reads one u8 image [C,H,W] and writes the f32 result [C,out_height,out_width]; `sample` is the
  // sample's index in the data set.
  void apply(const std::uint8_t* image, std::int64_t epoch, std::int64_t sample, float* out) const;
  // The label the loader reports for `sample` (its index in the data set) whose stored label is `label`.
  std::int64_t label(std::int64_t label, std::int64_t sample) const;

 private:
  std::int64_t channels_, height_, width_;
  std::int64_t out_height_, out_width_;
  std::int64_t top_, left_;  // where the image sits in the centred padding
  std::int64_t crop_padding_;
  Flip flip_;
  double input_noise_;
  double label_noise_;
  std::int64_t classes_;
  std::uint64_t seed_;
  std::vector<float> lut_;  // [C][256]: normalised value of each pixel value
};

}  // namespace lockstep::io
