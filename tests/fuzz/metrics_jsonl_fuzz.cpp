// libFuzzer harness of the metrics.jsonl reader used on resume (launch/train/run_log.h RunLog with a
// resumed step): the first input byte picks the resumed step (0-15), the rest is metrics.jsonl. Every
// record kept must still parse as JSON (io/json/json.h) with a step <= the resumed one.
#include <charconv>
#include <fstream>
#include <sstream>

#include "io/json/json.h"
#include "launch/train/run_log.h"
#include "src/core/error.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const auto& dir = lockstep::fuzz::scratch_dir("metrics_jsonl");
  const std::int64_t resumed_step = data[0] % 16;
  lockstep::fuzz::write_file(dir / "metrics.jsonl", {reinterpret_cast<const char*>(data) + 1, size - 1});
  try {
    const lockstep::train::RunLog log(dir, resumed_step);
  } catch (const lockstep::Error&) {
    return 0;
  }
  std::error_code ignored;
  std::filesystem::remove_all(dir / "tensorboard", ignored);
  std::ifstream in(dir / "metrics.jsonl", std::ios::binary);
  std::string line;
  while (std::getline(in, line)) {
    try {
      const lockstep::io::JsonValue record = lockstep::io::parse_json(line, "kept record");
      const lockstep::io::JsonValue* step = record.member("step");
      if (step != nullptr && step->kind == lockstep::io::JsonValue::Kind::kNumber) {
        double value = 0;
        std::from_chars(step->text.data(), step->text.data() + step->text.size(), value);
        if (value > static_cast<double>(resumed_step)) std::abort();
      }
    } catch (const lockstep::Error&) {
      // A line that was never a JSON object is kept as it was (the reader keeps what it cannot judge).
    }
  }
  return 0;
}
