// TensorBoard event files: the few protobuf fields of tensorflow/core/util/event.proto and
// tensorflow/core/framework/summary.proto that scalars and images need, encoded and decoded by hand, in
// TFRecord framing with masked CRC-32C (boost/crc.hpp).
#include "io/metrics/tensorboard.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <boost/crc.hpp>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <system_error>
#include <utility>

#include "io/metrics/png_encode.h"

namespace lockstep::io {

namespace {

using Bytes = std::vector<std::uint8_t>;
using ByteSpan = std::span<const std::uint8_t>;

// Protobuf wire types used here (groups, 3 and 4, are not).
enum class WireType : std::uint32_t { kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5 };

// Field numbers of the messages written and read.
namespace event_field {
constexpr std::uint32_t kWallTime = 1;     // double
constexpr std::uint32_t kStep = 2;         // int64
constexpr std::uint32_t kFileVersion = 3;  // string
constexpr std::uint32_t kSummary = 5;      // Summary
}  // namespace event_field
constexpr std::uint32_t kSummaryValue = 1;  // Summary: repeated Value
namespace value_field {
constexpr std::uint32_t kTag = 1;          // string
constexpr std::uint32_t kSimpleValue = 2;  // float
constexpr std::uint32_t kImage = 4;        // Summary.Image
}  // namespace value_field
namespace image_field {
constexpr std::uint32_t kHeight = 1;      // int32
constexpr std::uint32_t kWidth = 2;       // int32
constexpr std::uint32_t kColorspace = 3;  // int32
constexpr std::uint32_t kEncoded = 4;     // bytes
}  // namespace image_field

constexpr std::size_t kLengthSize = 8;
constexpr std::size_t kCrcSize = 4;
constexpr std::size_t kHeaderSize = kLengthSize + kCrcSize;
constexpr std::uint32_t kCrcMaskDelta = 0xa282ead8U;
constexpr std::uint8_t kPngSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
constexpr int kMaxVarintBytes = 10;

// ---- encoding ----

void put_varint(Bytes& out, std::uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<std::uint8_t>(v | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<std::uint8_t>(v));
}

void put_le(Bytes& out, std::uint64_t v, std::size_t size) {
  for (std::size_t i = 0; i < size; ++i) out.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}

void put_key(Bytes& out, std::uint32_t field, WireType type) {
  put_varint(out, (static_cast<std::uint64_t>(field) << 3) | static_cast<std::uint32_t>(type));
}

// int32/int64 fields are varints of the two's-complement value (10 bytes when negative).
void put_int(Bytes& out, std::uint32_t field, std::int64_t v) {
  put_key(out, field, WireType::kVarint);
  put_varint(out, static_cast<std::uint64_t>(v));
}

void put_double(Bytes& out, std::uint32_t field, double v) {
  put_key(out, field, WireType::kFixed64);
  put_le(out, std::bit_cast<std::uint64_t>(v), 8);
}

void put_float(Bytes& out, std::uint32_t field, float v) {
  put_key(out, field, WireType::kFixed32);
  put_le(out, std::bit_cast<std::uint32_t>(v), 4);
}

void put_bytes(Bytes& out, std::uint32_t field, ByteSpan bytes) {
  put_key(out, field, WireType::kLengthDelimited);
  put_varint(out, bytes.size());
  out.insert(out.end(), bytes.begin(), bytes.end());
}

void put_string(Bytes& out, std::uint32_t field, const std::string& s) {
  put_bytes(out, field, ByteSpan(reinterpret_cast<const std::uint8_t*>(s.data()), s.size()));
}

// An Event with wall_time and step, and `what` (already encoded) as field `what_field`.
Bytes encode_event(double wall_time, std::int64_t step, std::uint32_t what_field, ByteSpan what) {
  Bytes event;
  event.reserve(what.size() + 32);
  put_double(event, event_field::kWallTime, wall_time);
  put_int(event, event_field::kStep, step);
  put_bytes(event, what_field, what);
  return event;
}

// A Summary holding the one encoded Value `value`.
Bytes encode_summary(const Bytes& value) {
  Bytes summary;
  summary.reserve(value.size() + 8);
  put_bytes(summary, kSummaryValue, value);
  return summary;
}

std::uint32_t load_le32(const std::uint8_t* p) {
  std::uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

std::uint64_t load_le64(const std::uint8_t* p) {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

std::string hex32(std::uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "0x%08x", v);
  return buf;
}

std::string host_name() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof(buf) - 1) != 0 || buf[0] == '\0') return "localhost";
  return buf;
}

void check_tag(const char* function, const std::string& tag) {
  LOCKSTEP_CHECK(!tag.empty(), ValueError, function, ": expected a non-empty tag, but got \"\"",
                 ". Name the curve, e.g. \"train/loss\"");
}

