// Reader of the CIFAR-10 binary batches: each batch file is read whole, checked, and its records are
// scattered into one image tensor and one label tensor.
#include "io/data/cifar.h"

#include <cstdint>
#include <cstring>
#include <vector>

#include "src/core/error.h"
#include "src/tensor/factories.h"

namespace lockstep::io {
namespace {

constexpr std::int64_t kImageBytes = 3 * 32 * 32;
constexpr std::int64_t kRecordBytes = 1 + kImageBytes;
constexpr std::int64_t kClasses = 10;

}  // namespace

ImageSet read_cifar10(const std::filesystem::path& dir, const std::string& split) {
  std::vector<std::string> names;
  if (split == "train") {
    for (int i = 1; i <= 5; ++i) names.push_back(str_cat("data_batch_", i, ".bin"));
  } else if (split == "test") {
    names.push_back("test_batch.bin");
  } else {
    throw ValueError(str_cat("read_cifar10: expected split 'train' or 'test', but got '", split, "'"));
  }
  const std::filesystem::path nested = dir / "cifar-10-batches-bin";
  const std::filesystem::path base =
      !std::filesystem::exists(dir / names.front()) && std::filesystem::is_directory(nested) ? nested : dir;

  std::vector<std::vector<std::uint8_t>> batches;
  ImageSet set;
  std::int64_t n = 0;
  for (const std::string& name : names) {
    const std::filesystem::path path = base / name;
    SourceFile file(path, "read_cifar10");
    std::vector<std::uint8_t> bytes = file.read_to_end();
    const auto size = static_cast<std::int64_t>(bytes.size());
    if (size == 0 || size % kRecordBytes != 0) {
      throw IoError(
          str_cat("read_cifar10: expected a positive multiple of ", kRecordBytes,
                  " bytes (records of 1 label", " byte + 3x32x32 pixels) in ", file.describe(),
                  ", but found ", size, " bytes (", size / kRecordBytes, " records and ", size % kRecordBytes,
                  " bytes more). The file is truncated or not a CIFAR-10 batch (CIFAR-100 records hold",
                  " 3074 bytes)."),
          path.string());
    }
    for (std::int64_t r = 0; r < size / kRecordBytes; ++r) {
      const std::uint8_t label = bytes[static_cast<std::size_t>(r * kRecordBytes)];
      if (label >= kClasses) {
        throw IoError(
            str_cat("read_cifar10: expected labels in [0, ", kClasses, ") in ", file.describe(),
                    ", but record ", r, " has label ", int{label}, ". The file is not a CIFAR-10 batch."),
            path.string());
      }
    }
    n += size / kRecordBytes;
    batches.push_back(std::move(bytes));
    set.source_files.push_back(std::filesystem::absolute(path).lexically_normal().string());
    set.source_xxh64.push_back(file_xxh64(path));
  }

  set.images = empty({n, 3, 32, 32}, DType::u8);
  set.labels = empty({n}, DType::i64);
  std::uint8_t* images = set.images.data<std::uint8_t>();
  std::int64_t* labels = set.labels.data<std::int64_t>();
  std::int64_t row = 0;
  for (std::vector<std::uint8_t>& bytes : batches) {
    const std::int64_t records = static_cast<std::int64_t>(bytes.size()) / kRecordBytes;
    const std::uint8_t* src = bytes.data();
    for (std::int64_t r = 0; r < records; ++r) {
      labels[row + r] = src[r * kRecordBytes];
      std::memcpy(images + (row + r) * kImageBytes, src + r * kRecordBytes + 1, kImageBytes);
    }
    row += records;
    std::vector<std::uint8_t>().swap(bytes);
  }
  return set;
}

}  // namespace lockstep::io
