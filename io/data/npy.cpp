// Reader of NumPy .npy files: magic and version, the header dict ({'descr': ..., 'fortran_order': ...,
// 'shape': (...)}) parsed by a small recursive-descent parser, then the payload read into a tensor.
#include "io/data/npy.h"

#include <array>
#include <bit>
#include <cctype>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "src/core/error.h"
#include "src/tensor/factories.h"

namespace lockstep::io {
namespace {

static_assert(std::endian::native == std::endian::little, "read_npy reads little-endian payloads in place");

constexpr std::string_view kMagic = "\x93NUMPY";
// The longest header accepted (NumPy writes under 100 bytes for these arrays and reads at most 10000
// without allow_pickle): a corrupt version 2/3 length field (up to 4 GiB) is an error, not an allocation.
constexpr std::int64_t kMaxHeaderBytes = 1 << 16;

struct NpyHeader {
  std::string descr;
  bool fortran_order = false;
  Shape shape;
};

// Parses the Python dict literal of an NPY header. Holds a view of the text; not thread-safe.
class HeaderParser {
 public:
  HeaderParser(std::string_view text, const SourceFile& file) : text_(text), file_(file) {}

  NpyHeader parse() {
    NpyHeader header;
    bool seen_descr = false;
    bool seen_order = false;
    bool seen_shape = false;
    expect('{');
    while (peek() != '}') {
      const std::string key = parse_string();
      expect(':');
      if (key == "descr") {
        header.descr = parse_string();
        seen_descr = true;
      } else if (key == "fortran_order") {
        header.fortran_order = parse_bool();
        seen_order = true;
      } else if (key == "shape") {
        header.shape = parse_tuple();
        seen_shape = true;
      } else {
        fail("only the keys 'descr', 'fortran_order' and 'shape'", str_cat("key '", key, "'"));
      }
      if (peek() != ',') break;
      ++pos_;
    }
    expect('}');
    if (!seen_descr || !seen_order || !seen_shape) {
      fail("the keys 'descr', 'fortran_order' and 'shape'", "a header missing one of them");
    }
    return header;
  }

 private:
  [[noreturn]] void fail(const std::string& expected, const std::string& got) const {
    std::string_view shown = text_;
    while (!shown.empty() && std::isspace(static_cast<unsigned char>(shown.back())) != 0)
      shown.remove_suffix(1);
    throw IoError(
        str_cat("read_npy: expected ", expected, " in the header of ", file_.describe(), ", but got ", got,
                " at offset ", pos_, " of \"", shown, "\". The header is not a valid NPY header."),
        file_.path().string());
  }

  // The next non-space character (0 at the end), without consuming it.
  char peek() {
    while (pos_ < text_.size() && std::isspace(static_cast<unsigned char>(text_[pos_])) != 0) ++pos_;
    return pos_ < text_.size() ? text_[pos_] : '\0';
  }

  std::string next_char_text() {
    return peek() == '\0' ? std::string("the end") : str_cat("'", text_[pos_], "'");
  }

  void expect(char c) {
    if (peek() != c) fail(str_cat("'", c, "'"), next_char_text());
    ++pos_;
  }

  std::string parse_string() {
    const char quote = peek();
    if (quote != '\'' && quote != '"') fail("a quoted string", next_char_text());
    const std::size_t end = text_.find(quote, pos_ + 1);
    if (end == std::string_view::npos) fail("a closing quote", "the end");
    std::string value(text_.substr(pos_ + 1, end - pos_ - 1));
    pos_ = end + 1;
    return value;
  }

  bool parse_bool() {
    peek();
    for (const auto& [word, value] :
         {std::pair{std::string_view("True"), true}, std::pair{std::string_view("False"), false}}) {
      if (text_.substr(pos_, word.size()) == word) {
        pos_ += word.size();
        return value;
      }
    }
    fail("True or False", next_char_text());
  }

