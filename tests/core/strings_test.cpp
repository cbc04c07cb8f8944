// src/core/strings.h: the shared string helpers, against values worked out by hand and, for thousands
// grouping and byte sizes, against an independent digit-by-digit reference over many values.
#include "src/core/strings.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace lockstep {
namespace {

TEST(Strings, QuotedAndJoin) {
  EXPECT_EQ(in_quotes("run/metrics.jsonl"), "'run/metrics.jsonl'");
  EXPECT_EQ(in_quotes(""), "''");
  EXPECT_EQ(join({}, ", "), "");
  EXPECT_EQ(join({"a"}, ", "), "a");
  EXPECT_EQ(join({"a", "", "c"}, "; "), "a; ; c");
}

// Reference: insert a comma before every group of three digits counted from the right.
std::string grouped_reference(std::int64_t value) {
  std::string digits;
  std::uint64_t m = value < 0 ? ~static_cast<std::uint64_t>(value) + 1 : static_cast<std::uint64_t>(value);
  int count = 0;
  do {
    if (count > 0 && count % 3 == 0) digits.insert(digits.begin(), ',');
    digits.insert(digits.begin(), static_cast<char>('0' + m % 10));
    m /= 10;
    ++count;
  } while (m != 0);
  return value < 0 ? "-" + digits : digits;
}

TEST(Strings, GroupThousands) {
  EXPECT_EQ(group_thousands(0), "0");
  EXPECT_EQ(group_thousands(999), "999");
  EXPECT_EQ(group_thousands(1000), "1,000");
  EXPECT_EQ(group_thousands(401920), "401,920");
  EXPECT_EQ(group_thousands(1234567), "1,234,567");
  EXPECT_EQ(group_thousands(-1234), "-1,234");
  EXPECT_EQ(group_thousands(-999), "-999");
  EXPECT_EQ(group_thousands(std::numeric_limits<std::int64_t>::min()), "-9,223,372,036,854,775,808");
  EXPECT_EQ(group_thousands(std::numeric_limits<std::int64_t>::max()), "9,223,372,036,854,775,807");
  std::mt19937_64 rng(7);
  for (int i = 0; i < 2000; ++i) {
    const auto v = static_cast<std::int64_t>(rng()) >> (rng() % 64);
    ASSERT_EQ(group_thousands(v), grouped_reference(v)) << v;
  }
}

TEST(Strings, FormatBytes) {
  EXPECT_EQ(format_bytes(0), "0 B");
  EXPECT_EQ(format_bytes(1023), "1023 B");
  EXPECT_EQ(format_bytes(1024), "1.00 KiB");
  EXPECT_EQ(format_bytes(1536), "1.50 KiB");
  EXPECT_EQ(format_bytes(262144 * 4), "1.00 MiB");
  EXPECT_EQ(format_bytes(std::uint64_t{5} << 30), "5.00 GiB");
  EXPECT_EQ(format_bytes(std::uint64_t{3} << 40), "3.00 TiB");
  EXPECT_EQ(format_bytes(std::uint64_t{2048} << 40), "2048.00 TiB");  // TiB is the largest unit
  // Against the value: the printed number times its unit is within half a hundredth of the unit.
  std::mt19937_64 rng(11);
  const char* units[] = {"KiB", "MiB", "GiB", "TiB"};
  for (int i = 0; i < 2000; ++i) {
    const std::uint64_t b = rng() >> (rng() % 64);
    const std::string text = format_bytes(b);
    if (b < 1024) {
      ASSERT_EQ(text, std::to_string(b) + " B");
      continue;
    }
    const std::size_t space = text.find(' ');
    ASSERT_NE(space, std::string::npos) << text;
    const double shown = std::stod(text.substr(0, space));
    const std::string unit = text.substr(space + 1);
    int u = 0;
    while (u < 4 && unit != units[u]) ++u;
    ASSERT_LT(u, 4) << text;
    const double scale = std::ldexp(1.0, 10 * (u + 1));
    EXPECT_NEAR(shown * scale, static_cast<double>(b), 0.005 * scale + 1e-9 * static_cast<double>(b)) << text;
    if (u < 3) {
      EXPECT_LE(shown, 1024.0) << text;  // 1023.996 KiB and up print as 1024.00
    }
    EXPECT_GE(shown, 1.0) << text;
  }
}

TEST(Strings, FixedPointNumbers) {
  EXPECT_EQ(format_fixed(2.0 / 3.0, 3), "0.667");
  EXPECT_EQ(format_fixed(-1.5, 0), "-2");  // round half to even, as printf does
  EXPECT_EQ(format_fixed(12.0, 2), "12.00");
  EXPECT_EQ(format_values({}), "[]");
  EXPECT_EQ(format_values({0.1, 2.5}), "[0.1000, 2.5000]");
  EXPECT_EQ(format_values({1.0 / 3.0, -2.0}, 2), "[0.33, -2.00]");
}

// Reference: the textbook recursion, memoised.
std::size_t distance_reference(const std::string& a, const std::string& b) {
  std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
  for (std::size_t i = 0; i <= a.size(); ++i) {
    for (std::size_t j = 0; j <= b.size(); ++j) {
      if (i == 0 || j == 0) {
        d[i][j] = i + j;
      } else {
        d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1])});
      }
    }
  }
  return d[a.size()][b.size()];
}

TEST(Strings, EditDistance) {
  EXPECT_EQ(edit_distance("kitten", "sitting"), 3u);
  EXPECT_EQ(edit_distance("", "abc"), 3u);
  EXPECT_EQ(edit_distance("abc", ""), 3u);
  EXPECT_EQ(edit_distance("fc1.weight", "fc1.weight"), 0u);
  EXPECT_EQ(edit_distance("fc1.wieght", "fc1.weight"), 2u);  // a swap is two substitutions
  std::mt19937 rng(3);
  for (int i = 0; i < 500; ++i) {
    std::string a(rng() % 8, 'a'), b(rng() % 8, 'a');
    for (char& c : a) c = static_cast<char>('a' + rng() % 3);
    for (char& c : b) c = static_cast<char>('a' + rng() % 3);
    ASSERT_EQ(edit_distance(a, b), distance_reference(a, b)) << a << " / " << b;
    ASSERT_EQ(edit_distance(a, b), edit_distance(b, a));
  }
}

}  // namespace
}  // namespace lockstep
