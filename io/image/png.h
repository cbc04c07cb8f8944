// PNG files through libpng: 8-bit gray or RGB images as u8 [C,H,W] tensors.
#pragma once

#include <filesystem>

#include "src/tensor/tensor.h"

namespace lockstep::io {

// Writes `image` (u8 [C,H,W], C = 1 gray or 3 RGB, any strides/device) as an 8-bit PNG. IoError naming the
// file when it cannot be written, TypeError/ValueError for another dtype or shape.
void write_png(const std::filesystem::path& path, const Tensor& image);

// Reads a PNG as u8 [C,H,W] with C = 1 (gray) or 3 (RGB): palettes become RGB, 16-bit samples are scaled
// to 8 bits, low bit depths are expanded, alpha and transparency are dropped. IoError naming the file on
// a missing, non-PNG or corrupt file.
Tensor read_png(const std::filesystem::path& path);

}  // namespace lockstep::io
