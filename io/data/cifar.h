// Reader of the CIFAR-10 binary batches (data_batch_1..5.bin, test_batch.bin): 3073-byte records of one
// label byte followed by a 3x32x32 u8 image (planes R, G, B).
#pragma once

#include <filesystem>
#include <string>

#include "io/data/convert.h"

namespace lockstep::io {

// Reads split "train" (data_batch_1.bin .. data_batch_5.bin) or "test" (test_batch.bin) from `dir`, or from
// `dir`/cifar-10-batches-bin when `dir` holds that directory, into images u8 [N,3,32,32] and labels i64 [N].
// IoError naming the file for a missing batch, a size that is not a positive multiple of 3073 bytes, or a
// label outside [0, 10); ValueError for another split name.
ImageSet read_cifar10(const std::filesystem::path& dir, const std::string& split);

}  // namespace lockstep::io
