// The small string helpers of messages and reports, one copy for the whole of Lockstep: quoting, joining,
// thousands grouping, byte sizes, fixed-point numbers and the edit distance of "did you mean" hints.
#pragma once

#include <cstddef>
#include <concepts>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace lockstep {

// "'text'": a name or path quoted in a message.
std::string in_quotes(std::string_view text);
template <class Path>
  requires std::same_as<Path, std::filesystem::path>  // not a candidate for strings: no ambiguity
std::string in_quotes(const Path& path) {
  return in_quotes(std::string_view(path.native()));
}

// The parts with `separator` between them: join({"a", "b"}, ", ") == "a, b"; "" for no parts.
std::string join(const std::vector<std::string>& parts, std::string_view separator);

// Thousands separated by commas: 1234567 -> "1,234,567", -1234 -> "-1,234" (every int64 value).
std::string group_thousands(std::int64_t value);

// A byte count for people: "312 B", "1.00 KiB", "1.50 MiB", "2.00 GiB", "3.25 TiB" (binary units, two
// decimals from KiB up, TiB the largest).
std::string format_bytes(std::uint64_t bytes);

// `value` with exactly `digits` decimals ("%.*f"): format_fixed(2.0 / 3, 3) == "0.667".
std::string format_fixed(double value, int digits);

// Numbers in brackets with `digits` decimals each: "[0.1000, 2.5000]"; "[]" for none.
std::string format_values(const std::vector<double>& values, int digits = 4);

// Levenshtein distance (insertions, deletions and substitutions of bytes), for suggesting the name a user
// probably meant.
std::size_t edit_distance(std::string_view a, std::string_view b);

}  // namespace lockstep
