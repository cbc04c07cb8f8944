// Convolution layers over NCHW tensors: Conv2d and ConvTranspose2d (square kernels, grouped, strided,
// dilated), on the differentiable ops of src/ops/conv.h.
#pragma once

#include <cstdint>
#include <string>

#include "src/nn/init.h"
#include "src/nn/module.h"
#include "src/ops/conv.h"

namespace lockstep::nn {

struct Conv2dOptions {
  std::int64_t in = 0;
  std::int64_t out = 0;
  std::int64_t kernel = 0;
  std::int64_t stride = 1;
  std::int64_t padding = 0;
  std::int64_t dilation = 1;
  std::int64_t groups = 1;
  Bias bias = Bias::kYes;
  PaddingMode padding_mode = PaddingMode::kZeros;
};

// Owns weight [out, in / groups, k, k] and bias [out] (undefined with Bias::kNo), both
// U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with fan_in = in / groups * k * k, as in PyTorch. Not thread-safe.
class Conv2d : public Module {
 public:
  explicit Conv2d(Conv2dOptions options);

  // x [N, in, H, W] -> [N, out, P, Q] (conv_output_size per axis).
  Tensor forward(const Tensor& input) override;

  const Tensor& weight() const { return weight_; }
  const Tensor& bias() const { return bias_; }
  const Conv2dOptions& options() const { return options_; }

 protected:
  Conv2d(std::string type_name, Conv2dOptions options);  // for layers that change the weight (MaskedConv2d)
  std::string describe() const override;

 private:
  Conv2dOptions options_;
  Tensor weight_;
  Tensor bias_;
};

// PixelCNN's masked convolution (van den Oord et al. 2016): the weight is multiplied in forward by a mask that
// keeps, of each k x k kernel (k odd), only the positions above the centre and left of it on the centre's row
// (type A), and the centre too (type B), so that output pixel (i, j) depends only on the input pixels before
// it in raster order (type A), or before and at it (type B). The gradient of the masked positions is 0. Every
// channel sees every channel (one autoregressive order over pixels, not over channels). Not thread-safe.
enum class MaskType : std::uint8_t { kA, kB };
class MaskedConv2d : public Conv2d {
 public:
  MaskedConv2d(MaskType type, Conv2dOptions options);

  Tensor forward(const Tensor& input) override;
  MaskType type() const { return type_; }

 protected:
  std::string describe() const override;

 private:
  MaskType type_;
  Tensor mask_;  // [1, 1, k, k] of the weight's dtype at construction (converted in forward when it differs)
};

struct ConvTranspose2dOptions {
  std::int64_t in = 0;
  std::int64_t out = 0;
  std::int64_t kernel = 0;
  std::int64_t stride = 1;
  std::int64_t padding = 0;
  std::int64_t output_padding = 0;
  std::int64_t groups = 1;
  std::int64_t dilation = 1;
  Bias bias = Bias::kYes;
};

// Owns weight [in, out / groups, k, k] and bias [out] (undefined with Bias::kNo), both
// U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with PyTorch's fan_in = out / groups * k * k. Not thread-safe.
class ConvTranspose2d : public Module {
 public:
  explicit ConvTranspose2d(ConvTranspose2dOptions options);

  // x [N, in, H, W] -> [N, out, Ho, Wo] (conv_transpose_output_size per axis).
  Tensor forward(const Tensor& input) override;

  const Tensor& weight() const { return weight_; }
  const Tensor& bias() const { return bias_; }
  const ConvTranspose2dOptions& options() const { return options_; }

 protected:
  std::string describe() const override;

 private:
  ConvTranspose2dOptions options_;
  Tensor weight_;
  Tensor bias_;
};

}  // namespace lockstep::nn
