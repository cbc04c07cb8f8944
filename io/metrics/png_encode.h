// PNG encoding into memory (libpng's simplified API), for images embedded in metric files such as
// TensorBoard image summaries. io/image/png.h writes and reads PNG files.
#pragma once

#include <cstdint>
#include <vector>

#include "src/tensor/tensor.h"

namespace lockstep::io {

// Encodes `image` (u8 [C,H,W], C = 1 gray or 3 RGB, any strides/device) as the bytes of an 8-bit PNG.
// TypeError/ValueError for another dtype or shape, IoError when libpng fails.
std::vector<std::uint8_t> encode_png(const Tensor& image);

}  // namespace lockstep::io
