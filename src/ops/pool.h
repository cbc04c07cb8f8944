// Differentiable 2-D pooling and resampling of NCHW tensors: max and average pooling, global average
// pooling, max unpooling, nearest and bilinear upsampling.
#pragma once

#include "src/ops/pad.h"

namespace lockstep {

// Max pooling outputs: values [N, C, P, Q] and i64 indices [N, C, P, Q] into each H*W input plane.
struct MaxPool2dResult {
  Tensor values;
  Tensor indices;
};

// x [N, C, H, W] -> [N, C, P, Q] with P = floor((H + 2 * padding - kernel) / stride) + 1 (the same for Q).
// Padding counts as -inf and must be at most half the kernel. Indices are not differentiable; NaN wins.
MaxPool2dResult max_pool2d(const Tensor& x, Size2d kernel, Size2d stride, Size2d padding = {0, 0});

// Average pooling with the same geometry. With count_include_pad the divisor is the window size
// (padding counted as zeros), without it the number of input elements in the window.
Tensor avg_pool2d(const Tensor& x, Size2d kernel, Size2d stride, Size2d padding = {0, 0},
                  CountIncludePad count_include_pad = CountIncludePad::kYes);

// Mean over H and W: x [N, C, H, W] -> [N, C, 1, 1] (adaptive average pooling to 1x1).
Tensor global_avg_pool2d(const Tensor& x);

// The inverse of max pooling: x [N, C, P, Q] placed at `indices` (i64 [N, C, P, Q] into each plane, as
// returned by max_pool2d) of zeros [N, C, H, W], output_size = {H, W}. Values that share an index (from
// overlapping windows) are summed. Indices outside the plane raise IndexError.
Tensor max_unpool2d(const Tensor& x, const Tensor& indices, Size2d output_size);

// Nearest-neighbour resampling: x [N, C, H, W] -> [N, C, P, Q], destination i reads source floor(i * H / P).
Tensor upsample_nearest2d(const Tensor& x, Size2d output_size);
// The same with output size floor(H * scale) x floor(W * scale) (PyTorch's recompute_scale_factor=True).
Tensor upsample_nearest2d(const Tensor& x, double scale);

// Bilinear resampling to output_size, PyTorch's source coordinates: align_corners maps the corner pixels
// onto each other (src = dst * (H - 1) / (P - 1)); otherwise src = max((dst + 0.5) * H / P - 0.5, 0).
Tensor upsample_bilinear2d(const Tensor& x, Size2d output_size, AlignCorners align = AlignCorners::kNo);

}  // namespace lockstep
