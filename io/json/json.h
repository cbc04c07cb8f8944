// JSON for the files Lockstep writes and re-reads (checkpoint manifests, metrics.jsonl): a strict RFC 8259
// parser and string quoting, on nlohmann/json (kept out of this header).
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace lockstep::io {

// A parsed JSON value. Numbers keep their literal text (convert with std::from_chars where needed); integers
// their decimal text ("-0" reads as "0"). Objects keep every member, duplicate keys included, in order.
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

// Parses one JSON document (at most 32 nested arrays and objects; UTF-8 strings; finite numbers; no
// byte-order mark, comments or trailing text). IoError "expected X in 'SOURCE', but got Y at byte N"
// (file = source) on any deviation.
JsonValue parse_json(std::string_view text, const std::string& source);

// Appends `text` as a JSON string literal: quotes, backslashes and control characters escaped, other bytes as
// they are. Throws ValueError unless `text` is UTF-8 (parse_json could not read it back).
void append_json_string(std::string& out, std::string_view text);

}  // namespace lockstep::io
