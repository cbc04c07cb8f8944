// Reader of IDX image and label files (MNIST, Fashion-MNIST), raw or gzip-compressed: big-endian header
// checked against the data size, payload read straight into the image tensor.
#include "io/data/idx.h"

#include <array>
#include <cstdint>
#include <cstdio>
#include <string>

#include "src/core/error.h"
#include "src/tensor/factories.h"

namespace lockstep::io {
namespace {

constexpr std::uint32_t kImagesMagic = 0x00000803;  // u8 data, 3 dimensions
constexpr std::uint32_t kLabelsMagic = 0x00000801;  // u8 data, 1 dimension

std::string hex32(std::uint32_t value) {
  std::array<char, 11> text{};
  std::snprintf(text.data(), text.size(), "0x%08x", value);
  return text.data();
}

// Reads the magic and the dimensions of an IDX header, checking both.
Shape read_header(SourceFile& file, std::uint32_t magic, const char* what) {
  const std::int64_t ndims = magic & 0xff;
  std::array<std::uint8_t, 4 + 4 * 3> header{};
  const std::int64_t header_bytes = 4 + 4 * ndims;
  const std::int64_t got = file.read(header.data(), header_bytes);
  auto word = [&](std::int64_t i) {
    const std::uint8_t* b = header.data() + 4 * i;
    return std::uint32_t{b[0]} << 24 | std::uint32_t{b[1]} << 16 | std::uint32_t{b[2]} << 8 |
           std::uint32_t{b[3]};
  };
  if (got >= 4 && word(0) != magic) {
    const std::uint32_t other = magic == kImagesMagic ? kLabelsMagic : kImagesMagic;
    const std::string hint = word(0) == other ? " Pass the images file first and the labels file second."
                                              : " It is not an IDX file of u8 data.";
    throw IoError(str_cat("read_idx: expected magic ", hex32(magic), " (", what, ") in ", file.describe(),
                          ", but got ", hex32(word(0)), ".", hint),
                  file.path().string());
  }
  if (got < header_bytes) {
    throw IoError(
        str_cat("read_idx: expected a ", header_bytes, "-byte header (", what, ") in ", file.describe(),
                ", but the file holds only ", got, " bytes. The file is truncated."),
        file.path().string());
  }
  Shape dims;
  for (std::int64_t i = 1; i <= ndims; ++i) dims.push_back(word(i));
  for (const std::int64_t d : dims) {
    if (d == 0) {
      throw IoError(str_cat("read_idx: expected positive dimensions in ", file.describe(),
                            ", but the header says ", shape_str(dims)),
                    file.path().string());
    }
  }
  return dims;
}

}  // namespace

ImageSet read_idx(const std::filesystem::path& images_path, const std::filesystem::path& labels_path) {
  SourceFile images_file(images_path, "read_idx");
  const Shape image_dims = read_header(images_file, kImagesMagic, "u8 images, 3 dimensions");
  SourceFile labels_file(labels_path, "read_idx");
  const Shape label_dims = read_header(labels_file, kLabelsMagic, "u8 labels, 1 dimension");
  const std::int64_t n = image_dims[0];
  if (label_dims[0] != n) {
    throw IoError(str_cat("read_idx: expected as many labels as images, but labels file '",
                          labels_path.string(), "' holds ", label_dims[0], " labels and images file '",
                          images_path.string(), "' holds ", n, " images"),
                  labels_path.string());
  }
  const std::string image_layout =
      str_cat("16-byte header + ", n, " images of ", image_dims[1], "x", image_dims[2], " u8");
  const std::int64_t image_bytes = images_file.payload_bytes(image_dims, 1);
  images_file.check_rest(image_bytes, image_layout);
  const std::string label_layout = str_cat("8-byte header + ", n, " u8 labels");
  labels_file.check_rest(n, label_layout);

  ImageSet set;
  set.images = empty({n, 1, image_dims[1], image_dims[2]}, DType::u8);
  images_file.read_rest(set.images.data(), image_bytes, image_layout);
  Tensor labels = empty({n}, DType::u8);
  labels_file.read_rest(labels.data(), n, label_layout);
  set.labels = labels.to(DType::i64);
  for (const auto* path : {&images_path, &labels_path}) {
    set.source_files.push_back(std::filesystem::absolute(*path).lexically_normal().string());
    set.source_xxh64.push_back(file_xxh64(*path));
  }
  return set;
}

}  // namespace lockstep::io
