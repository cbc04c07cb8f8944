// JSON on nlohmann/json: a SAX handler that builds JsonValue (duplicate keys kept in document order, number
// literals as written) with Lockstep's nesting limit and error messages, and string quoting.
#include "io/json/json.h"

#include <cstdint>
#include <nlohmann/json.hpp>

#include "src/core/error.h"

namespace lockstep::io {
namespace {

constexpr int kMaxDepth = 32;

// What nlohmann's parser wanted where it stopped, in the words of "expected X": found in its message (the end
// of the document, the lexer's complaint, the token it expected), else "valid JSON".
std::string expected_of(const std::string& what) {
  if (what.find("; expected end of input") != std::string::npos) return "the end of the document";
  static const std::pair<const char*, const char*> kLexer[] = {
      {"forbidden character after backslash", "a valid escape"},
      {"must be escaped", "no raw control character in a string"},
      {"must be followed by 4 hex digits", "four hex digits"},
      {"must be followed by U+DC00..U+DFFF", "a low surrogate"},
      {"must follow U+D800..U+DBFF", "a high surrogate before a low one"},
      {"missing closing quote", "a closing '\"'"},
      {"ill-formed UTF-8", "UTF-8 text in a string"},
      {"invalid number", "a digit"},
      {"number overflow", "a finite number"},
      {"invalid literal", "a value"},
  };
  for (const auto& [needle, expected] : kLexer) {
    if (what.find(needle) != std::string::npos) return expected;
  }
  static const std::pair<const char*, const char*> kTokens[] = {
      {"; expected string literal", "a string key"},
      {"; expected '[', '{', or a literal", "a value"},
  };
  for (const auto& [needle, expected] : kTokens) {
    if (what.find(needle) != std::string::npos) return expected;
  }
  if (const std::size_t at = what.rfind("; expected "); at != std::string::npos) return what.substr(at + 11);
  return "valid JSON";
}

// Builds a JsonValue from nlohmann's SAX events. Every failure is an IoError "expected X in 'SOURCE', but got
// Y" naming the byte where parsing stopped.
class Builder : public nlohmann::json_sax<nlohmann::json> {
 public:
  Builder(std::string_view text, const std::string& source) : text_(text), source_(source) {}

  JsonValue take() { return std::move(root_); }

  bool null() override {
    add(JsonValue{});
    return true;
  }
  bool boolean(bool value) override {
    JsonValue v;
    v.kind = JsonValue::Kind::kBool;
    v.boolean = value;
    add(std::move(v));
    return true;
  }
  // Integers reach here as values; their decimal text is the literal (JSON has no leading zeros or '+'),
  // except "-0", which reads as "0".
  bool number_integer(number_integer_t value) override { return number(std::to_string(value)); }
  bool number_unsigned(number_unsigned_t value) override { return number(std::to_string(value)); }
  bool number_float(number_float_t, const string_t& literal) override { return number(literal); }
  bool string(string_t& value) override {
    JsonValue v;
    v.kind = JsonValue::Kind::kString;
    v.text = std::move(value);
    add(std::move(v));
    return true;
  }
  bool binary(binary_t&) override { return false; }  // only binary formats produce it: stop
  bool start_object(std::size_t) override { return open(JsonValue::Kind::kObject); }
  bool key(string_t& name) override {
    key_ = std::move(name);
    return true;
  }
  bool end_object() override {
    open_.pop_back();
    return true;
  }
  bool start_array(std::size_t) override { return open(JsonValue::Kind::kArray); }
  bool end_array() override {
    open_.pop_back();
    return true;
  }
  // position: how many bytes the parser had read, the offending one included.
  bool parse_error(std::size_t position, const std::string&, const nlohmann::detail::exception& e) override {
    const std::size_t at = position == 0 ? 0 : position - 1;
    fail(expected_of(e.what()),
         at < text_.size() ? str_cat("'", text_[at], "' at byte ", at) : std::string("the end of the file"));
  }

  [[noreturn]] void fail(const std::string& expected, const std::string& got) const {
    throw IoError(str_cat("expected ", expected, " in '", source_, "', but got ", got), source_);
  }

 private:
  bool number(std::string literal) {
    JsonValue v;
    v.kind = JsonValue::Kind::kNumber;
    v.text = std::move(literal);
    add(std::move(v));
    return true;
  }

  // Adds a complete value to the open array or object (after its key), or as the document; returns where it
  // now lives. Pointers to open containers stay valid: only the innermost one grows.
  JsonValue* add(JsonValue value) {
    if (open_.empty()) {
      root_ = std::move(value);
      return &root_;
    }
    JsonValue& parent = *open_.back();
    if (parent.kind == JsonValue::Kind::kArray) {
      parent.items.push_back(std::move(value));
      return &parent.items.back();
    }
    parent.members.emplace_back(std::move(key_), std::move(value));
    return &parent.members.back().second;
  }

  bool open(JsonValue::Kind kind) {
    if (open_.size() >= static_cast<std::size_t>(kMaxDepth)) {
      fail(str_cat("nesting of at most ", kMaxDepth, " levels"), "deeper nesting");
    }
    JsonValue v;
    v.kind = kind;
    open_.push_back(add(std::move(v)));
    return true;
  }

  std::string_view text_;
  const std::string& source_;
  JsonValue root_;
  std::vector<JsonValue*> open_;  // the arrays and objects being filled, outermost first
  std::string key_;               // the key of the next member of the innermost object
};

}  // namespace

JsonValue parse_json(std::string_view text, const std::string& source) {
  Builder builder(text, source);
  // nlohmann skips a UTF-8 byte-order mark; RFC 8259 forbids it in what we write, so it is an error here.
  if (text.substr(0, 3) == "\xEF\xBB\xBF") builder.fail("a value", "a byte-order mark at byte 0");
  const bool complete = nlohmann::json::sax_parse(text.begin(), text.end(), &builder,
                                                  nlohmann::json::input_format_t::json, /*strict=*/true,
                                                  /*ignore_comments=*/false);
  // Errors throw from Builder::parse_error; only a handler returning false (binary, never in JSON text) stops
  // the parser without one.
  LOCKSTEP_INTERNAL_ASSERT(complete, "parse_json: the parser stopped early on '", source, "'");
  return builder.take();
}

void append_json_string(std::string& out, std::string_view text) {
  try {
    out += nlohmann::json(std::string(text)).dump(-1, ' ', /*ensure_ascii=*/false,
                                                  nlohmann::json::error_handler_t::strict);
  } catch (const nlohmann::json::type_error&) {
    // Such a string could be written, but never read back: nlohmann's parser (like RFC 8259) wants UTF-8.
    std::size_t at = 0;
    while (at < text.size() && static_cast<unsigned char>(text[at]) < 0x80) ++at;
    throw ValueError(str_cat("append_json_string: expected UTF-8 text, but got an invalid byte sequence at ",
                             "or after byte ", at, " of '", text, "'"));
  }
}

}  // namespace lockstep::io
