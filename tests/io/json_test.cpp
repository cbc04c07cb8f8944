// io/json: the parser the checkpoint manifest and the metrics log share, and string quoting.
#include <gtest/gtest.h>

#include <string>

#include "io/json/json.h"
#include "src/core/error.h"
#include "tests/support/expect_error.h"

namespace lockstep::io {
namespace {

TEST(Json, QuotedStringsParseBackToTheSameBytes) {
  const std::string text = std::string("a\"b\\c\nd\te\rf") + '\x01' + "\xc3\xa9";
  std::string quoted;
  append_json_string(quoted, text);
  EXPECT_EQ(quoted, "\"a\\\"b\\\\c\\nd\\te\\rf\\u0001\xc3\xa9\"");
  const JsonValue value = parse_json(quoted, "quoted");
  EXPECT_EQ(value.kind, JsonValue::Kind::kString);
  EXPECT_EQ(value.text, text);
}

TEST(Json, ObjectsKeepMembersInOrderAndNumbersAsWritten) {
  const JsonValue v = parse_json(R"( {"step": 12, "x": [1.5e3, null, true], "step": 13} )", "doc");
  ASSERT_EQ(v.kind, JsonValue::Kind::kObject);
  ASSERT_EQ(v.members.size(), 3u);
  ASSERT_NE(v.member("step"), nullptr);
  EXPECT_EQ(v.member("step")->text, "12");  // the first of two
  const JsonValue* x = v.member("x");
  ASSERT_NE(x, nullptr);
  ASSERT_EQ(x->items.size(), 3u);
  EXPECT_EQ(x->items[0].text, "1.5e3");
  EXPECT_EQ(x->items[1].kind, JsonValue::Kind::kNull);
  EXPECT_TRUE(x->items[2].boolean);
  EXPECT_EQ(v.member("missing"), nullptr);
}

TEST(Json, ErrorsNameTheSourceWhatWasExpectedAndTheByte) {
  test::expect_error<IoError>([] { parse_json(R"({"step": 1,)", "run/metrics.jsonl"); },
                              {"run/metrics.jsonl", "expected a string key", "the end of the file"});
  test::expect_error<IoError>([] { parse_json("[1] x", "doc"); }, {"the end of the document", "at byte 4"});
  test::expect_error<IoError>([] { parse_json("\"\\q\"", "doc"); }, {"a valid escape"});
  test::expect_error<IoError>([] { parse_json(std::string(40, '['), "doc"); }, {"nesting of at most 32"});
}

}  // namespace
}  // namespace lockstep::io
