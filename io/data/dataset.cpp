// Opening and validating a data set split, and gathering rows from memory or from the file.
#include "io/data/dataset.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include "src/core/error.h"
#include "src/core/strings.h"

namespace lockstep::io {
namespace {

constexpr const char* kOpen = "ImageDataset::open";

// Throws IoError(file, object) with the message str_cat(parts...).
template <class... Parts>
[[noreturn]] void fail_io(const std::string& file, const std::string& object, const Parts&... parts) {
  throw IoError(str_cat(parts...), file, object);
}

// "[a, b]": the members of a group, for messages.
std::string listed(const std::vector<std::string>& names) { return str_cat("[", join(names, ", "), "]"); }

// Opens `group`/`name` and checks its dtype and rank; `file` and `object` name it in errors.
h5::Dataset open_checked(const h5::Group& group, const std::string& name, DType dtype, std::int64_t rank,
                         const std::string& file, const std::string& object, const char* layout) {
  if (!group.contains(name)) {
    fail_io(file, object, kOpen, ": expected a dataset ", object, " ", layout, " in ", file,
            ", but the group has ", listed(group.children()));
  }
  h5::Dataset dataset = group.dataset(name);
  LOCKSTEP_CHECK(dataset.dtype() == dtype, TypeError, kOpen, ": expected ", object, " in ", file, " to be ",
                 layout, ", but its dtype is ", dtype_name(dataset.dtype()));
  const auto got_rank = static_cast<std::int64_t>(dataset.shape().size());
  if (got_rank != rank) {
    fail_io(file, object, kOpen, ": expected ", object, " in ", file, " to be ", layout,
            ", but its shape is ", shape_str(dataset.shape()));
  }
  return dataset;
}

// The xxh64 attribute of `dataset`, or "" when it has none.
std::string stored_checksum(const h5::Dataset& dataset) {
  return dataset.has_attribute(kArrayChecksumAttribute) ? dataset.attribute_string(kArrayChecksumAttribute)
                                                        : std::string();
}

std::string hex64(XXH64_hash_t hash) {
  std::array<char, 17> hex{};
  std::snprintf(hex.data(), hex.size(), "%016llx", static_cast<unsigned long long>(hash));
  return hex.data();
}

// Throws checksum_error when `dataset` stores a checksum that the bytes read do not have.
void verify_checksum(const h5::Dataset& dataset, std::span<const std::uint8_t> bytes) {
  ArrayChecksum check{dataset.object_path(), stored_checksum(dataset), ""};
  if (!check.stored()) return;
  check.actual = bytes_xxh64(bytes);
  if (!check.ok()) throw checksum_error(kOpen, dataset.file_name(), check);
}

}  // namespace

std::string bytes_xxh64(std::span<const std::uint8_t> bytes) {
  return hex64(XXH64(bytes.data(), bytes.size(), 0));
}

IoError checksum_error(const std::string& function, const std::string& file, const ArrayChecksum& check) {
  return IoError(str_cat(function, ": expected ", check.object, " in ", file, " to hash to xxh64 ",
                         check.expected, " (its ", kArrayChecksumAttribute,
                         " attribute, written by `lockstep convert`), but its ", "bytes hash to ",
                         check.actual, ": the file is damaged. Re-create it with `lockstep ", "convert`"),
                 file, check.object);
}

std::vector<ArrayChecksum> split_checksums(const std::filesystem::path& path, const std::string& split) {
  const std::string file = path.string();
  h5::File h5file(path, h5::Access::kRead);
  const h5::Group root = h5file.root();
  if (split.empty() || !root.is_group(split)) {
    fail_io(file, "/" + split, "split_checksums: expected a split group /", split, " in ", file,
            ", but the file has ", listed(root.children()));
  }
  const h5::Group group = root.group(split);
  std::vector<ArrayChecksum> out;
  for (const char* name : {"images", "labels"}) {
    const std::string object = str_cat("/", split, "/", name);
    if (!group.contains(name) || group.is_group(name)) {
      fail_io(file, object, "split_checksums: expected a dataset ", object, " in ", file,
              ", but the group has ", listed(group.children()));
    }
    const h5::Dataset dataset = group.dataset(name);
    const Shape& shape = dataset.shape();
    std::int64_t row_bytes = static_cast<std::int64_t>(element_size(dataset.dtype()));
    for (std::size_t d = 1; d < shape.size(); ++d) row_bytes *= shape[d];
    const std::int64_t rows = shape.empty() ? 1 : shape[0];
    std::unique_ptr<XXH64_state_t, XXH_errorcode (*)(XXH64_state_t*)> state(XXH64_createState(),
                                                                            &XXH64_freeState);
    XXH64_reset(state.get(), 0);
    if (shape.empty()) {
      const Tensor all = dataset.read();
      XXH64_update(state.get(), all.data(), static_cast<std::size_t>(row_bytes));
    } else if (row_bytes > 0) {
      // Blocks of about 16 MiB, so that a data set larger than memory can be verified.
      const std::int64_t block = std::max<std::int64_t>(1, (std::int64_t{16} << 20) / row_bytes);
      std::vector<std::uint8_t> buffer;
      for (std::int64_t start = 0; start < rows; start += block) {
        const std::int64_t count = std::min(block, rows - start);
        buffer.resize(static_cast<std::size_t>(count * row_bytes));
        dataset.read_rows_into(start, count, buffer.data());
        XXH64_update(state.get(), buffer.data(), buffer.size());
      }
    }
    out.push_back({object, stored_checksum(dataset), hex64(XXH64_digest(state.get()))});
  }
  return out;
}

std::shared_ptr<ImageDataset> ImageDataset::open(const std::filesystem::path& path, const std::string& split,
                                                 Cache cache) {
  const std::string file = path.string();
  if (!std::filesystem::exists(path)) {
    fail_io(file, "", kOpen, ": expected a data set file, but ", file,
            " does not exist. Create it with `lockstep convert`");
  }
  h5::File h5file(path, h5::Access::kRead);
  const h5::Group root = h5file.root();
  const std::string split_path = "/" + split;
  if (split.empty() || !root.contains(split)) {
    fail_io(file, split_path, kOpen, ": expected a split group ", split_path, " in ", file,
            ", but the file has ", listed(root.children()));
  }
  const h5::Group group = root.group(split);

  h5::Dataset images =
      open_checked(group, "images", DType::u8, 4, file, split_path + "/images", "u8 [N,C,H,W]");
  h5::Dataset labels = open_checked(group, "labels", DType::i64, 1, file, split_path + "/labels", "i64 [N]");
  const Shape image_shape = images.shape();
  if (image_shape[0] != labels.shape()[0]) {
    fail_io(file, split_path, kOpen, ": expected as many labels as images in ", file, " ", split_path,
            ", but got images ", shape_str(image_shape), " and labels ", shape_str(labels.shape()));
  }
  if (root.has_attribute("format_version")) {
    const std::int64_t version = root.attribute_int("format_version");
    if (version != 1) {
      fail_io(file, "/", kOpen, ": expected format_version 1 in ", file, ", but got ", version,
              ". Re-create the file with this version of `lockstep convert`");
    }
  }

  std::shared_ptr<ImageDataset> dataset(new ImageDataset(path, split, cache));
  dataset->size_ = image_shape[0];
  dataset->channels_ = image_shape[1];
  dataset->height_ = image_shape[2];
  dataset->width_ = image_shape[3];
  if (root.has_attribute("class_names")) dataset->class_names_ = root.attribute_strings("class_names");
  for (const auto& [name, values] : {std::pair{"mean", &dataset->mean_}, std::pair{"std", &dataset->std_}}) {
    if (!group.has_attribute(name)) continue;
    *values = group.attribute_doubles(name);
    if (static_cast<std::int64_t>(values->size()) != dataset->channels_) {
      fail_io(file, split_path, kOpen, ": expected attribute ", name, " of ", split_path, " in ", file,
              " to hold one value per channel (", dataset->channels_, "), but it holds ", values->size());
    }
  }

  const std::int64_t n = dataset->size_;
  // A corrupt header can claim more rows than any file holds: check before allocating. Deflate expands at
  // most ~1032:1, so no valid file stores more than 1100 times its own size.
  const auto file_bytes = static_cast<std::int64_t>(std::filesystem::file_size(path));
  std::int64_t image_total = 0, label_total = 0, plane = 0, per_image = 0;
  if (__builtin_mul_overflow(dataset->height_, dataset->width_, &plane) ||
      __builtin_mul_overflow(dataset->channels_, plane, &per_image) ||
      __builtin_mul_overflow(n, per_image, &image_total) ||
      __builtin_mul_overflow(n, std::int64_t{8}, &label_total) || image_total / 1100 > file_bytes ||
      label_total / 1100 > file_bytes) {
    fail_io(file, split_path, kOpen, ": expected ", split_path, " in ", file,
            " to fit in the file, but images ", shape_str(image_shape), " and labels ",
            shape_str(labels.shape()), " are more than a file of ", file_bytes,
            " bytes can hold. The file is corrupt");
  }
  dataset->labels_.resize(static_cast<std::size_t>(n));
  if (n > 0) labels.read_rows_into(0, n, dataset->labels_.data());
  verify_checksum(labels, {reinterpret_cast<const std::uint8_t*>(dataset->labels_.data()),
                           dataset->labels_.size() * sizeof(std::int64_t)});
  const auto classes = static_cast<std::int64_t>(dataset->class_names_.size());
  if (classes > 0) {
    for (std::int64_t i = 0; i < n; ++i) {
      const std::int64_t label = dataset->labels_[static_cast<std::size_t>(i)];
      LOCKSTEP_CHECK(label >= 0 && label < classes, ValueError, kOpen, ": expected labels in [0, ", classes,
                     ") (the class_names of ", file, "), but ", split_path, "/labels[", i, "] is ", label);
    }
  }
  if (cache == Cache::kMemory) {
    dataset->cached_.resize(static_cast<std::size_t>(n * dataset->image_bytes()));
    if (n > 0) images.read_rows_into(0, n, dataset->cached_.data());
    verify_checksum(images, dataset->cached_);
  } else {
    dataset->images_.emplace(std::move(images));
    dataset->opened_.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    struct stat st {};
    if (dataset->opened_.fd < 0 || ::fstat(dataset->opened_.fd, &st) != 0) {
      fail_io(file, "", kOpen, ": expected to open ", file, " for reading, but it failed: ", std::strerror(errno));
    }
    dataset->opened_bytes_ = static_cast<std::int64_t>(st.st_size);
  }
  return dataset;
}

ImageDataset::Descriptor::~Descriptor() {
  if (fd >= 0) ::close(fd);
}

void ImageDataset::gather(std::span<const std::int64_t> indices, std::uint8_t* images_out,
                          std::int64_t* labels_out) const {
  const auto n = static_cast<std::int64_t>(indices.size());
  const std::int64_t row = image_bytes();
  for (std::int64_t k = 0; k < n; ++k) {
    const std::int64_t index = indices[static_cast<std::size_t>(k)];
    LOCKSTEP_CHECK(index >= 0 && index < size_, IndexError, "ImageDataset::gather: expected indices in [0, ",
                   size_, ") (", path_.string(), " /", split_, "), but got ", index);
    labels_out[k] = labels_[static_cast<std::size_t>(index)];
  }
  if (cache_ == Cache::kMemory) {
    for (std::int64_t k = 0; k < n; ++k) {
      std::memcpy(images_out + k * row, cached_.data() + indices[static_cast<std::size_t>(k)] * row,
                  static_cast<std::size_t>(row));
    }
    return;
  }
  // Sorted (index, output position) pairs; each run of consecutive (or repeated) indices is one read.
  std::vector<std::pair<std::int64_t, std::int64_t>> order(static_cast<std::size_t>(n));
  for (std::int64_t k = 0; k < n; ++k)
    order[static_cast<std::size_t>(k)] = {indices[static_cast<std::size_t>(k)], k};
  std::sort(order.begin(), order.end());
  std::vector<std::uint8_t> staging;
  const std::lock_guard<std::mutex> lock(file_mutex_);
  for (std::size_t begin = 0; begin < order.size();) {
    std::size_t end = begin + 1;
    while (end < order.size() && order[end].first - order[end - 1].first <= 1) ++end;
    const std::int64_t first = order[begin].first;
    const std::int64_t count = order[end - 1].first - first + 1;
    staging.resize(static_cast<std::size_t>(count * row));
    images_->read_rows_into(first, count, staging.data());
    for (std::size_t k = begin; k < end; ++k) {
      std::memcpy(images_out + order[k].second * row, staging.data() + (order[k].first - first) * row,
                  static_cast<std::size_t>(row));
    }
    begin = end;
  }
  // After the reads: rows read from a file truncated meanwhile are zeros, and must not be used.
  struct stat st {};
  if (::fstat(opened_.fd, &st) != 0 || static_cast<std::int64_t>(st.st_size) < opened_bytes_) {
    throw IoError(str_cat("ImageDataset::gather: expected the data file ", path_.string(), " to keep its ",
                          opened_bytes_, " bytes while /", split_,
                          " is read from it (data.cache = \"none\"), but it now has ", st.st_size,
                          ": it was truncated, and rows past its end would read as zeros. Restore the file "
                          "and resume the run"),
                  path_.string(), "/" + split_ + "/images");
  }
}

}  // namespace lockstep::io
