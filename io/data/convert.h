// Data-set conversion: the in-memory image set every reader returns, source-file reading (raw or gzip)
// and hashing, the writer of the HDF5 data-set layout (/<split>/images u8 [N,C,H,W], /<split>/labels i64
// [N], statistics and provenance attributes), and `convert`, which turns a known format into such a file.
#pragma once

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "io/h5/h5.h"
#include "src/core/shape.h"
#include "src/tensor/tensor.h"

struct gzFile_s;  // zlib's gzFile

namespace lockstep::io {

// One split of an image data set in memory. Owns its tensors; not thread-safe for mutation.
struct ImageSet {
  Tensor images;                          // u8 [N,C,H,W]
  Tensor labels;                          // i64 [N]
  std::vector<std::string> source_files;  // the files read, in reading order
  std::vector<std::string> source_xxh64;  // XXH64 (seed 0) of each source file's stored bytes, 16 hex digits
};

// The `format_version` root attribute of the files written here.
inline constexpr std::int64_t kImageSetFormatVersion = 1;

// Sequential reader of one source file, raw or gzip-compressed (detected by the magic bytes 1f 8b), so
// every reader accepts .gz files. Owns the open file handle; not thread-safe.
class SourceFile {
 public:
  // `where` names the reader for error messages. IoError naming the file when it is missing, is not a
  // regular file or cannot be opened.
  SourceFile(const std::filesystem::path& file, const char* where);
  ~SourceFile();
  SourceFile(const SourceFile&) = delete;
  SourceFile& operator=(const SourceFile&) = delete;

  // Reads up to `n` bytes into `dst`; fewer only at the end of the content. IoError on read or
  // decompression errors (a truncated gzip stream included).
  std::int64_t read(void* dst, std::int64_t n);
  // Reads everything left.
  std::vector<std::uint8_t> read_to_end();
  // The bytes of `shape` elements of `item_size` bytes; IoError when that overflows (a corrupt header).
  std::int64_t payload_bytes(const Shape& shape, std::int64_t item_size) const;
  // Throws IoError when the rest of the content cannot be exactly `n` bytes: known before reading for raw
  // files; for gzip files only when `n` exceeds what the compressed size can expand to. `layout` says what
  // the header announced. Call it before allocating room for the payload.
  void check_rest(std::int64_t n, const std::string& layout);
  // Reads exactly `n` bytes into `dst` and checks that nothing follows (IoError otherwise).
  void read_rest(void* dst, std::int64_t n, const std::string& layout);
  const std::filesystem::path& path() const { return path_; }
  // "file 'x'" or "gzip file 'x' (sizes decompressed)" for messages.
  std::string describe() const;

 private:
  [[noreturn]] void throw_size_error(std::int64_t expected_total, std::int64_t found_total,
                                     const std::string& layout) const;
  std::int64_t skip_to_end();

  std::filesystem::path path_;
  const char* where_;
  std::FILE* raw_ = nullptr;
  gzFile_s* gz_ = nullptr;
  std::int64_t position_ = 0;
  std::int64_t content_bound_ = 0;  // the raw size, or the most the gzip stream can decompress to
};

// Flushes `tmp` to stable storage and renames it to `out`, publishing a complete file at once. IoError naming
// the file on failure.
void publish_file(const std::filesystem::path& tmp, const std::filesystem::path& out);

// XXH64 (seed 0) of the file's bytes as stored on disk, as 16 lowercase hex digits. IoError when unreadable.
std::string file_xxh64(const std::filesystem::path& file);

// Per-channel mean and (population) standard deviation of images/255, in f64. `images` is u8 [N,C,H,W].
struct ChannelStats {
  std::vector<double> mean;
  std::vector<double> std;
};
ChannelStats channel_stats(const Tensor& images);

// Writes `set` as split `split` of the data-set file `out` (images stored contiguous). Access::kTruncate
// creates (or overwrites) the file; Access::kReadWrite adds the split to an existing data-set file, whose
// class names must equal `class_names`. Labels must lie in [0, class_names.size()). `source` describes
// where the data came from (root attribute `source`, kept from the first writer); empty means the directory
// of the first source file.
void write_image_set(const std::filesystem::path& out, const std::string& split, const ImageSet& set,
                     const std::vector<std::string>& class_names, h5::Access access,
                     const std::string& source = {});

// kIdx: one pair of IDX files (images, labels); kFashionMnist / kMnist: a directory holding the four
// standard IDX files (raw or .gz), converted to splits "train" and "test"; kCifar10: a directory holding
// the binary batches (or its cifar-10-batches-bin subdirectory), splits "train" and "test"; kNpy: one pair
// of .npy files; kImageFolder: one subdirectory of PNG files per class.
enum class SourceFormat { kIdx, kFashionMnist, kMnist, kCifar10, kNpy, kImageFolder };

// Memory layout of 4-d NPY image arrays: [N,C,H,W] or [N,H,W,C]. 3-d arrays are always [N,H,W].
enum class NpyLayout { kNCHW, kNHWC };

// kCreate writes a new file (replacing one of the same name); kAddSplit adds the split(s) to an existing
// data-set file with the same class names.
enum class OutputMode { kCreate, kAddSplit };

struct ConvertOptions {
  SourceFormat format = SourceFormat::kFashionMnist;
  // The directory (kFashionMnist, kMnist, kCifar10, kImageFolder) or the images file (kIdx, kNpy).
  std::filesystem::path input;
  // The labels file (kIdx, kNpy only).
  std::filesystem::path labels;
  std::filesystem::path output;
  // The split name for the single-split formats (kIdx, kNpy, kImageFolder).
  std::string split = "train";
  // Class names for kIdx and kNpy; empty means "0", "1", ... up to the largest label.
  std::vector<std::string> class_names;
  NpyLayout npy_layout = NpyLayout::kNCHW;
  OutputMode mode = OutputMode::kCreate;
};

// Reads the source and writes the data-set file. The file is written as `<output>.tmp`, flushed to disk
// and renamed when complete, so a failed conversion never leaves a partial file under the final name.
// IoError naming the offending file on bad input; labels must lie in [0, number of classes).
void convert(const ConvertOptions& options);

// The class names of the known formats, in label order.
const std::vector<std::string>& fashion_mnist_classes();
const std::vector<std::string>& mnist_classes();
const std::vector<std::string>& cifar10_classes();

}  // namespace lockstep::io
