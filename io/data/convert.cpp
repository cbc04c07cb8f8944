// Source-file reading (raw or gzip), hashing, per-channel statistics, the HDF5 data-set writer and the
// `convert` driver that writes `<output>.tmp` and renames it when complete.
#include "io/data/convert.h"

#include <fcntl.h>
#include <unistd.h>
#include <xxhash.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <memory>
#include <system_error>

#include "io/data/cifar.h"
#include "io/data/dataset.h"
#include "io/data/idx.h"
#include "io/data/image_folder.h"
#include "io/data/npy.h"
#include "src/core/error.h"
#include "src/core/strings.h"
#include "src/core/threading.h"

namespace lockstep::io {
namespace {

// Deflate expands at most 1032-fold; the slack covers gzip headers of tiny files.
constexpr std::int64_t kDeflateMaxRatio = 1032;
constexpr std::int64_t kDeflateSlack = 1 << 16;
constexpr std::int64_t kReadChunk = 1 << 20;


}  // namespace

SourceFile::SourceFile(const std::filesystem::path& file, const char* where) : path_(file), where_(where) {
  std::error_code ec;
  const auto status = std::filesystem::status(file, ec);
  if (!std::filesystem::exists(status)) {
    throw IoError(str_cat(where_, ": expected an existing file, but ", in_quotes(file), " does not exist"),
                  file.string());
  }
  if (!std::filesystem::is_regular_file(status)) {
    throw IoError(str_cat(where_, ": expected a regular file, but ", in_quotes(file), " is not one"),
                  file.string());
  }
  const auto size = std::filesystem::file_size(file, ec);
  raw_ = ec ? nullptr : std::fopen(file.c_str(), "rb");
  if (raw_ == nullptr) {
    throw IoError(str_cat(where_, ": expected a readable file, but opening ", in_quotes(file),
                          " failed: ", ec ? ec.message() : std::string(std::strerror(errno))),
                  file.string());
  }
  std::array<unsigned char, 2> magic{};
  const bool gzipped = std::fread(magic.data(), 1, 2, raw_) == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
  content_bound_ = static_cast<std::int64_t>(size);
  if (!gzipped) {
    std::rewind(raw_);
    return;
  }
  std::fclose(raw_);
  raw_ = nullptr;
  gz_ = gzopen(file.c_str(), "rb");
  if (gz_ == nullptr) {
    throw IoError(str_cat(where_, ": expected a readable gzip file, but opening ", in_quotes(file), " failed"),
                  file.string());
  }
  gzbuffer(gz_, static_cast<unsigned>(kReadChunk));
  content_bound_ = content_bound_ * kDeflateMaxRatio + kDeflateSlack;
}

SourceFile::~SourceFile() {
  if (raw_ != nullptr) std::fclose(raw_);
  if (gz_ != nullptr) gzclose(gz_);
}

std::string SourceFile::describe() const {
  return gz_ != nullptr ? str_cat("gzip file ", in_quotes(path_), " (sizes decompressed)")
                        : str_cat("file ", in_quotes(path_));
}

std::int64_t SourceFile::read(void* dst, std::int64_t n) {
  auto* out = static_cast<unsigned char*>(dst);
  std::int64_t total = 0;
  while (total < n) {
    const std::int64_t want = std::min(n - total, kReadChunk);
    std::int64_t got = 0;
    if (gz_ != nullptr) {
      got = gzread(gz_, out + total, static_cast<unsigned>(want));
      int code = Z_OK;
      const char* message = gzerror(gz_, &code);
      if (got < 0 || (code != Z_OK && code != Z_STREAM_END)) {
        throw IoError(str_cat(where_, ": expected a valid gzip stream in ", in_quotes(path_),
                              ", but zlib reports: ", message, ". The file is corrupt or truncated."),
                      path_.string());
      }
    } else {
      got = static_cast<std::int64_t>(std::fread(out + total, 1, static_cast<std::size_t>(want), raw_));
      if (std::ferror(raw_) != 0) {
        throw IoError(str_cat(where_, ": expected to read ", in_quotes(path_),
                              ", but reading failed: ", std::strerror(errno)),
                      path_.string());
      }
    }
    total += got;
    if (got < want) break;
  }
  position_ += total;
  return total;
}

std::int64_t SourceFile::skip_to_end() {
  std::vector<unsigned char> buffer(static_cast<std::size_t>(kReadChunk));
  std::int64_t skipped = 0;
  for (std::int64_t got = 1; got > 0; skipped += got) got = read(buffer.data(), kReadChunk);
  return skipped;
}

std::vector<std::uint8_t> SourceFile::read_to_end() {
  std::vector<std::uint8_t> bytes;
  if (gz_ == nullptr)
    bytes.reserve(static_cast<std::size_t>(std::max<std::int64_t>(content_bound_ - position_, 0)));
  for (;;) {
    const std::size_t old_size = bytes.size();
    bytes.resize(old_size + static_cast<std::size_t>(kReadChunk));
    const std::int64_t got = read(bytes.data() + old_size, kReadChunk);
    bytes.resize(old_size + static_cast<std::size_t>(got));
    if (got < kReadChunk) return bytes;
  }
}

std::int64_t SourceFile::payload_bytes(const Shape& shape, std::int64_t item_size) const {
  std::int64_t bytes = item_size;
  for (const std::int64_t extent : shape) {
    if (extent < 0 || __builtin_mul_overflow(bytes, extent, &bytes)) {
      throw IoError(str_cat(where_, ": expected a header with a representable size in ", in_quotes(path_),
                            ", but it announces shape ", shape_str(shape), ". The header is corrupt."),
                    path_.string());
    }
  }
  return bytes;
}

void SourceFile::throw_size_error(std::int64_t expected_total, std::int64_t found_total,
                                  const std::string& layout) const {
  const std::string hint =
      found_total < expected_total
          ? "The file is truncated or its header is wrong."
          : str_cat("The file has ", found_total - expected_total, " trailing bytes or its header is wrong.");
  throw IoError(str_cat(where_, ": expected ", expected_total, " bytes (", layout, ") in ", describe(),
                        ", but found ", found_total, " bytes. ", hint),
                path_.string());
}

void SourceFile::check_rest(std::int64_t n, const std::string& layout) {
  const std::int64_t room = content_bound_ - position_;
  if (gz_ == nullptr && n != room) throw_size_error(position_ + n, content_bound_, layout);
  if (gz_ != nullptr && n > room) {
    const std::int64_t expected = position_ + n;
    throw_size_error(expected, position_ + skip_to_end(), layout);
  }
}

void SourceFile::read_rest(void* dst, std::int64_t n, const std::string& layout) {
  const std::int64_t start = position_;
  const std::int64_t got = read(dst, n);
  if (got < n) throw_size_error(start + n, start + got, layout);
  const std::int64_t extra = skip_to_end();
  if (extra > 0) throw_size_error(start + n, start + n + extra, layout);
}

std::string file_xxh64(const std::filesystem::path& file) {
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> handle(std::fopen(file.c_str(), "rb"), &std::fclose);
  if (!handle) {
    throw IoError(str_cat("file_xxh64: expected a readable file, but opening ", in_quotes(file),
                          " failed: ", std::strerror(errno)),
                  file.string());
  }
  std::unique_ptr<XXH64_state_t, XXH_errorcode (*)(XXH64_state_t*)> state(XXH64_createState(),
                                                                          &XXH64_freeState);
  XXH64_reset(state.get(), 0);
  std::vector<unsigned char> buffer(static_cast<std::size_t>(kReadChunk));
  for (;;) {
    const std::size_t got = std::fread(buffer.data(), 1, buffer.size(), handle.get());
    XXH64_update(state.get(), buffer.data(), got);
    if (got < buffer.size()) break;
  }
  if (std::ferror(handle.get()) != 0) {
    throw IoError(str_cat("file_xxh64: expected to read ", in_quotes(file),
                          ", but reading failed: ", std::strerror(errno)),
                  file.string());
  }
  std::array<char, 17> hex{};
  std::snprintf(hex.data(), hex.size(), "%016llx",
                static_cast<unsigned long long>(XXH64_digest(state.get())));
  return hex.data();
}

ChannelStats channel_stats(const Tensor& images_in) {
  LOCKSTEP_CHECK(images_in.defined() && images_in.dtype() == DType::u8 && images_in.dim() == 4 &&
                     images_in.device() == kCPU,
                 TypeError, "channel_stats: expected CPU u8 images [N,C,H,W], but got ",
                 images_in.defined()
                     ? str_cat(dtype_name(images_in.dtype()), " ", shape_str(images_in.shape()))
                     : std::string("an undefined tensor"));
  const Tensor images = images_in.contiguous();
  const std::int64_t n = images.size(0);
  const std::int64_t channels = images.size(1);
  const std::int64_t plane = images.size(2) * images.size(3);
  const std::uint8_t* data = images.data<std::uint8_t>();
  // Exact per-channel histograms (four interleaved copies break the store-to-load chain on runs of
  // equal pixels); mean and variance follow from them in f64.
  std::vector<std::uint64_t> histogram(static_cast<std::size_t>(channels * 256), 0);
#pragma omp parallel if (n * channels * plane > kParallelGrain)
  {
    std::vector<std::uint64_t> local(static_cast<std::size_t>(channels * 4 * 256), 0);
#pragma omp for schedule(static)
    for (std::int64_t i = 0; i < n; ++i) {
      for (std::int64_t c = 0; c < channels; ++c) {
        const std::uint8_t* p = data + (i * channels + c) * plane;
        std::uint64_t* h = local.data() + c * 4 * 256;
        std::int64_t k = 0;
        for (; k + 4 <= plane; k += 4) {
          ++h[p[k]];
          ++h[256 + p[k + 1]];
          ++h[512 + p[k + 2]];
          ++h[768 + p[k + 3]];
        }
        for (; k < plane; ++k) ++h[p[k]];
      }
    }
#pragma omp critical
    for (std::int64_t c = 0; c < channels; ++c) {
      for (std::int64_t v = 0; v < 256; ++v) {
        const std::uint64_t* h = local.data() + c * 4 * 256 + v;
        histogram[static_cast<std::size_t>(c * 256 + v)] += h[0] + h[256] + h[512] + h[768];
      }
    }
  }
  ChannelStats stats;
  const double count = static_cast<double>(n * plane);
  for (std::int64_t c = 0; c < channels; ++c) {
    const std::uint64_t* h = histogram.data() + c * 256;
    double sum = 0.0;
    for (int v = 0; v < 256; ++v) sum += static_cast<double>(h[v]) * (v / 255.0);
    const double mean = sum / count;
    double squares = 0.0;
    for (int v = 0; v < 256; ++v)
      squares += static_cast<double>(h[v]) * (v / 255.0 - mean) * (v / 255.0 - mean);
    stats.mean.push_back(mean);
    stats.std.push_back(std::sqrt(squares / count));
  }
  return stats;
}

void write_image_set(const std::filesystem::path& out, const std::string& split, const ImageSet& set,
                     const std::vector<std::string>& class_names, h5::Access access,
                     const std::string& source) {
  LOCKSTEP_CHECK(access != h5::Access::kRead, ValueError,
                 "write_image_set: expected Access::kTruncate or Access::kReadWrite, but got Access::kRead");
  LOCKSTEP_CHECK(!split.empty() && split.find('/') == std::string::npos && split != ".", ValueError,
                 "write_image_set: expected a split name without '/', but got '", split, "'");
  LOCKSTEP_CHECK(set.images.defined() && set.images.dtype() == DType::u8 && set.images.dim() == 4 &&
                     set.images.size(0) > 0,
                 TypeError, "write_image_set: expected u8 images [N,C,H,W] with N > 0, but got ",
                 set.images.defined()
                     ? str_cat(dtype_name(set.images.dtype()), " ", shape_str(set.images.shape()))
                     : std::string("an undefined tensor"));
  const std::int64_t n = set.images.size(0);
  LOCKSTEP_CHECK(set.labels.defined() && set.labels.dtype() == DType::i64 && set.labels.shape() == Shape{n},
                 TypeError, "write_image_set: expected i64 labels [", n, "], but got ",
                 set.labels.defined()
                     ? str_cat(dtype_name(set.labels.dtype()), " ", shape_str(set.labels.shape()))
                     : std::string("an undefined tensor"));
  LOCKSTEP_CHECK(set.source_files.size() == set.source_xxh64.size(), ValueError,
                 "write_image_set: expected one hash per source file, but got ", set.source_files.size(),
                 " files and ", set.source_xxh64.size(), " hashes");
  LOCKSTEP_CHECK(!class_names.empty(), ValueError,
                 "write_image_set: expected at least one class name, but got none");
  const Tensor labels = set.labels.contiguous();
  const std::int64_t* label = labels.data<std::int64_t>();
  const auto classes = static_cast<std::int64_t>(class_names.size());
  for (std::int64_t i = 0; i < n; ++i) {
    LOCKSTEP_CHECK(label[i] >= 0 && label[i] < classes, ValueError,
                   "write_image_set: expected labels in [0, ", classes, "), but label ", i, " is ", label[i],
                   ". Pass one class name per class.");
  }

  h5::File file(out, access);
  h5::Group root = file.root();
  if (root.has_attribute("format_version")) {
    const std::int64_t version = root.attribute_int("format_version");
    if (version != kImageSetFormatVersion) {
      throw IoError(str_cat("write_image_set: expected format_version ", kImageSetFormatVersion, " in ",
                            in_quotes(out), ", but got ", version),
                    out.string(), "/");
    }
    if (root.attribute_strings("class_names") != class_names) {
      throw IoError(str_cat("write_image_set: expected the class names of ", in_quotes(out),
                            " to equal those of the new split '", split, "', but they differ"),
                    out.string(), "/");
    }
  } else {
    if (!root.children().empty()) {
      throw IoError(str_cat("write_image_set: expected a Lockstep data-set file or an empty one, but ",
                            in_quotes(out), " has members and no format_version attribute"),
                    out.string(), "/");
    }
    root.set_attribute("format_version", kImageSetFormatVersion);
    root.set_attribute("class_names", class_names);
    std::string description = source;
    if (description.empty()) {
      description = set.source_files.empty()
                        ? std::string("in-memory image set")
                        : std::filesystem::path(set.source_files.front()).parent_path().string();
    }
    root.set_attribute("source", description);
  }
  if (root.contains(split)) {
    throw IoError(str_cat("write_image_set: expected a new split, but ", in_quotes(out),
                          " already holds split '", split, "'"),
                  out.string(), "/" + split);
  }
  h5::Group group = root.create_group(split);
  const Tensor pixels = set.images.contiguous();
  const h5::Dataset images = group.create_dataset("images", DType::u8, pixels.shape());
  images.write(pixels);
  images.set_attribute(kArrayChecksumAttribute,
                       bytes_xxh64({pixels.data<std::uint8_t>(), static_cast<std::size_t>(pixels.numel())}));
  const h5::Dataset labels_dataset = group.write_tensor("labels", labels);
  labels_dataset.set_attribute(kArrayChecksumAttribute,
                               bytes_xxh64({reinterpret_cast<const std::uint8_t*>(label),
                                            static_cast<std::size_t>(n) * sizeof(std::int64_t)}));
  const ChannelStats stats = channel_stats(set.images);
  group.set_attribute("mean", stats.mean);
  group.set_attribute("std", stats.std);
  group.set_attribute("source_files", set.source_files);
  group.set_attribute("source_xxh64", set.source_xxh64);
  file.flush();
}

const std::vector<std::string>& fashion_mnist_classes() {
  static const std::vector<std::string> names = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                                 "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
  return names;
}

const std::vector<std::string>& mnist_classes() {
  static const std::vector<std::string> names = {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"};
  return names;
}

const std::vector<std::string>& cifar10_classes() {
  static const std::vector<std::string> names = {"airplane", "automobile", "bird",  "cat",  "deer",
                                                 "dog",      "frog",       "horse", "ship", "truck"};
  return names;
}

namespace {

// The IDX file `stem` of an MNIST-style directory: `stem`, `stem.gz`, or the variants with ".idx" for "-idx".
std::filesystem::path find_idx_file(const std::filesystem::path& dir, const std::string& stem) {
  std::string dotted = stem;
  dotted.replace(dotted.find("-idx"), 4, ".idx");
  for (const std::string& name : {stem, stem + ".gz", dotted, dotted + ".gz"}) {
    if (std::filesystem::is_regular_file(dir / name)) return dir / name;
  }
  throw IoError(str_cat("convert: expected ", in_quotes(dir / stem), " or ", in_quotes(dir / (stem + ".gz")),
                        ", but neither exists. Point the input at the directory holding the IDX files."),
                (dir / stem).string());
}

// IoError naming `labels_file` when a label lies outside [0, classes).
void check_label_range(const ImageSet& set, std::int64_t classes, const std::filesystem::path& labels_file,
                       const std::string& what) {
  const std::int64_t* label = set.labels.data<std::int64_t>();
  for (std::int64_t i = 0; i < set.labels.numel(); ++i) {
    if (label[i] < 0 || label[i] >= classes) {
      throw IoError(str_cat("convert: expected labels in [0, ", classes, ") for ", what, ", but label ", i,
                            " in ", in_quotes(labels_file), " is ", label[i]),
                    labels_file.string());
    }
  }
}

// The given class names after checking the labels against them, or "0".."max label" when none are given.
std::vector<std::string> class_names_for(const ImageSet& set, const std::vector<std::string>& given,
                                         const std::filesystem::path& labels_file) {
  if (!given.empty()) {
    check_label_range(set, static_cast<std::int64_t>(given.size()), labels_file,
                      str_cat(given.size(), " class names"));
    return given;
  }
  const std::int64_t* label = set.labels.data<std::int64_t>();
  const std::int64_t max_label = *std::max_element(label, label + set.labels.numel());
  std::vector<std::string> names;
  for (std::int64_t c = 0; c <= max_label; ++c) names.push_back(std::to_string(c));
  return names;
}

std::string absolute_string(const std::filesystem::path& p) {
  return std::filesystem::absolute(p).lexically_normal().string();
}

}  // namespace

void publish_file(const std::filesystem::path& tmp, const std::filesystem::path& out) {
  const int fd = ::open(tmp.c_str(), O_RDONLY);
  const bool ok = fd >= 0 && ::fsync(fd) == 0;
  if (fd >= 0) ::close(fd);
  if (!ok) {
    throw IoError(str_cat("convert: expected to flush ", in_quotes(tmp), " to disk, but it failed: ",
                          std::strerror(errno)),
                  tmp.string());
  }
  std::error_code ec;
  std::filesystem::rename(tmp, out, ec);
  if (ec) {
    throw IoError(str_cat("convert: expected to rename ", in_quotes(tmp), " to ", in_quotes(out),
                          ", but it failed: ", ec.message()),
                  out.string());
  }
}

void convert(const ConvertOptions& options) {
  LOCKSTEP_CHECK(!options.output.empty(), ValueError,
                 "convert: expected an output path, but got an empty one");
  const std::filesystem::path& out = options.output;
  const std::filesystem::path tmp = out.string() + ".tmp";
  std::error_code ec;
  if (out.has_parent_path()) std::filesystem::create_directories(out.parent_path(), ec);
  h5::Access access = options.mode == OutputMode::kAddSplit ? h5::Access::kReadWrite : h5::Access::kTruncate;
  auto write = [&](const std::string& split, const ImageSet& set, const std::vector<std::string>& names,
                   const std::string& source) {
    try {
      write_image_set(tmp, split, set, names, access, source);
    } catch (const IoError& e) {  // e.g. a full disk: the temporary is removed below
      throw IoError(str_cat("convert: could not write ", in_quotes(out), " (any earlier file there is unchanged): ",
                            e.what()),
                    out.string(), e.object());
    }
    access = h5::Access::kReadWrite;
  };
  const std::filesystem::path& in = options.input;
  try {
    if (options.mode == OutputMode::kAddSplit) {
      if (!std::filesystem::is_regular_file(out)) {
        throw IoError(str_cat("convert: expected an existing data-set file to add a split to, but ",
                              in_quotes(out), " does not exist. Use OutputMode::kCreate."),
                      out.string());
      }
      std::filesystem::copy_file(out, tmp, std::filesystem::copy_options::overwrite_existing, ec);
      if (ec) {
        throw IoError(str_cat("convert: expected to copy ", in_quotes(out), " to ", in_quotes(tmp),
                              ", but it failed: ", ec.message()),
                      tmp.string());
      }
    }
    switch (options.format) {
      case SourceFormat::kFashionMnist:
      case SourceFormat::kMnist: {
        const bool fashion = options.format == SourceFormat::kFashionMnist;
        const std::string what = fashion ? "Fashion-MNIST" : "MNIST";
        const auto& names = fashion ? fashion_mnist_classes() : mnist_classes();
        for (const auto& [split, prefix] : {std::pair{"train", "train"}, std::pair{"test", "t10k"}}) {
          const auto labels_file = find_idx_file(in, str_cat(prefix, "-labels-idx1-ubyte"));
          const ImageSet set =
              read_idx(find_idx_file(in, str_cat(prefix, "-images-idx3-ubyte")), labels_file);
          check_label_range(set, static_cast<std::int64_t>(names.size()), labels_file, what);
          write(split, set, names, str_cat(what, " IDX files in ", absolute_string(in)));
        }
        break;
      }
      case SourceFormat::kCifar10:
        for (const char* split : {"train", "test"}) {
          write(split, read_cifar10(in, split), cifar10_classes(),
                str_cat("CIFAR-10 binary batches in ", absolute_string(in)));
        }
        break;
      case SourceFormat::kIdx: {
        const ImageSet set = read_idx(in, options.labels);
        write(options.split, set, class_names_for(set, options.class_names, options.labels),
              str_cat("IDX files ", absolute_string(in), " and ", absolute_string(options.labels)));
        break;
      }
      case SourceFormat::kNpy: {
        const ImageSet set = read_npy(in, options.labels, options.npy_layout);
        write(options.split, set, class_names_for(set, options.class_names, options.labels),
              str_cat("NPY files ", absolute_string(in), " and ", absolute_string(options.labels)));
        break;
      }
      case SourceFormat::kImageFolder:
        write(options.split, read_image_folder(in), image_folder_classes(in),
              str_cat("PNG image folder ", absolute_string(in)));
        break;
    }
    publish_file(tmp, out);
  } catch (...) {
    std::filesystem::remove(tmp, ec);
    throw;
  }
}

}  // namespace lockstep::io
