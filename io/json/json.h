// JSON for the files Lockstep writes and re-reads (checkpoint manifests, metrics.jsonl): a small strict
// RFC 8259 parser and string quoting, without a library.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace lockstep::io {

// A parsed JSON value. Numbers keep their literal text (convert with std::from_chars where needed).
struct JsonValue {
  enum class Kind { kNull, kBool, kNumber, kString, kArray, kObject };
  Kind kind = Kind::kNull;
  bool boolean = false;
  std::string text;  // string contents (UTF-8, escapes decoded) or number literal
  std::vector<JsonValue> items;
  std::vector<std::pair<std::string, JsonValue>> members;  // in document order

  // The first member named `key`, or null.
  const JsonValue* member(const std::string& key) const {
    for (const auto& [name, value] : members)
      if (name == key) return &value;
    return nullptr;
  }
};

// Parses one JSON document (nesting at most 32 levels). IoError "expected X in 'SOURCE', but got Y at
// byte N" (file = source) on any deviation, trailing text included.
JsonValue parse_json(std::string_view text, const std::string& source);

// Appends `text` as a JSON string literal: quotes, backslashes and control characters escaped.
void append_json_string(std::string& out, std::string_view text);

}  // namespace lockstep::io
