// A run's metrics log: JSONL records and TensorBoard event files, truncated to the checkpoint on resume.
#include "launch/train/run_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <optional>
#include <string_view>
#include <system_error>

#include "io/json/json.h"
#include "src/core/error.h"

namespace lockstep::launch {

std::string format_number(double value) {
  char buffer[64];
  const auto [end, ec] = std::to_chars(buffer, buffer + sizeof(buffer), value);
  LOCKSTEP_INTERNAL_ASSERT(ec == std::errc(), "64 characters hold any double, but to_chars failed for ",
                           value);
  return std::string(buffer, end);
}

namespace {

namespace fs = std::filesystem;

// The numeric top-level "step" of one JSONL record; nullopt when the line is not a JSON object, has no such
// key, or its value is not a number.
std::optional<double> record_step(std::string_view line) {
  try {
    const io::JsonValue record = io::parse_json(line, "metrics.jsonl");
    const io::JsonValue* step = record.member("step");
    if (record.kind != io::JsonValue::Kind::kObject || step == nullptr ||
        step->kind != io::JsonValue::Kind::kNumber)
      return std::nullopt;
    double value = 0.0;
    std::from_chars(step->text.data(), step->text.data() + step->text.size(), value);
    return value;
  } catch (const IoError&) {
    return std::nullopt;  // not JSON: kept as it is
  }
}

// Reads the whole of `path`.
std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw IoError(str_cat("RunLog: cannot read the metrics file '", path.string(), "'"), path.string());
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad())
    throw IoError(str_cat("RunLog: cannot read the metrics file '", path.string(), "'"), path.string());
  return text;
}

// The lines of `text` a run resumed at `resumed_step` keeps: complete non-empty lines without a numeric
// "step" greater than resumed_step (a last line without a newline is torn and dropped).
std::string kept_records(const std::string& text, std::int64_t resumed_step) {
  std::string kept;
  std::size_t begin = 0;
  while (begin < text.size()) {
    const std::size_t end = text.find('\n', begin);
    if (end == std::string::npos) break;  // torn last line
    const std::string_view line(text.data() + begin, end - begin);
    begin = end + 1;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    const std::optional<double> step = record_step(line);
    if (step && *step > static_cast<double>(resumed_step)) continue;
    kept.append(line);
    kept += '\n';
  }
  return kept;
}

// Writes `text` to `path` through `path`.tmp renamed into place.
void replace_file(const fs::path& path, const std::string& text) {
  fs::path tmp = path;
  tmp += ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    out.close();
    if (!out) {
      throw IoError(str_cat("RunLog: cannot write the temporary metrics file '", tmp.string(), "'"),
                    tmp.string());
    }
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) {
    fs::remove(tmp, ec);
    throw IoError(
        str_cat("RunLog: cannot rename '", tmp.string(), "' to '", path.string(), "': ", ec.message()),
        path.string());
  }
}

// Creates `dir` and prepares <dir>/metrics.jsonl for a fresh (resumed_step < 0) or resumed run; returns
// its path.
fs::path prepare_jsonl(const fs::path& dir, std::int64_t resumed_step) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    throw IoError(str_cat("RunLog: cannot create the directory '", dir.string(), "': ", ec.message()),
                  dir.string());
  }
  const fs::path path = dir / "metrics.jsonl";
  if (resumed_step < 0 || !fs::exists(path)) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    if (!out) {
      throw IoError(str_cat("RunLog: cannot create the metrics file '", path.string(), "'"), path.string());
    }
  } else {
    replace_file(path, kept_records(read_text(path), resumed_step));
  }
  return path;
}

// The event file suffix of this process's next RunLog: ".<pid>.<n>".
std::string next_suffix() {
  static std::atomic<std::uint64_t> counter{0};
  return str_cat(".", ::getpid(), ".", counter.fetch_add(1));
}

}  // namespace

std::string tensorboard_tag(const std::string& field) {
  for (const std::string_view prefix : {std::string_view("train_"), std::string_view("test_")}) {
    if (field.size() > prefix.size() && field.compare(0, prefix.size(), prefix) == 0) {
      return str_cat(prefix.substr(0, prefix.size() - 1), "/", field.substr(prefix.size()));
    }
  }
  return field;
}

RunLog::RunLog(std::filesystem::path dir, std::int64_t resumed_step)
    : jsonl_path_(prepare_jsonl(dir, resumed_step)), events_(dir / "tensorboard", next_suffix()) {}

void RunLog::write(std::int64_t step, const std::vector<std::pair<std::string, double>>& fields,
                   const std::vector<std::pair<std::string, std::string>>& json) {
  std::string line = str_cat("{\"step\": ", step);
  for (std::size_t i = 0; i < fields.size(); ++i) {
    const auto& [name, value] = fields[i];
    LOCKSTEP_CHECK(!name.empty(), ValueError, "RunLog::write: expected non-empty field names, but field ", i,
                   " of the record at step ", step, " has none");
    if (name == "step") {
      LOCKSTEP_CHECK(value == static_cast<double>(step), ValueError,
                     "RunLog::write: the field \"step\" = ", format_number(value),
                     " disagrees with the record's step ", step);
      continue;
    }
    line += ", ";
    io::append_json_string(line, name);
    line += str_cat(": ", std::isfinite(value) ? format_number(value) : "null");
  }
  for (const auto& [name, text] : json) {
    LOCKSTEP_CHECK(!name.empty() && name != "step", ValueError,
                   "RunLog::write: expected JSON fields named other than \"\" and \"step\", but got \"", name,
                   "\"");
    try {
      io::parse_json(text, name);
    } catch (const IoError& e) {
      throw ValueError(
          str_cat("RunLog::write: expected a JSON value for the field \"", name, "\": ", e.what()));
    }
    line += ", ";
    io::append_json_string(line, name);
    line += str_cat(": ", text);
  }
  line += "}\n";

  const std::string name = jsonl_path_.string();
  const int fd = ::open(name.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) {
    const int err = errno;
    throw IoError(str_cat("RunLog::write: cannot open '", name, "' to append: ", std::strerror(err)), name);
  }
  std::size_t done = 0;
  while (done < line.size()) {
    const ssize_t n = ::write(fd, line.data() + done, line.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = errno;
      ::close(fd);
      throw IoError(str_cat("RunLog::write: cannot append to '", name, "': ", std::strerror(err)), name);
    }
    done += static_cast<std::size_t>(n);
  }
  ::close(fd);

  for (const auto& [field, value] : fields) {
    if (field == "step" || field == "epoch") continue;
    events_.add_scalar(tensorboard_tag(field), value, step);
  }
}

void RunLog::image(const std::string& tag, const Tensor& image, std::int64_t step) {
  events_.add_image(tag, image, step);
}

void RunLog::flush() {
  const std::string name = jsonl_path_.string();
  const int fd = ::open(name.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0 || ::fsync(fd) != 0) {
    const int err = errno;
    if (fd >= 0) ::close(fd);
    throw IoError(str_cat("RunLog::flush: cannot sync '", name, "': ", std::strerror(err)), name);
  }
  ::close(fd);
  events_.flush();
}

}  // namespace lockstep::launch