// ---- decoding ----

// Where a record lies, for error messages.
struct RecordContext {
  const std::string& file;
  std::size_t offset;
};

[[noreturn]] void fail_record(const RecordContext& ctx, const std::string& what) {
  throw IoError(str_cat("read_events: ", what, " in the record at byte offset ", ctx.offset, " of '",
                        ctx.file, "'. The file is corrupt or not a TensorBoard event file"),
                ctx.file, str_cat("byte offset ", ctx.offset));
}

// Reads protobuf fields from one message's bytes; any overrun is a malformed record.
class ProtoReader {
 public:
  ProtoReader(ByteSpan bytes, const RecordContext& ctx) : bytes_(bytes), ctx_(ctx) {}

  bool done() const { return pos_ == bytes_.size(); }

  // The next key: its field number and wire type.
  std::pair<std::uint64_t, std::uint32_t> key() {
    const std::uint64_t k = varint();
    return {k >> 3, static_cast<std::uint32_t>(k & 7)};
  }

  std::uint64_t varint() {
    std::uint64_t v = 0;
    for (int i = 0; i < kMaxVarintBytes; ++i) {
      need(1);
      const std::uint8_t b = bytes_[pos_++];
      v |= static_cast<std::uint64_t>(b & 0x7f) << (7 * i);
      if ((b & 0x80) == 0) return v;
    }
    fail_record(ctx_, "expected a varint of at most 10 bytes, but got a longer one");
  }

  std::uint64_t fixed64() {
    need(8);
    const std::uint64_t v = load_le64(bytes_.data() + pos_);
    pos_ += 8;
    return v;
  }

  std::uint32_t fixed32() {
    need(4);
    const std::uint32_t v = load_le32(bytes_.data() + pos_);
    pos_ += 4;
    return v;
  }

  ByteSpan length_delimited() {
    const std::uint64_t n = varint();
    need(n);
    const ByteSpan s = bytes_.subspan(pos_, static_cast<std::size_t>(n));
    pos_ += static_cast<std::size_t>(n);
    return s;
  }

  // Reads and drops a field of wire type `type`.
  void skip(std::uint32_t type) {
    switch (type) {
      case static_cast<std::uint32_t>(WireType::kVarint):
        varint();
        return;
      case static_cast<std::uint32_t>(WireType::kFixed64):
        fixed64();
        return;
      case static_cast<std::uint32_t>(WireType::kLengthDelimited):
        length_delimited();
        return;
      case static_cast<std::uint32_t>(WireType::kFixed32):
        fixed32();
        return;
      default:
        fail_record(ctx_, str_cat("expected a protobuf wire type 0, 1, 2 or 5, but got ", type));
    }
  }

  // Checks that field `field` has wire type `expected`.
  void expect(std::uint64_t field, std::uint32_t type, WireType expected) const {
    if (type != static_cast<std::uint32_t>(expected)) {
      fail_record(ctx_, str_cat("expected wire type ", static_cast<std::uint32_t>(expected), " for field ",
                                field, ", but got ", type));
    }
  }

 private:
  void need(std::uint64_t n) const {
    if (n > bytes_.size() - pos_) {
      fail_record(ctx_, str_cat("expected ", n, " more bytes of protobuf at position ", pos_, ", but got ",
                                bytes_.size() - pos_));
    }
  }

  ByteSpan bytes_;
  const RecordContext& ctx_;
  std::size_t pos_ = 0;
};

std::string as_string(ByteSpan s) { return std::string(s.begin(), s.end()); }

SummaryImage decode_image(ByteSpan bytes, const RecordContext& ctx) {
  SummaryImage image;
  ProtoReader in(bytes, ctx);
  while (!in.done()) {
    const auto [field, type] = in.key();
    if (field == image_field::kHeight || field == image_field::kWidth || field == image_field::kColorspace) {
      in.expect(field, type, WireType::kVarint);
      // int32 fields: a negative value arrives sign-extended to 64 bits.
      const auto v = static_cast<std::int32_t>(static_cast<std::int64_t>(in.varint()));
      if (field == image_field::kHeight) {
        image.height = v;
      } else if (field == image_field::kWidth) {
        image.width = v;
      } else {
        image.channels = v;
      }
    } else if (field == image_field::kEncoded) {
      in.expect(field, type, WireType::kLengthDelimited);
      const ByteSpan s = in.length_delimited();
      image.encoded.assign(s.begin(), s.end());
    } else {
      in.skip(type);
    }
  }
  return image;
}

