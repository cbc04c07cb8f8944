// Tests of RunLog, a run's metrics log: JSONL records parsed back by hand (exact numbers, null for
// non-finite values, escaped names), the truncation to the checkpoint's step on resume and of a fresh run,
// the TensorBoard scalars and images decoded with the verifying reader, and unique event files.
#include "launch/train/run_log.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "io/image/grid.h"
#include "io/json/json.h"
#include "io/image/png.h"
#include "io/metrics/tensorboard.h"
#include "src/core/error.h"
#include "src/tensor/factories.h"
#include "tests/support/expect_error.h"
#include "tests/support/temp_dir.h"

namespace lockstep::launch {
namespace {

namespace fs = std::filesystem;
using Fields = std::vector<std::pair<std::string, double>>;
// One parsed JSONL record: (key, value) in file order, nullopt for null.
using Record = std::vector<std::pair<std::string, std::optional<double>>>;

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::size_t begin = 0;
  while (begin < text.size()) {
    std::size_t end = text.find('\n', begin);
    if (end == std::string::npos) end = text.size();
    lines.push_back(text.substr(begin, end - begin));
    begin = end + 1;
  }
  return lines;
}

// Parses a flat JSON object of string keys and number/null values, as RunLog writes it; fails the test on
// anything else.
Record parse_record(const std::string& line) {
  Record record;
  std::size_t at = 0;
  auto skip = [&] {
    while (at < line.size() && line[at] == ' ') ++at;
  };
  auto expect = [&](char c) {
    skip();
    if (at >= line.size() || line[at] != c) {
      ADD_FAILURE() << "expected '" << c << "' at " << at << " in: " << line;
      return false;
    }
    ++at;
    return true;
  };
  if (!expect('{')) return record;
  skip();
  if (at < line.size() && line[at] == '}') return record;
  while (true) {
    if (!expect('"')) return record;
    std::string key;
    while (at < line.size() && line[at] != '"') {
      if (line[at] == '\\') ++at;
      key += line[at++];
    }
    ++at;
    if (!expect(':')) return record;
    skip();
    if (line.compare(at, 4, "null") == 0) {
      record.emplace_back(key, std::nullopt);
      at += 4;
    } else {
      const char* begin = line.c_str() + at;
      char* end = nullptr;
      const double value = std::strtod(begin, &end);
      if (end == begin) {
        ADD_FAILURE() << "expected a number at " << at << " in: " << line;
        return record;
      }
      record.emplace_back(key, value);
      at += static_cast<std::size_t>(end - begin);
    }
    skip();
    if (at < line.size() && line[at] == '}') {
      EXPECT_EQ(at + 1, line.size()) << "text after the object: " << line;
      return record;
    }
    if (!expect(',')) return record;
    skip();
  }
}

std::vector<Record> read_records(const fs::path& path) {
  const std::string text = read_text(path);
  EXPECT_TRUE(text.empty() || text.back() == '\n') << "the last record lacks its newline";
  std::vector<Record> records;
  for (const std::string& line : lines_of(text)) records.push_back(parse_record(line));
  return records;
}

// The steps of the records, in order (-1 for a record without one).
std::vector<double> steps_of(const std::vector<Record>& records) {
  std::vector<double> steps;
  for (const Record& r : records) {
    double step = -1;
    for (const auto& [key, value] : r)
      if (key == "step" && value) step = *value;
    steps.push_back(step);
  }
  return steps;
}

bool same_bits(double a, double b) { return std::memcmp(&a, &b, sizeof(double)) == 0; }

using RunLogTest = test::TempDirTest;

TEST_F(RunLogTest, RecordsRoundTripExactlyWithStepFirstAndFieldsInOrder) {
  const std::vector<double> values = {0.1,
                                      1.0 / 3.0,
                                      -2.5,
                                      123456789.123456789,
                                      1e-300,
                                      std::numeric_limits<double>::denorm_min(),
                                      std::numeric_limits<double>::max(),
                                      -0.0,
                                      42.0};
  Fields fields;
  for (std::size_t i = 0; i < values.size(); ++i) fields.emplace_back(str_cat("v", i), values[i]);
  {
    RunLog log(dir_.path());
    EXPECT_EQ(log.jsonl_path(), dir_.path() / "metrics.jsonl");
    log.write(7, fields);
    log.write(8, {{"epoch", 2}, {"train_loss", 0.625}});
    log.write(9, {});
  }
  const std::vector<Record> records = read_records(dir_.path() / "metrics.jsonl");
  ASSERT_EQ(records.size(), 3U);

  ASSERT_EQ(records[0].size(), values.size() + 1);
  EXPECT_EQ(records[0][0].first, "step");
  EXPECT_EQ(records[0][0].second, 7.0);
  for (std::size_t i = 0; i < values.size(); ++i) {
    const auto& [key, value] = records[0][i + 1];
    EXPECT_EQ(key, str_cat("v", i));
    ASSERT_TRUE(value.has_value()) << key;
    EXPECT_TRUE(same_bits(*value, values[i])) << key << ": wrote " << values[i] << ", read " << *value;
  }
  EXPECT_EQ(records[1], (Record{{"step", 8.0}, {"epoch", 2.0}, {"train_loss", 0.625}}));
  EXPECT_EQ(records[2], (Record{{"step", 9.0}}));
  // Integral values and steps are written without a fraction or exponent.
  EXPECT_EQ(lines_of(read_text(dir_.path() / "metrics.jsonl"))[1],
            R"({"step": 8, "epoch": 2, "train_loss": 0.625})");
}

TEST_F(RunLogTest, NonFiniteValuesAreNullInJsonlAndKeptInTensorBoard) {
  const double inf = std::numeric_limits<double>::infinity();
  fs::path events;
  {
    RunLog log(dir_.path());
    log.write(3, {{"a", std::nan("")}, {"b", inf}, {"c", -inf}, {"d", 1.5}});
    events = log.events_path();
  }
  const std::vector<Record> records = read_records(dir_.path() / "metrics.jsonl");
  ASSERT_EQ(records.size(), 1U);
  EXPECT_EQ(
      records[0],
      (Record{{"step", 3.0}, {"a", std::nullopt}, {"b", std::nullopt}, {"c", std::nullopt}, {"d", 1.5}}));

  const std::vector<io::TensorBoardEvent> decoded = io::read_events(events);
  ASSERT_EQ(decoded.size(), 5U);  // the version event, then one per field
  EXPECT_TRUE(std::isnan(*decoded[1].values[0].scalar));
  EXPECT_EQ(*decoded[2].values[0].scalar, std::numeric_limits<float>::infinity());
  EXPECT_EQ(*decoded[3].values[0].scalar, -std::numeric_limits<float>::infinity());
  EXPECT_EQ(*decoded[4].values[0].scalar, 1.5F);
}

TEST_F(RunLogTest, StepFieldMustMatchAndIsNotRepeated) {
  RunLog log(dir_.path());
  log.write(20, {{"epoch", 1}, {"step", 20}, {"d_loss", 0.5}});
  test::expect_error<ValueError>([&] { log.write(21, {{"step", 22}}); }, {"\"step\"", "22", "21"});
  test::expect_error<ValueError>([&] { log.write(21, {{"x", 1}, {"", 2}}); }, {"field 1", "step 21"});
  // Names are escaped as JSON strings.
  log.write(22, {{"odd \"name\"\\", 1}});
  EXPECT_EQ(lines_of(read_text(log.jsonl_path())),
            (std::vector<std::string>{R"({"step": 20, "epoch": 1, "d_loss": 0.5})",
                                      R"({"step": 22, "odd \"name\"\\": 1})"}));
  // The rejected records left nothing in the event file either: version, d_loss, odd name.
  const std::vector<io::TensorBoardEvent> events = io::read_events(log.events_path());
  ASSERT_EQ(events.size(), 3U);
  EXPECT_EQ(events[1].values[0].tag, "d_loss");
  EXPECT_EQ(events[2].values[0].tag, "odd \"name\"\\");
}

TEST_F(RunLogTest, JsonFieldsFollowTheNumbersInJsonlOnlyAndMustBeJson) {
  RunLog log(dir_.path());
  log.write(5, {{"test_accuracy", 0.5}}, {{"test_confusion", "[[1, 0], [2, 3]]"}, {"test_f1", "[0.5, 1]"}});
  test::expect_error<ValueError>([&] { log.write(6, {}, {{"bad", "[1, 2"}}); }, {"\"bad\"", "JSON"});
  test::expect_error<ValueError>([&] { log.write(6, {}, {{"step", "[1]"}}); }, {"\"step\""});
  EXPECT_EQ(lines_of(read_text(log.jsonl_path())),
            (std::vector<std::string>{
                R"({"step": 5, "test_accuracy": 0.5, "test_confusion": [[1, 0], [2, 3]], "test_f1": [0.5, 1]})"}));
  const io::JsonValue record = io::parse_json(lines_of(read_text(log.jsonl_path()))[0], "metrics.jsonl");
  ASSERT_NE(record.member("test_confusion"), nullptr);
  EXPECT_EQ(record.member("test_confusion")->items.at(1).items.at(0).text, "2");
  EXPECT_EQ(io::read_events(log.events_path()).size(), 2U);  // the version event and test_accuracy only
}

TEST(TensorBoardTag, TrainAndTestPrefixesBecomeGroups) {
  EXPECT_EQ(tensorboard_tag("train_loss"), "train/loss");
  EXPECT_EQ(tensorboard_tag("test_accuracy"), "test/accuracy");
  EXPECT_EQ(tensorboard_tag("train_top_5"), "train/top_5");
  EXPECT_EQ(tensorboard_tag("d_loss"), "d_loss");
  EXPECT_EQ(tensorboard_tag("lr"), "lr");
  EXPECT_EQ(tensorboard_tag("train_"), "train_");
  EXPECT_EQ(tensorboard_tag("trainer_loss"), "trainer_loss");
  EXPECT_EQ(tensorboard_tag("my_train_loss"), "my_train_loss");
}

TEST_F(RunLogTest, ScalarEventsCarryTagsStepsAndFloatValues) {
  fs::path events;
  {
    RunLog log(dir_.path());
    events = log.events_path();
    EXPECT_EQ(events.parent_path(), dir_.path() / "tensorboard");
    log.write(100, {{"epoch", 1}, {"train_loss", 0.1}, {"test_accuracy", 0.875}, {"lr", 1e-3}});
    log.write(200, {{"epoch", 2}, {"step", 200}, {"d_loss", 1.0 / 3.0}});
  }
  const std::vector<io::TensorBoardEvent> decoded = io::read_events(events);
  ASSERT_EQ(decoded.size(), 5U);
  EXPECT_EQ(decoded[0].file_version, io::kEventFileVersion);
  EXPECT_TRUE(decoded[0].values.empty());
  struct Expected {
    std::string tag;
    std::int64_t step;
    float value;
  };
  const std::vector<Expected> expected = {{"train/loss", 100, 0.1F},
                                          {"test/accuracy", 100, 0.875F},
                                          {"lr", 100, 1e-3F},
                                          {"d_loss", 200, static_cast<float>(1.0 / 3.0)}};
  for (std::size_t i = 0; i < expected.size(); ++i) {
    const io::TensorBoardEvent& e = decoded[i + 1];
    EXPECT_EQ(e.step, expected[i].step) << i;
    ASSERT_EQ(e.values.size(), 1U) << i;
    EXPECT_EQ(e.values[0].tag, expected[i].tag) << i;
    ASSERT_TRUE(e.values[0].scalar.has_value()) << i;
    EXPECT_EQ(*e.values[0].scalar, expected[i].value) << i;
    EXPECT_FALSE(e.values[0].image.has_value()) << i;
  }
}

TEST_F(RunLogTest, ImageEventsHoldThePngOfTheGrid) {
  std::vector<float> samples(4 * 3 * 5 * 6);
  for (std::size_t i = 0; i < samples.size(); ++i) samples[i] = static_cast<float>(std::sin(0.37 * i));
  const Tensor grid = io::image_grid(from_vector(samples, {4, 3, 5, 6}), 2);
  ASSERT_EQ(grid.shape(), (Shape{3, 16, 18}));
  const Tensor gray = full({1, 4, 9}, 77.0, DType::u8);
  fs::path events;
  {
    RunLog log(dir_.path());
    log.image("samples", grid, 50);
    log.image("gray", gray, 60);
    events = log.events_path();
    test::expect_error<ValueError>([&] { log.image("", gray, 70); }, {"tag"});
  }
  const std::vector<io::TensorBoardEvent> decoded = io::read_events(events);
  ASSERT_EQ(decoded.size(), 3U);
  const std::vector<std::pair<std::string, const Tensor*>> expected = {{"samples", &grid}, {"gray", &gray}};
  for (std::size_t i = 0; i < expected.size(); ++i) {
    const io::TensorBoardEvent& e = decoded[i + 1];
    const Tensor& want = *expected[i].second;
    EXPECT_EQ(e.step, i == 0 ? 50 : 60);
    ASSERT_EQ(e.values.size(), 1U);
    EXPECT_EQ(e.values[0].tag, expected[i].first);
    EXPECT_FALSE(e.values[0].scalar.has_value());
    ASSERT_TRUE(e.values[0].image.has_value());
    const io::SummaryImage& image = *e.values[0].image;
    EXPECT_EQ(image.channels, want.size(0));
    EXPECT_EQ(image.height, want.size(1));
    EXPECT_EQ(image.width, want.size(2));
    // The embedded PNG decodes (through the file reader) to the logged pixels.
    const fs::path png = file(expected[i].first + ".png");
    {
      std::ofstream out(png, std::ios::binary);
      out.write(reinterpret_cast<const char*>(image.encoded.data()),
                static_cast<std::streamsize>(image.encoded.size()));
    }
    const Tensor back = io::read_png(png);
    ASSERT_EQ(back.shape(), want.shape());
    EXPECT_EQ(back.to_vector<std::uint8_t>(), want.to_vector<std::uint8_t>());
  }
}

TEST_F(RunLogTest, FreshRunTruncatesTheJsonlAndLeavesOldEventFiles) {
  fs::path first_events;
  {
    RunLog log(dir_.path());
    log.write(1, {{"loss", 1.0}});
    log.write(2, {{"loss", 0.5}});
    first_events = log.events_path();
  }
  ASSERT_EQ(read_records(dir_.path() / "metrics.jsonl").size(), 2U);
  RunLog fresh(dir_.path());
  EXPECT_EQ(read_text(fresh.jsonl_path()), "");
  fresh.write(1, {{"loss", 2.0}});
  EXPECT_EQ(read_records(fresh.jsonl_path()), (std::vector<Record>{{{"step", 1.0}, {"loss", 2.0}}}));
  EXPECT_NE(fresh.events_path(), first_events);
  ASSERT_TRUE(fs::exists(first_events));
  EXPECT_EQ(io::read_events(first_events).size(), 3U);
}

TEST_F(RunLogTest, ResumeKeepsRecordsUpToTheCheckpointStepAndAppendsAfterThem) {
  {
    RunLog log(dir_.path());
    for (int step = 1; step <= 5; ++step) log.write(step, {{"loss", 1.0 / step}});
  }
  const fs::path jsonl = dir_.path() / "metrics.jsonl";
  // Lines another writer might have left: no step, a step after other fields (the old MetricsLog order),
  // a null step, nested values before the step, a fractional step, and a torn last line.
  std::string text = read_text(jsonl);
  text += "{\"note\": \"resumed {from} \\\"here\\\"\"}\n";
  text += "{\"epoch\": 1, \"step\": 3, \"d_loss\": 0.5}\n";
  text += "{\"epoch\": 2, \"step\": 6, \"d_loss\": 0.25}\n";
  text += "{\"step\": null, \"x\": 1}\n";
  text += "{\"cfg\": {\"step\": 99, \"list\": [1, {\"a\": \"]\"}]}, \"step\": 2}\n";
  text += "{\"cfg\": {\"step\": 1}, \"step\": 9}\n";
  text += "{\"step\": 3.5}\n";
  text += "\n";
  text += "{\"step\": 4, \"loss\": 0.2";
  write_text(jsonl, text);

  RunLog resumed(dir_.path(), 3);
  EXPECT_FALSE(fs::exists(dir_.path() / "metrics.jsonl.tmp"));
  const std::vector<std::string> kept = lines_of(read_text(jsonl));
  EXPECT_EQ(kept, (std::vector<std::string>{
                      R"({"step": 1, "loss": 1})", R"({"step": 2, "loss": 0.5})",
                      R"({"step": 3, "loss": 0.3333333333333333})", R"({"note": "resumed {from} \"here\""})",
                      R"({"epoch": 1, "step": 3, "d_loss": 0.5})", R"({"step": null, "x": 1})",
                      R"({"cfg": {"step": 99, "list": [1, {"a": "]"}]}, "step": 2})"}));
  resumed.write(4, {{"loss", 0.25}});
  const std::vector<std::string> after = lines_of(read_text(jsonl));
  ASSERT_EQ(after.size(), kept.size() + 1);
  EXPECT_EQ(after.back(), R"({"step": 4, "loss": 0.25})");

  // Resuming at the latest step keeps every record; resuming at step 0 keeps only those without a step
  // after it.
  { RunLog again(dir_.path(), 4); }
  EXPECT_EQ(lines_of(read_text(jsonl)), after);
  { RunLog at_zero(dir_.path(), 0); }
  EXPECT_EQ(lines_of(read_text(jsonl)), (std::vector<std::string>{R"({"note": "resumed {from} \"here\""})",
                                                                  R"({"step": null, "x": 1})"}));
}

