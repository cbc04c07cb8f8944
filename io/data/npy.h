// Reader of NumPy .npy files (format versions 1, 2 and 3, C order, little-endian) holding u8 images and
// integer labels.
#pragma once

#include <filesystem>

#include "io/data/convert.h"

namespace lockstep::io {

// Reads images (descr '|u1') and labels (descr '<i8', '<i4' or '|u1', shape [N]) into images u8
// [N,C,H,W] and labels i64 [N]. Accepted image shapes: [N,H,W] (one channel), and [N,C,H,W] with
// NpyLayout::kNCHW or [N,H,W,C] with NpyLayout::kNHWC. Either file may be gzip-compressed. IoError naming
// the file for a missing file, a bad magic or header, another dtype, fortran_order True, another shape, a
// size other than the header says, negative labels or differing image and label counts.
ImageSet read_npy(const std::filesystem::path& images_path, const std::filesystem::path& labels_path,
                  NpyLayout layout = NpyLayout::kNCHW);

}  // namespace lockstep::io