SummaryValue decode_value(ByteSpan bytes, const RecordContext& ctx) {
  SummaryValue value;
  ProtoReader in(bytes, ctx);
  while (!in.done()) {
    const auto [field, type] = in.key();
    if (field == value_field::kTag) {
      in.expect(field, type, WireType::kLengthDelimited);
      value.tag = as_string(in.length_delimited());
    } else if (field == value_field::kSimpleValue) {
      in.expect(field, type, WireType::kFixed32);
      value.scalar = std::bit_cast<float>(in.fixed32());
    } else if (field == value_field::kImage) {
      in.expect(field, type, WireType::kLengthDelimited);
      value.image = decode_image(in.length_delimited(), ctx);
    } else {
      in.skip(type);
    }
  }
  return value;
}

TensorBoardEvent decode_event(ByteSpan bytes, const RecordContext& ctx) {
  TensorBoardEvent event;
  ProtoReader in(bytes, ctx);
  while (!in.done()) {
    const auto [field, type] = in.key();
    if (field == event_field::kWallTime) {
      in.expect(field, type, WireType::kFixed64);
      event.wall_time = std::bit_cast<double>(in.fixed64());
    } else if (field == event_field::kStep) {
      in.expect(field, type, WireType::kVarint);
      event.step = static_cast<std::int64_t>(in.varint());
    } else if (field == event_field::kFileVersion) {
      in.expect(field, type, WireType::kLengthDelimited);
      event.file_version = as_string(in.length_delimited());
    } else if (field == event_field::kSummary) {
      in.expect(field, type, WireType::kLengthDelimited);
      ProtoReader summary(in.length_delimited(), ctx);
      while (!summary.done()) {
        const auto [sfield, stype] = summary.key();
        if (sfield == kSummaryValue) {
          summary.expect(sfield, stype, WireType::kLengthDelimited);
          event.values.push_back(decode_value(summary.length_delimited(), ctx));
        } else {
          summary.skip(stype);
        }
      }
    } else {
      in.skip(type);
    }
  }
  return event;
}

}  // namespace

std::uint32_t crc32c(std::span<const std::uint8_t> bytes) {
  boost::crc_optimal<32, 0x1EDC6F41, 0xFFFFFFFF, 0xFFFFFFFF, true, true> crc;
  crc.process_bytes(bytes.data(), bytes.size());
  return crc.checksum();
}

std::uint32_t mask_crc32c(std::uint32_t crc) { return ((crc >> 15) | (crc << 17)) + kCrcMaskDelta; }

double wall_time_now() {
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  return std::chrono::duration<double>(now).count();
}

EventWriter::EventWriter(std::filesystem::path dir, std::string suffix) {
  LOCKSTEP_CHECK(suffix.find('/') == std::string::npos, ValueError,
                 "EventWriter: expected a file name suffix without '/', but got \"", suffix, "\"");
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    throw IoError(str_cat("EventWriter: cannot create the directory '", dir.string(), "': ", ec.message()),
                  dir.string());
  }
  // One clock for the file name's stamp and the first event's time (time() reads a coarser clock, which can
  // be a second behind system_clock's just after a second begins).
  const double now = wall_time_now();
  char stamp[32];
  std::snprintf(stamp, sizeof(stamp), "%010lld", static_cast<long long>(std::floor(now)));
  path_ = dir / str_cat("events.out.tfevents.", stamp, ".", host_name(), suffix);
  const std::string name = path_.string();
  fd_ = ::open(name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0644);
  if (fd_ < 0) {
    const int err = errno;
    throw IoError(str_cat("EventWriter: cannot create the event file '", name, "': ", std::strerror(err),
                          err == EEXIST ? ". Give each writer in this directory its own suffix" : ""),
                  name);
  }
  const std::string version = kEventFileVersion;
  const Bytes event =
      encode_event(now, 0, event_field::kFileVersion,
                   ByteSpan(reinterpret_cast<const std::uint8_t*>(version.data()), version.size()));
  try {
    write_record(event);
  } catch (...) {
    ::close(fd_);
    throw;
  }
}

EventWriter::~EventWriter() {
  if (fd_ >= 0) ::close(fd_);
}

void EventWriter::add_scalar(const std::string& tag, double value, std::int64_t step, double wall_time) {
  check_tag("EventWriter::add_scalar", tag);
  Bytes v;
  put_string(v, value_field::kTag, tag);
  put_float(v, value_field::kSimpleValue, static_cast<float>(value));
  write_record(encode_event(wall_time, step, event_field::kSummary, encode_summary(v)));
}

