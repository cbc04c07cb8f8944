// A small strict JSON parser (recursive descent over RFC 8259) and string quoting.
#include "io/json/json.h"

#include <cstdio>

#include "src/core/error.h"

namespace lockstep::io {
namespace {

constexpr int kMaxDepth = 32;

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
    throw IoError(str_cat("expected ", expected, " in '", file_, "', but got ", got), file_);
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

}  // namespace

JsonValue parse_json(std::string_view text, const std::string& source) {
  return JsonParser(text, source).parse_document();
}

void append_json_string(std::string& out, std::string_view text) {
  out += '"';
  for (const char c : text) {
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
          std::snprintf(buf, sizeof(buf), "\\u%04x", static_cast<unsigned>(static_cast<unsigned char>(c)));
          out += buf;
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

}  // namespace lockstep::io
