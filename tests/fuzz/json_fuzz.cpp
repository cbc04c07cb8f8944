// libFuzzer harness of io/json (the parser of metrics.jsonl records read on resume and of checkpoint
// manifests): the input is a metrics.jsonl file, each line parsed as one document; every string value
// must survive append_json_string and a second parse unchanged. (RunLog's resume reader itself needs the
// tensor library, which this clang build cannot link with libc++; see CMakeLists.txt.)
#include <cstdlib>
#include <string>
#include <string_view>

#include "io/json/json.h"
#include "src/core/error.h"

namespace {

void check_strings(const lockstep::io::JsonValue& value) {
  using Kind = lockstep::io::JsonValue::Kind;
  if (value.kind == Kind::kString) {
    std::string quoted;
    lockstep::io::append_json_string(quoted, value.text);
    const lockstep::io::JsonValue back = lockstep::io::parse_json(quoted, "quoted string");
    if (back.kind != Kind::kString || back.text != value.text) std::abort();
  }
  for (const auto& item : value.items) check_strings(item);
  for (const auto& [name, member] : value.members) {
    check_strings(member);
    std::string quoted;
    lockstep::io::append_json_string(quoted, name);
    if (lockstep::io::parse_json(quoted, "quoted name").text != name) std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  std::size_t start = 0;
  for (int line = 1; start <= text.size(); ++line) {
    const std::size_t end = text.find('\n', start);
    const std::string_view record = text.substr(start, end == std::string_view::npos ? end : end - start);
    try {
      check_strings(lockstep::io::parse_json(record, "metrics.jsonl:" + std::to_string(line)));
    } catch (const lockstep::Error&) {
    }
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  return 0;
}
