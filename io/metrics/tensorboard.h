// TensorBoard event files without a protobuf library: scalars and PNG images as hand-encoded Event protos
// in TFRecord framing (length, masked CRC-32C of the length, data, masked CRC-32C of the data), plus a
// verifying reader for tests and tools.
#pragma once

#include <cstdint>
#include <filesystem>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "src/tensor/tensor.h"

namespace lockstep::io {

// CRC-32C (Castagnoli, reflected, init and final xor 0xFFFFFFFF) of `bytes`; crc32c("123456789") is
// 0xE3069283.
std::uint32_t crc32c(std::span<const std::uint8_t> bytes);

// The TFRecord mask of a CRC: ((crc >> 15) | (crc << 17)) + 0xa282ead8 (mod 2^32).
std::uint32_t mask_crc32c(std::uint32_t crc);

// Seconds since the Unix epoch, with sub-second resolution: the wall_time of an event.
double wall_time_now();

// The file_version string of the first event in every file EventWriter writes.
inline constexpr const char* kEventFileVersion = "brain.Event:2";

// Summary.Image: the encoded image with its size; `channels` is the proto's colorspace (1 gray, 2 gray +
// alpha, 3 RGB, 4 RGBA).
struct SummaryImage {
  std::int32_t height = 0;
  std::int32_t width = 0;
  std::int32_t channels = 0;
  std::vector<std::uint8_t> encoded;  // PNG bytes
};

// Summary.Value: a tag with a scalar (simple_value, a float in the proto) or an image.
struct SummaryValue {
  std::string tag;
  std::optional<float> scalar;
  std::optional<SummaryImage> image;
};

// One decoded Event: file_version is set on a file's first event, values on summary events.
struct TensorBoardEvent {
  double wall_time = 0.0;
  std::int64_t step = 0;
  std::string file_version;
  std::vector<SummaryValue> values;
};

// Writes one TensorBoard event file, `<dir>/events.out.tfevents.<10-digit unix time>.<hostname><suffix>`,
// beginning with the file_version event. Each add_* appends one whole record with a single write(2), so
// every record reaches the operating system before the call returns: a killed job keeps its curves up to
// its last record (a crash of the machine needs flush(), which fsyncs). Owns the file descriptor, closed
// on destruction. Thread-safe: records from concurrent calls never interleave.
class EventWriter {
 public:
  // Creates `dir` if needed and the event file in it. IoError naming the file when it exists already
  // (two writers in one directory within one second: give each its own suffix) or cannot be created.
  explicit EventWriter(std::filesystem::path dir, std::string suffix = "");
  ~EventWriter();
  EventWriter(const EventWriter&) = delete;
  EventWriter& operator=(const EventWriter&) = delete;

  // The path of the event file.
  const std::filesystem::path& path() const { return path_; }

  // Appends the scalar `value` (stored as a float, as TensorBoard does) under `tag` at `step`.
  // ValueError for an empty tag; IoError naming the file when the write fails.
  void add_scalar(const std::string& tag, double value, std::int64_t step,
                  double wall_time = wall_time_now());

  // Appends an image summary: `png` holds the encoded PNG of a height x width image with `channels`
  // (1 gray, 2 gray + alpha, 3 RGB, 4 RGBA). ValueError for an empty tag, bytes without the PNG signature,
  // or sizes out of range; IoError naming the file when the write fails.
  void add_image(const std::string& tag, std::span<const std::uint8_t> png, std::int32_t height,
                 std::int32_t width, std::int32_t channels, std::int64_t step,
                 double wall_time = wall_time_now());

  // Encodes `image` (u8 [C,H,W], C = 1 or 3; e.g. from image_grid) as PNG and appends it as above.
  void add_image(const std::string& tag, const Tensor& image, std::int64_t step,
                 double wall_time = wall_time_now());

  // Forces the records written so far to stable storage (fsync). IoError naming the file on failure.
  void flush();

 private:
  void write_record(const std::vector<std::uint8_t>& event);

  std::filesystem::path path_;
  int fd_ = -1;
  std::mutex mutex_;  // serialises write_record and flush
};

// Reads every record of a TFRecord-framed event file, checking each length and data CRC, and decodes the
// events (wall_time, step, file_version, scalar and image values; other fields are skipped). IoError
// naming the file and the byte offset of the record on a bad CRC, a truncated record or a malformed Event.
std::vector<TensorBoardEvent> read_events(const std::filesystem::path& path);

}  // namespace lockstep::io
