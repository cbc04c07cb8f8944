// manifest.json: writing (escaped JSON, fsynced) and reading with a small strict JSON parser.
#include "io/checkpoint/manifest.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <set>
#include <utility>

#include "src/core/error.h"

namespace lockstep::io {
namespace {

constexpr int kMaxDepth = 32;

// A parsed JSON value. Numbers keep their literal text; only integers are ever converted.
struct JsonValue {
  enum class Kind { kNull, kBool, kNumber, kString, kArray, kObject };
  Kind kind = Kind::kNull;
  bool boolean = false;
  std::string text;  // string contents or number literal
  std::vector<JsonValue> items;
  std::vector<std::pair<std::string, JsonValue>> members;

  const JsonValue* member(const std::string& key) const {
    for (const auto& [name, value] : members)
      if (name == key) return &value;
    return nullptr;
  }
};

// Recursive descent over RFC 8259 JSON; every failure is an IoError naming the file and the byte offset.
class JsonParser {
 public:
  JsonParser(std::string_view text, std::string file) : text_(text), file_(std::move(file)) {}

  JsonValue parse_document() {
    JsonValue value = parse_value(0);
    skip_space();
    if (pos_ != text_.size()) fail("the end of the document");
    return value;
  }

 private:
  [[noreturn]] void fail(const std::string& expected) const {
    const std::string got = pos_ < text_.size() ? str_cat("'", text_[pos_], "' at byte ", pos_)
                                                : std::string("the end of the file");
    throw IoError(str_cat("read_manifest: expected ", expected, " in '", file_, "', but got ", got,
                          ". The checkpoint's manifest is damaged."),
                  file_);
  }

  void skip_space() {
    while (pos_ < text_.size() &&
           (text_[pos_] == ' ' || text_[pos_] == '\t' || text_[pos_] == '\n' || text_[pos_] == '\r'))
      ++pos_;
  }

