// Reader of the IDX format of MNIST and Fashion-MNIST (big-endian header, u8 data), raw or gzip-compressed.
#pragma once

#include <filesystem>

#include "io/data/convert.h"

namespace lockstep::io {

// Reads an images file (magic 0x00000803: N x rows x cols u8) and a labels file (magic 0x00000801: N u8)
// into images u8 [N,1,rows,cols] and labels i64 [N]. Each file may be gzip-compressed. IoError naming the
// file, with the expected and found values, for a missing file, a wrong magic, a zero dimension, a size
// other than the header says (truncated or trailing bytes) or differing image and label counts.
ImageSet read_idx(const std::filesystem::path& images_path, const std::filesystem::path& labels_path);

}  // namespace lockstep::io
