// Opening and validating a data set split, and gathering rows from memory or from the file.
#include "io/data/dataset.h"

#include <algorithm>
#include <cstring>

#include "src/core/error.h"

namespace lockstep::io {
namespace {

constexpr const char* kOpen = "ImageDataset::open";

// Throws IoError(file, object) with the message str_cat(parts...).
template <class... Parts>
[[noreturn]] void fail_io(const std::string& file, const std::string& object, const Parts&... parts) {
  throw IoError(str_cat(parts...), file, object);
}

std::string join(const std::vector<std::string>& names) {
  std::string out = "[";
  for (std::size_t i = 0; i < names.size(); ++i) out += (i ? ", " : "") + names[i];
  return out + "]";
}

// Opens `group`/`name` and checks its dtype and rank; `file` and `object` name it in errors.
h5::Dataset open_checked(const h5::Group& group, const std::string& name, DType dtype, std::int64_t rank,
                         const std::string& file, const std::string& object, const char* layout) {
  if (!group.contains(name)) {
    fail_io(file, object, kOpen, ": expected a dataset ", object, " ", layout, " in ", file,
            ", but the group has ", join(group.children()));
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

}  // namespace

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
            ", but the file has ", join(root.children()));
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
  dataset->labels_.resize(static_cast<std::size_t>(n));
  if (n > 0) labels.read_rows_into(0, n, dataset->labels_.data());
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
  } else {
    dataset->images_.emplace(std::move(images));
  }
  return dataset;
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
}

}  // namespace lockstep::io