  bool consume(char c) {
    skip_space();
    if (pos_ < text_.size() && text_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }

  void expect(char c) {
    if (!consume(c)) fail(str_cat("'", c, "'"));
  }

  bool consume_word(std::string_view word) {
    if (text_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }

  JsonValue parse_value(int depth) {
    if (depth > kMaxDepth) fail(str_cat("nesting of at most ", kMaxDepth, " levels"));
    skip_space();
    JsonValue value;
    if (pos_ >= text_.size()) fail("a value");
    const char c = text_[pos_];
    if (c == '{') {
      ++pos_;
      value.kind = JsonValue::Kind::kObject;
      if (consume('}')) return value;
      do {
        skip_space();
        if (pos_ >= text_.size() || text_[pos_] != '"') fail("a string key");
        std::string key = parse_string();
        expect(':');
        value.members.emplace_back(std::move(key), parse_value(depth + 1));
      } while (consume(','));
      expect('}');
    } else if (c == '[') {
      ++pos_;
      value.kind = JsonValue::Kind::kArray;
      if (consume(']')) return value;
      do {
        value.items.push_back(parse_value(depth + 1));
      } while (consume(','));
      expect(']');
    } else if (c == '"') {
      value.kind = JsonValue::Kind::kString;
      value.text = parse_string();
    } else if (c == '-' || (c >= '0' && c <= '9')) {
      value.kind = JsonValue::Kind::kNumber;
      const std::size_t start = pos_;
      if (text_[pos_] == '-') ++pos_;
      const auto digits = [&] {
        const std::size_t from = pos_;
        while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9') ++pos_;
        if (pos_ == from) fail("a digit");
      };
      digits();
      if (pos_ < text_.size() && text_[pos_] == '.') {
        ++pos_;
        digits();
      }
      if (pos_ < text_.size() && (text_[pos_] == 'e' || text_[pos_] == 'E')) {
        ++pos_;
        if (pos_ < text_.size() && (text_[pos_] == '+' || text_[pos_] == '-')) ++pos_;
        digits();
      }
      value.text = std::string(text_.substr(start, pos_ - start));
    } else if (consume_word("true")) {
      value.kind = JsonValue::Kind::kBool;
      value.boolean = true;
    } else if (consume_word("false")) {
      value.kind = JsonValue::Kind::kBool;
    } else if (!consume_word("null")) {
      fail("a value");
    }
    return value;
  }

  unsigned hex4() {
    unsigned code = 0;
    for (int i = 0; i < 4; ++i, ++pos_) {
      if (pos_ >= text_.size()) fail("four hex digits");
      const char h = text_[pos_];
      code <<= 4;
      if (h >= '0' && h <= '9')
        code |= static_cast<unsigned>(h - '0');
      else if (h >= 'a' && h <= 'f')
        code |= static_cast<unsigned>(h - 'a' + 10);
      else if (h >= 'A' && h <= 'F')
        code |= static_cast<unsigned>(h - 'A' + 10);
      else
        fail("a hex digit");
    }
    return code;
  }

  static void append_utf8(std::string& out, unsigned code) {
    if (code < 0x80) {
      out += static_cast<char>(code);
    } else if (code < 0x800) {
      out += static_cast<char>(0xC0 | (code >> 6));
      out += static_cast<char>(0x80 | (code & 0x3F));
    } else if (code < 0x10000) {
      out += static_cast<char>(0xE0 | (code >> 12));
      out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (code & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (code >> 18));
      out += static_cast<char>(0x80 | ((code >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (code & 0x3F));
    }
  }

  // At an opening quote; returns the unescaped contents.
  std::string parse_string() {
    ++pos_;
    std::string out;
    for (;;) {
      if (pos_ >= text_.size()) fail("a closing '\"'");
      const char c = text_[pos_++];
      if (c == '"') return out;
      if (static_cast<unsigned char>(c) < 0x20) {
        --pos_;
        fail("no raw control character in a string");
      }
      if (c != '\\') {
        out += c;
        continue;
      }
      if (pos_ >= text_.size()) fail("an escape");
      const char e = text_[pos_++];
      switch (e) {
        case '"':
          out += '"';
          break;
        case '\\':
          out += '\\';
          break;
        case '/':
          out += '/';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'u': {
          unsigned code = hex4();
          if (code >= 0xD800 && code < 0xDC00) {
            if (!consume_word("\\u")) fail("a low surrogate");
            const unsigned low = hex4();
            if (low < 0xDC00 || low >= 0xE000) fail("a low surrogate");
            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
          }
          append_utf8(out, code);
          break;
        }
        default:
          --pos_;
          fail("a valid escape");
      }
    }
  }

  std::string_view text_;
  std::string file_;
  std::size_t pos_ = 0;
};

void append_escaped(std::string& out, const std::string& s) {
  out += '"';
  for (const char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", static_cast<unsigned>(c));
          out += buf;
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

[[noreturn]] void invalid(const std::string& file, const std::string& expected, const std::string& got) {
  throw IoError(str_cat("read_manifest: expected ", expected, " in '", file, "', but got ", got,
                        ". The checkpoint's manifest is damaged."),
                file);
}

const JsonValue& required(const JsonValue& object, const std::string& key, JsonValue::Kind kind,
                          const char* kind_name, const std::string& where, const std::string& file) {
  const JsonValue* value = object.member(key);
  if (value == nullptr) invalid(file, str_cat("key \"", key, "\" in ", where), "none");
  if (value->kind != kind)
    invalid(file, str_cat("\"", key, "\" in ", where, " to be ", kind_name), "another kind of value");
  return *value;
}

template <class T>
T integer(const JsonValue& object, const std::string& key, const std::string& where,
          const std::string& file) {
  const JsonValue& value = required(object, key, JsonValue::Kind::kNumber, "a number", where, file);
  T out{};
  const char* first = value.text.data();
  const char* last = first + value.text.size();
  const auto [end, ec] = std::from_chars(first, last, out);
  if (ec != std::errc() || end != last)
    invalid(file, str_cat("\"", key, "\" in ", where, " to be an integer in range"), value.text);
  return out;
}

bool valid_name(const std::string& name) {
  if (name.empty() || name.front() == '/' || name == kManifestName) return false;
  std::size_t start = 0;
  while (start <= name.size()) {
    std::size_t end = name.find('/', start);
    if (end == std::string::npos) end = name.size();
    const std::string part = name.substr(start, end - start);
    if (part.empty() || part == "." || part == ".." || part.find('\0') != std::string::npos) return false;
    start = end + 1;
  }
  return true;
}

bool valid_hex16(const std::string& s) {
  if (s.size() != 16) return false;
  for (const char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

}  // namespace

std::string manifest_json(const Manifest& manifest) {
  std::string out = str_cat("{\n  \"format_version\": ", manifest.format_version,
                            ",\n  \"step\": ", manifest.step, ",\n  \"files\": [");
  for (std::size_t i = 0; i < manifest.files.size(); ++i) {
    const ManifestEntry& f = manifest.files[i];
    out += i == 0 ? "\n    {\"name\": " : ",\n    {\"name\": ";
    append_escaped(out, f.name);
    out += str_cat(", \"bytes\": ", f.bytes, ", \"xxh64\": ");
    append_escaped(out, f.xxh64);
    out += "}";
  }
  out += manifest.files.empty() ? "]\n}\n" : "\n  ]\n}\n";
  return out;
}

void write_manifest(const std::filesystem::path& file, const Manifest& manifest) {
  const std::string text = manifest_json(manifest);
  const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) {
    throw IoError(str_cat("write_manifest: expected to create '", file.string(),
                          "', but it failed: ", std::strerror(errno)),
                  file.string());
  }
  std::size_t written = 0;
  int error = 0;
  while (written < text.size()) {
    const ssize_t n = ::write(fd, text.data() + written, text.size() - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      error = errno;
      break;
    }
    written += static_cast<std::size_t>(n);
  }
  if (error == 0 && ::fsync(fd) != 0) error = errno;
  if (::close(fd) != 0 && error == 0) error = errno;
  if (error != 0) {
    throw IoError(str_cat("write_manifest: expected to write and fsync '", file.string(),
                          "', but it failed: ", std::strerror(error)),
                  file.string());
  }
}

Manifest read_manifest(const std::filesystem::path& path) {
  const std::string file = path.string();
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw IoError(
        str_cat("read_manifest: expected a readable manifest at '", file,
                "', but opening it failed: ", std::strerror(errno), ". The checkpoint is incomplete."),
        file);
  }
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) {
    throw IoError(str_cat("read_manifest: expected to read '", file, "', but reading failed"), file);
  }
  const JsonValue root = JsonParser(text, file).parse_document();
  if (root.kind != JsonValue::Kind::kObject) invalid(file, "a JSON object at the top level", "another value");

  Manifest manifest;
  manifest.format_version = integer<int>(root, "format_version", "the manifest", file);
  if (manifest.format_version != kManifestFormatVersion) {
    invalid(file, str_cat("format_version ", kManifestFormatVersion),
            str_cat(manifest.format_version, " (written by another Lockstep version?)"));
  }
  manifest.step = integer<std::int64_t>(root, "step", "the manifest", file);
  const JsonValue& files = required(root, "files", JsonValue::Kind::kArray, "an array", "the manifest", file);
  std::set<std::string> seen;
  for (std::size_t i = 0; i < files.items.size(); ++i) {
    const JsonValue& item = files.items[i];
    const std::string where = str_cat("files[", i, "]");
    if (item.kind != JsonValue::Kind::kObject) invalid(file, where + " to be an object", "another value");
    ManifestEntry entry;
    entry.name = required(item, "name", JsonValue::Kind::kString, "a string", where, file).text;
    entry.bytes = integer<std::uint64_t>(item, "bytes", where, file);
    entry.xxh64 = required(item, "xxh64", JsonValue::Kind::kString, "a string", where, file).text;
    if (!valid_name(entry.name)) {
      invalid(file,
              str_cat(where, ".name to be a relative path without '.', '..' or empty parts (and not ",
                      kManifestName, ")"),
              str_cat("\"", entry.name, "\""));
    }
    if (!seen.insert(entry.name).second)
      invalid(file, "unique file names", str_cat("\"", entry.name, "\" twice"));
    if (!valid_hex16(entry.xxh64)) {
      invalid(file, where + ".xxh64 to be 16 lowercase hex digits", str_cat("\"", entry.xxh64, "\""));
    }
    manifest.files.push_back(std::move(entry));
  }
  return manifest;
}

}  // namespace lockstep::io