  Shape parse_tuple() {
    expect('(');
    Shape shape;
    while (peek() != ')') {
      if (std::isdigit(static_cast<unsigned char>(peek())) == 0)
        fail("a non-negative integer", next_char_text());
      std::int64_t value = 0;
      while (pos_ < text_.size() && std::isdigit(static_cast<unsigned char>(text_[pos_])) != 0) {
        if (__builtin_mul_overflow(value, 10, &value) ||
            __builtin_add_overflow(value, text_[pos_] - '0', &value)) {
          fail("a dimension below 2^63", "a larger one");
        }
        ++pos_;
      }
      if (peek() == 'L') ++pos_;  // Python 2 long suffix
      shape.push_back(value);
      if (peek() != ',') break;
      ++pos_;
    }
    expect(')');
    return shape;
  }

  std::string_view text_;
  const SourceFile& file_;
  std::size_t pos_ = 0;
};

NpyHeader read_header(SourceFile& file) {
  std::array<char, 8> preamble{};
  const std::int64_t got = file.read(preamble.data(), 8);
  if (got < 8 || std::string_view(preamble.data(), kMagic.size()) != kMagic) {
    throw IoError(str_cat("read_npy: expected the NPY magic \\x93NUMPY at the start of ", file.describe(),
                          ", but it is not there. The file is not a .npy file."),
                  file.path().string());
  }
  const int major = static_cast<unsigned char>(preamble[6]);
  if (major < 1 || major > 3) {
    throw IoError(str_cat("read_npy: expected NPY format version 1, 2 or 3 in ", file.describe(),
                          ", but got version ", major, ".", int{static_cast<unsigned char>(preamble[7])}),
                  file.path().string());
  }
  std::array<unsigned char, 4> length_bytes{};
  const std::int64_t length_size = major == 1 ? 2 : 4;
  std::int64_t length = 0;
  if (file.read(length_bytes.data(), length_size) == length_size) {
    for (std::int64_t i = length_size - 1; i >= 0; --i)
      length = length << 8 | length_bytes[static_cast<std::size_t>(i)];
  }
  if (length > kMaxHeaderBytes) {
    throw IoError(str_cat("read_npy: expected a header of at most ", kMaxHeaderBytes, " bytes in ",
                          file.describe(), ", but its length field says ", length, ". The file is corrupt."),
                  file.path().string());
  }
  std::string text(static_cast<std::size_t>(length), '\0');
  if (length == 0 || file.read(text.data(), length) < length) {
    throw IoError(str_cat("read_npy: expected a complete header of ", length, " bytes in ", file.describe(),
                          ", but the file ends before it. The file is truncated."),
                  file.path().string());
  }
  return HeaderParser(text, file).parse();
}

void check_c_order(const NpyHeader& header, const SourceFile& file) {
  if (header.fortran_order) {
    throw IoError(str_cat("read_npy: expected fortran_order False in ", file.describe(),
                          ", but got True. Save a C-ordered array (numpy.ascontiguousarray)."),
                  file.path().string());
  }
}

// Reads the images payload into u8 [N,C,H,W].
Tensor read_images(SourceFile& file, NpyLayout layout) {
  const NpyHeader header = read_header(file);
  if (header.descr != "|u1" && header.descr != "<u1") {
    throw IoError(
        str_cat("read_npy: expected images of descr '|u1' (uint8) in ", file.describe(), ", but got '",
                header.descr, "'. Convert the array with .astype(numpy.uint8) first."),
        file.path().string());
  }
  check_c_order(header, file);
  const Shape& s = header.shape;
  const bool shape_ok = (s.size() == 3 || s.size() == 4) && numel_of(s) > 0 && s[0] > 0;
  if (!shape_ok || (s.size() == 4 && layout == NpyLayout::kNCHW && s[1] > 4 && s[3] <= 4)) {
    const std::string hint = shape_ok ? " It looks like [N,H,W,C]: pass NpyLayout::kNHWC." : "";
    throw IoError(
        str_cat("read_npy: expected images of shape [N,H,W] or ",
                layout == NpyLayout::kNCHW ? "[N,C,H,W]" : "[N,H,W,C]", " with positive extents in ",
                file.describe(), ", but got ", shape_str(s), ".", hint),
        file.path().string());
  }
  const std::string description = str_cat("NPY header + u8 array ", shape_str(s));
  const std::int64_t bytes = file.payload_bytes(s, 1);
  file.check_rest(bytes, description);
  Tensor images = empty(s, DType::u8);
  file.read_rest(images.data(), bytes, description);
  if (s.size() == 3) return images.unsqueeze(1);
  return layout == NpyLayout::kNHWC ? images.permute({0, 3, 1, 2}).contiguous() : images;
}

// Reads the labels payload into i64 [N], checking that none is negative.
Tensor read_labels(SourceFile& file) {
  const NpyHeader header = read_header(file);
  std::int64_t item_size = 0;
  if (header.descr == "<i8") item_size = 8;
  if (header.descr == "<i4") item_size = 4;
  if (header.descr == "|u1" || header.descr == "<u1") item_size = 1;
  if (item_size == 0) {
    throw IoError(
        str_cat("read_npy: expected labels of descr '<i8', '<i4' or '|u1' in ", file.describe(),
                ", but got '", header.descr, "'. Convert the array with .astype(numpy.int64) first."),
        file.path().string());
  }
  check_c_order(header, file);
  if (header.shape.size() != 1 || header.shape[0] == 0) {
    throw IoError(str_cat("read_npy: expected labels of shape [N] with N > 0 in ", file.describe(),
                          ", but got ", shape_str(header.shape)),
                  file.path().string());
  }
  const std::int64_t n = header.shape[0];
  const std::string description = str_cat("NPY header + ", header.descr, " array ", shape_str(header.shape));
  const std::int64_t bytes = file.payload_bytes(header.shape, item_size);
  file.check_rest(bytes, description);
  Tensor labels = empty({n}, DType::i64);
  auto* out = labels.data<std::int64_t>();
  if (item_size == 8) {
    file.read_rest(out, bytes, description);
  } else if (item_size == 4) {
    std::vector<std::int32_t> narrow(static_cast<std::size_t>(n));
    file.read_rest(narrow.data(), bytes, description);
    for (std::int64_t i = 0; i < n; ++i) out[i] = narrow[static_cast<std::size_t>(i)];
  } else {
    std::vector<std::uint8_t> narrow(static_cast<std::size_t>(n));
    file.read_rest(narrow.data(), bytes, description);
    for (std::int64_t i = 0; i < n; ++i) out[i] = narrow[static_cast<std::size_t>(i)];
  }
  for (std::int64_t i = 0; i < n; ++i) {
    if (out[i] < 0) {
      throw IoError(str_cat("read_npy: expected non-negative labels in ", file.describe(), ", but label ", i,
                            " is ", out[i]),
                    file.path().string());
    }
  }
  return labels;
}

}  // namespace

ImageSet read_npy(const std::filesystem::path& images_path, const std::filesystem::path& labels_path,
                  NpyLayout layout) {
  SourceFile labels_file(labels_path, "read_npy");
  SourceFile images_file(images_path, "read_npy");
  ImageSet set;
  set.labels = read_labels(labels_file);
  set.images = read_images(images_file, layout);
  if (set.images.size(0) != set.labels.size(0)) {
    throw IoError(str_cat("read_npy: expected as many labels as images, but labels file '",
                          labels_path.string(), "' holds ", set.labels.size(0), " labels and images file '",
                          images_path.string(), "' holds ", set.images.size(0), " images"),
                  labels_path.string());
  }
  for (const auto* path : {&images_path, &labels_path}) {
    set.source_files.push_back(std::filesystem::absolute(*path).lexically_normal().string());
    set.source_xxh64.push_back(file_xxh64(*path));
  }
  return set;
}

}  // namespace lockstep::io