TEST_F(RunLogTest, ResumeWithoutAJsonlStartsAnEmptyOne) {
  const fs::path dir = dir_.path() / "new" / "run";
  RunLog log(dir, 10);
  EXPECT_TRUE(fs::exists(dir / "metrics.jsonl"));
  EXPECT_EQ(read_text(log.jsonl_path()), "");
  log.write(11, {{"lr", 0.01}});
  log.flush();
  EXPECT_EQ(steps_of(read_records(log.jsonl_path())), (std::vector<double>{11.0}));
}

TEST_F(RunLogTest, TwoRunLogsInOneSecondGetTheirOwnEventFiles) {
  RunLog a(dir_.path());
  RunLog b(dir_.path(), 0);
  EXPECT_NE(a.events_path(), b.events_path());
  EXPECT_EQ(a.events_path().parent_path(), b.events_path().parent_path());
  a.write(1, {{"a", 1.0}});
  b.write(2, {{"b", 2.0}});
  const std::vector<io::TensorBoardEvent> ea = io::read_events(a.events_path());
  const std::vector<io::TensorBoardEvent> eb = io::read_events(b.events_path());
  ASSERT_EQ(ea.size(), 2U);
  ASSERT_EQ(eb.size(), 2U);
  EXPECT_EQ(ea[1].values[0].tag, "a");
  EXPECT_EQ(eb[1].values[0].tag, "b");
  std::size_t files = 0;
  for (const auto& entry : fs::directory_iterator(dir_.path() / "tensorboard")) {
    EXPECT_EQ(entry.path().filename().string().rfind("events.out.tfevents.", 0), 0U) << entry.path();
    ++files;
  }
  EXPECT_EQ(files, 2U);
}

}  // namespace
}  // namespace lockstep::launch
