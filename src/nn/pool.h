// Pooling and resampling layers over NCHW tensors: MaxPool2d, AvgPool2d, GlobalAvgPool2d, Upsample.
#pragma once

#include <cstdint>
#include <string>

#include "src/nn/module.h"

namespace lockstep::nn {

enum class UpsampleMode : std::uint8_t { kNearest, kBilinear };

// Square max pooling; stride 0 means stride = kernel. No parameters. Not thread-safe.
class MaxPool2d : public Module {
 public:
  explicit MaxPool2d(std::int64_t kernel, std::int64_t stride = 0, std::int64_t padding = 0);

  Tensor forward(const Tensor& input) override;

 protected:
  std::string describe() const override;

 private:
  std::int64_t kernel_;
  std::int64_t stride_;
  std::int64_t padding_;
};

// Square average pooling (padding counted as zeros, as PyTorch's default); stride 0 means stride = kernel.
// No parameters. Not thread-safe.
class AvgPool2d : public Module {
 public:
  explicit AvgPool2d(std::int64_t kernel, std::int64_t stride = 0, std::int64_t padding = 0);

  Tensor forward(const Tensor& input) override;

 protected:
  std::string describe() const override;

 private:
  std::int64_t kernel_;
  std::int64_t stride_;
  std::int64_t padding_;
};

// [N, C, H, W] -> [N, C, 1, 1]. No parameters. Not thread-safe.
class GlobalAvgPool2d : public Module {
 public:
  GlobalAvgPool2d();

  Tensor forward(const Tensor& input) override;
};

// Integer-factor upsampling [N, C, H, W] -> [N, C, H * scale, W * scale]; bilinear without aligned corners
// (PyTorch's default). No parameters. Not thread-safe.
class Upsample : public Module {
 public:
  explicit Upsample(std::int64_t scale, UpsampleMode mode = UpsampleMode::kNearest);

  Tensor forward(const Tensor& input) override;

 protected:
  std::string describe() const override;

 private:
  std::int64_t scale_;
  UpsampleMode mode_;
};

}  // namespace lockstep::nn
