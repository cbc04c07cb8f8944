// Reader of an image-folder data set: one subdirectory of PNG files per class, the sorted subdirectory
// names being the class names and their positions the labels (as torchvision's ImageFolder).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "io/data/convert.h"

namespace lockstep::io {

// The class names: the subdirectories of `dir` in byte order (hidden ones skipped). IoError naming `dir`
// when it is missing or holds no subdirectory.
std::vector<std::string> image_folder_classes(const std::filesystem::path& dir);

// Reads every *.png file (extension in any case; other files are ignored) of every class subdirectory,
// sorted by class then file name, into images u8 [N,C,H,W] and labels i64 [N]. All images must share one
// size and channel count: IoError naming the first odd file otherwise, and for an unreadable PNG or a class
// without PNG files. Provenance is recorded per class: source_files holds each class directory and
// source_xxh64 the XXH64 of its files' names and bytes (name, NUL, 8-byte little-endian size, bytes, in
// file order), so a data set of many small files keeps two short attributes.
ImageSet read_image_folder(const std::filesystem::path& dir);

}  // namespace lockstep::io
