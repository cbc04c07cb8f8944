// One split of a Lockstep data set file (/<split>/images u8 [N,C,H,W], /<split>/labels i64 [N]; see the
// `lockstep convert` layout): validated at open, images served either from memory or from the file.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "io/h5/h5.h"
#include "src/core/error.h"

namespace lockstep::io {

// The attribute `lockstep convert` stores on /<split>/images and /<split>/labels: XXH64 (seed 0) of the
// array's bytes in C order (u8 pixels; i64 labels little-endian), 16 lowercase hex digits. h5py computes it
// as xxh64(dataset[()].tobytes()). Files converted before it existed have none and still load.
inline constexpr const char* kArrayChecksumAttribute = "xxh64";

// XXH64 (seed 0) of `bytes` as 16 lowercase hex digits.
std::string bytes_xxh64(std::span<const std::uint8_t> bytes);

// The checksum check of one array of a split: `expected` is its xxh64 attribute (empty when the file has
// none), `actual` the hash of its bytes as read.
struct ArrayChecksum {
  std::string object;  // "/train/images"
  std::string expected;
  std::string actual;
  bool stored() const { return !expected.empty(); }
  bool ok() const { return expected.empty() || expected == actual; }
};

// Reads the images and labels of `split` whole (in blocks of rows) and hashes them, for
// `lockstep inspect --verify`. IoError naming file and object when a dataset is missing or unreadable.
std::vector<ArrayChecksum> split_checksums(const std::filesystem::path& path, const std::string& split);

// The IoError for a checksum that differs: names the file, the dataset and both checksums.
IoError checksum_error(const std::string& function, const std::string& file, const ArrayChecksum& check);

// kMemory reads every image once at open (Fashion-MNIST train is 47 MB); kNone reads each request's rows
// from the file (sorted, in runs of consecutive rows), for data sets larger than memory.
enum class Cache : std::uint8_t { kNone, kMemory };

// Owns the open images dataset (kNone), the labels and the cached images (kMemory). Thread-safe: gather may
// be called from several threads (file reads are serialised by a mutex).
class ImageDataset {
 public:
  // Opens `split` of the file at `path`. Raises IoError (naming file and object) when the file, the split
  // or a dataset is missing or has the wrong rank or row count, or when an array read whole (the labels
  // always, the images with Cache::kMemory) differs from its xxh64 attribute; TypeError when a dataset has
  // the wrong dtype, ValueError when a label is outside [0, number of classes).
  static std::shared_ptr<ImageDataset> open(const std::filesystem::path& path, const std::string& split,
                                            Cache cache);

  std::int64_t size() const { return size_; }
  std::int64_t channels() const { return channels_; }
  std::int64_t height() const { return height_; }
  std::int64_t width() const { return width_; }
  std::int64_t image_bytes() const { return channels_ * height_ * width_; }
  Cache cache() const { return cache_; }
  const std::filesystem::path& path() const { return path_; }
  const std::string& split() const { return split_; }
  // Root attribute class_names (empty when the file has none).
  const std::vector<std::string>& class_names() const { return class_names_; }
  // Split attributes mean and std, per channel, of pixel / 255 (empty when the file has none).
  const std::vector<double>& mean() const { return mean_; }
  const std::vector<double>& std() const { return std_; }
  const std::vector<std::int64_t>& labels() const { return labels_; }

  // Copies the images [C,H,W] and labels of `indices` (any order, repeats allowed) to images_out
  // (indices.size() * image_bytes() bytes) and labels_out (indices.size() values). IndexError when an
  // index is outside [0, size()); IoError naming the file when it cannot be read or (Cache::kNone) has
  // become shorter than it was at open. A file deleted meanwhile is still read whole: it stays open.
  void gather(std::span<const std::int64_t> indices, std::uint8_t* images_out,
              std::int64_t* labels_out) const;

 private:
  ImageDataset(std::filesystem::path path, std::string split, Cache cache)
      : path_(std::move(path)), split_(std::move(split)), cache_(cache) {}

  std::filesystem::path path_;
  std::string split_;
  Cache cache_;
  std::optional<h5::Dataset> images_;  // kNone: the open images dataset (it keeps the file open)
  std::int64_t size_ = 0, channels_ = 0, height_ = 0, width_ = 0;
  std::vector<std::string> class_names_;
  std::vector<double> mean_, std_;
  std::vector<std::int64_t> labels_;
  std::vector<std::uint8_t> cached_;  // kMemory: all images, row-major [N,C,H,W]
  mutable std::mutex file_mutex_;     // kNone: one reader of images_ at a time
  // kNone: the file as opened (a descriptor of the inode HDF5 reads) and its size then. HDF5 reads past the
  // end of a file as zeros, so a file truncated under the reader would otherwise train on blank images.
  struct Descriptor {
    int fd = -1;
    Descriptor() = default;
    Descriptor(const Descriptor&) = delete;
    Descriptor& operator=(const Descriptor&) = delete;
    ~Descriptor();
  };
  Descriptor opened_;
  std::int64_t opened_bytes_ = 0;
};

}  // namespace lockstep::io