void EventWriter::add_image(const std::string& tag, std::span<const std::uint8_t> png, std::int32_t height,
                            std::int32_t width, std::int32_t channels, std::int64_t step, double wall_time) {
  check_tag("EventWriter::add_image", tag);
  LOCKSTEP_CHECK(height > 0 && width > 0 && channels >= 1 && channels <= 4, ValueError,
                 "EventWriter::add_image: expected height > 0, width > 0 and 1 <= channels <= 4, but got ",
                 height, " x ", width, " x ", channels, " for tag \"", tag, "\"");
  LOCKSTEP_CHECK(png.size() > sizeof(kPngSignature) &&
                     std::equal(std::begin(kPngSignature), std::end(kPngSignature), png.begin()),
                 ValueError, "EventWriter::add_image: expected encoded PNG bytes, but got ", png.size(),
                 " bytes without the PNG signature for tag \"", tag, "\". Encode with encode_png");
  Bytes image;
  image.reserve(png.size() + 32);
  put_int(image, image_field::kHeight, height);
  put_int(image, image_field::kWidth, width);
  put_int(image, image_field::kColorspace, channels);
  put_bytes(image, image_field::kEncoded, png);
  Bytes v;
  v.reserve(image.size() + tag.size() + 16);
  put_string(v, value_field::kTag, tag);
  put_bytes(v, value_field::kImage, image);
  write_record(encode_event(wall_time, step, event_field::kSummary, encode_summary(v)));
}

void EventWriter::add_image(const std::string& tag, const Tensor& image, std::int64_t step,
                            double wall_time) {
  const Bytes png = encode_png(image);
  add_image(tag, png, static_cast<std::int32_t>(image.size(1)), static_cast<std::int32_t>(image.size(2)),
            static_cast<std::int32_t>(image.size(0)), step, wall_time);
}

void EventWriter::flush() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (::fsync(fd_) != 0) {
    const int err = errno;
    throw IoError(str_cat("EventWriter::flush: cannot sync '", path_.string(), "': ", std::strerror(err)),
                  path_.string());
  }
}

void EventWriter::write_record(const Bytes& event) {
  Bytes record;
  record.reserve(kHeaderSize + event.size() + kCrcSize);
  put_le(record, event.size(), kLengthSize);
  put_le(record, mask_crc32c(crc32c(ByteSpan(record.data(), kLengthSize))), kCrcSize);
  record.insert(record.end(), event.begin(), event.end());
  put_le(record, mask_crc32c(crc32c(event)), kCrcSize);

  std::lock_guard<std::mutex> lock(mutex_);
  std::size_t done = 0;
  while (done < record.size()) {
    const ssize_t n = ::write(fd_, record.data() + done, record.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = n < 0 ? errno : EIO;
      throw IoError(
          str_cat("EventWriter: cannot write a record to '", path_.string(), "': ", std::strerror(err)),
          path_.string());
    }
    done += static_cast<std::size_t>(n);
  }
}

std::vector<TensorBoardEvent> read_events(const std::filesystem::path& path) {
  const std::string name = path.string();
  std::ifstream file(path, std::ios::binary);
  if (!file) throw IoError(str_cat("read_events: cannot open '", name, "' for reading"), name);
  const Bytes data((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  if (file.bad()) throw IoError(str_cat("read_events: cannot read '", name, "'"), name);

  std::vector<TensorBoardEvent> events;
  std::size_t offset = 0;
  while (offset < data.size()) {
    const RecordContext ctx{name, offset};
    const std::size_t left = data.size() - offset;
    if (left < kHeaderSize) {
      fail_record(ctx, str_cat("expected a ", kHeaderSize, "-byte length and CRC, but got ", left,
                               " bytes (a truncated record)"));
    }
    const std::uint8_t* p = data.data() + offset;
    const std::uint32_t length_crc = mask_crc32c(crc32c(ByteSpan(p, kLengthSize)));
    const std::uint32_t stored_length_crc = load_le32(p + kLengthSize);
    if (length_crc != stored_length_crc) {
      fail_record(ctx, str_cat("expected the masked CRC-32C of the length to be ", hex32(length_crc),
                               ", but got ", hex32(stored_length_crc)));
    }
    const std::uint64_t length = load_le64(p);
    if (length > left - kHeaderSize || left - kHeaderSize - length < kCrcSize) {
      fail_record(ctx, str_cat("expected ", length, " bytes of data and a 4-byte CRC, but got ",
                               left - kHeaderSize, " bytes (a truncated record)"));
    }
    const ByteSpan payload(p + kHeaderSize, static_cast<std::size_t>(length));
    const std::uint32_t data_crc = mask_crc32c(crc32c(payload));
    const std::uint32_t stored_data_crc = load_le32(p + kHeaderSize + length);
    if (data_crc != stored_data_crc) {
      fail_record(ctx, str_cat("expected the masked CRC-32C of the ", length, " data bytes to be ",
                               hex32(data_crc), ", but got ", hex32(stored_data_crc)));
    }
    events.push_back(decode_event(payload, ctx));
    offset += kHeaderSize + static_cast<std::size_t>(length) + kCrcSize;
  }
  return events;
}

}  // namespace lockstep::io
