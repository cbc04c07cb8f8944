// Tiling a batch of images into one picture (GAN samples, data set previews).
#pragma once

#include <cstdint>

#include "src/tensor/tensor.h"

namespace lockstep::io {

// Lays images [N,C,H,W] (f32 or f64) row by row into a grid of `columns` columns (at most N; rows =
// ceil(N / columns)) with `padding` pixels of 0 between tiles and around the border: u8 [C, rows * (H +
// padding) + padding, columns * (W + padding) + padding]. Values map linearly from [lo, hi] to 0..255,
// rounded to nearest and saturated.
Tensor image_grid(const Tensor& images, std::int64_t columns, double lo = -1.0, double hi = 1.0,
                  std::int64_t padding = 2);

}  // namespace lockstep::io
