// io/json: the parser the checkpoint manifest and the metrics log share, and string quoting.
#include <gtest/gtest.h>

#include <string>
#include <utility>

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

TEST(Json, RejectsWhatRfc8259OrLockstepForbids) {
  const std::pair<std::string, std::string> cases[] = {
      {"1e999", "a finite number"},               // overflows a double: never written by Lockstep
      {"NaN", "a value"},                         // non-finite literals are not JSON
      {"[1,]", "a value"},                        // trailing comma
      {"01", "the end of the document"},          // leading zero
      {"{\"a\" 1}", "':'"},                       // missing colon
      {"\"a\x01\"", "no raw control character"},  // raw control character in a string
      {"\"\\ud800\"", "a low surrogate"},         // lone high surrogate
      {"\"\xff\"", "UTF-8"},                      // invalid UTF-8 in a string
      {"\xEF\xBB\xBF{}", "byte-order mark"},      // a BOM, which nlohmann alone would skip
      {"/* c */ 1", "a value"},                   // comments
  };
  for (const auto& [text, expected] : cases) {
    SCOPED_TRACE(text);
    test::expect_error<IoError>([&] { parse_json(text, "doc"); }, {"doc", expected});
  }
  // At the limit: 32 nested arrays parse, 33 do not.
  EXPECT_EQ(parse_json(std::string(32, '[') + std::string(32, ']'), "doc").kind, JsonValue::Kind::kArray);
  test::expect_error<IoError>([] { parse_json(std::string(33, '[') + std::string(33, ']'), "doc"); },
                              {"nesting of at most 32"});
}

TEST(Json, NumbersKeepTheirTextAcrossTheIntegerAndFloatPaths) {
  const JsonValue v =
      parse_json("[-7, 18446744073709551615, 123456789012345678901234567890, 2.50, -1E-3]", "doc");
  ASSERT_EQ(v.items.size(), 5u);
  EXPECT_EQ(v.items[0].text, "-7");
  EXPECT_EQ(v.items[1].text, "18446744073709551615");
  EXPECT_EQ(v.items[2].text, "123456789012345678901234567890");  // beyond 64 bits: still the literal
  EXPECT_EQ(v.items[3].text, "2.50");
  EXPECT_EQ(v.items[4].text, "-1E-3");
  for (const auto& item : v.items) EXPECT_EQ(item.kind, JsonValue::Kind::kNumber);
}

TEST(Json, QuotingRefusesTextThatCouldNotBeReadBack) {
  std::string out = "x";
  test::expect_error<ValueError>([&] { append_json_string(out, "ok\xff"); },
                                 {"expected UTF-8 text", "byte 2"});
  std::string nested;
  append_json_string(nested, "{\"a\": [1]}\b\f");
  EXPECT_EQ(parse_json(nested, "doc").text, "{\"a\": [1]}\b\f");
}

}  // namespace
}  // namespace lockstep::io
