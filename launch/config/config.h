// Run configuration: a TOML file plus `dotted.key=value` command-line overrides, read through typed getters
// that record every key the program asks for, so that keys nobody reads (typos) can be rejected with a
// suggestion. Every error is a ConfigError naming the file, the line and the key.
#pragma once

#include <toml++/toml.h>

#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace lockstep::launch {

// Where a key's value came from, kept by typed settings so that a check made after reading (against the
// data, a checkpoint or the world size) still names the key and its file and line or override.
struct ConfigKey {
  std::string key;   // "data.batch_size"
  std::string file;  // the config file, Config::kCommandLine for an override
  int line = 0;      // 0 for an override or a default
  std::string where; // "at run.toml:4", "from the command-line override 'a=1'", "(the default value, absent from run.toml)"
  // Throws the ConfigError "Config: invalid '<key>' <where>: <message>."
  [[noreturn]] void fail(std::string_view message) const;
};

// Owns the parsed document (file values with overrides applied), the overrides' origins and the record of
// keys read and defaults used. Not thread-safe: every getter, const or not, writes the record of keys read.
class Config {
 public:
  // The file name used in errors about command-line overrides.
  static constexpr std::string_view kCommandLine = "<command line>";

  // Reads and parses the TOML file `path`, then applies `overrides` ("dotted.key=value", value in TOML
  // syntax, bare words as strings). Throws IoError when the file cannot be read, ConfigError otherwise.
  static Config load(const std::filesystem::path& path, const std::vector<std::string>& overrides = {});
  // Parses `text` as if it were a file called `name` (for tests and embedded configurations).
  static Config parse(std::string_view text, std::string name,
                      const std::vector<std::string>& overrides = {});

  // Typed getters of a dotted key ("optimizer.lr"). Without a default the key is required; with one, a
  // missing key yields the default (recorded for to_string). A present key of the wrong type always throws.
  int64_t get_int(std::string_view key) const;
  int64_t get_int(std::string_view key, int64_t default_value) const;
  // Accepts integers and floats.
  double get_double(std::string_view key) const;
  double get_double(std::string_view key, double default_value) const;
  std::string get_string(std::string_view key) const;
  std::string get_string(std::string_view key, std::string_view default_value) const;
  bool get_bool(std::string_view key) const;
  bool get_bool(std::string_view key, bool default_value) const;
  std::vector<int64_t> get_ints(std::string_view key) const;
  std::vector<int64_t> get_ints(std::string_view key, const std::vector<int64_t>& default_value) const;
  // Accepts arrays mixing integers and floats.
  std::vector<double> get_doubles(std::string_view key) const;
  std::vector<double> get_doubles(std::string_view key, const std::vector<double>& default_value) const;
  std::vector<std::string> get_strings(std::string_view key) const;
  std::vector<std::string> get_strings(std::string_view key,
                                       const std::vector<std::string>& default_value) const;
  // A string restricted to `choices` (an enum); the error lists the choices and suggests the closest one.
  std::string choice(std::string_view key, std::initializer_list<std::string_view> choices) const;
  std::string choice(std::string_view key, std::initializer_list<std::string_view> choices,
                     std::string_view default_value) const;
  // Whether the key is present (a value or a table). Records the key as read.
  bool has(std::string_view key) const;

  // Throws a ConfigError about a value of the right type that is still invalid (out of range, inconsistent
  // with other settings), located like the getters' errors: "Config: invalid 'run.epochs' at run.toml:4:
  // <message>." A key absent from the file and overrides (a default) is reported with line 0.
  [[noreturn]] void fail(std::string_view key, std::string_view message) const;
  // Where `key` came from (records it as read), for checks made later through ConfigKey::fail.
  ConfigKey locate(std::string_view key) const;

  // Throws one ConfigError listing every value present in the file or the overrides that no getter read,
  // each with its line (or the override) and the closest key read as a suggestion.
  void reject_unknown() const;
  // The effective configuration as TOML: file values, overrides applied, plus the defaults used so far.
  std::string to_string() const;
  // The file name given to load/parse.
  const std::string& file() const { return file_; }

 private:
  Config(toml::table table, std::string file) : table_(std::move(table)), file_(std::move(file)) {}

  // Where a node came from, for messages: "run.toml:12" or "the command-line override 'a.b=1'".
  struct Origin {
    std::string file;
    int line;
    std::string text;
  };

  void apply_override(const std::string& override_text);
  // The node at `key` (records the key as read); nullptr when it or a parent table is missing. Throws when
  // a parent on the path is not a table.
  const toml::node* find(std::string_view function, std::string_view key) const;
  // find() that throws a ConfigError for a missing key.
  const toml::node& require(std::string_view function, std::string_view key) const;
  // The value at `key` converted to T (int64_t, double, bool, std::string or a std::vector of those); a
  // missing key yields `default_value`, recorded for to_string, or throws when there is none.
  template <class T>
  T get(std::string_view function, std::string_view key, const std::optional<T>& default_value) const;
  [[noreturn]] void throw_type_error(std::string_view function, std::string_view key, const toml::node& where,
                                     std::string_view expected, std::string_view got) const;
  Origin origin(std::string_view key, const toml::node& node) const;

  toml::table table_;
  std::string file_;
  // Dotted key set by an override -> the override's text.
  std::map<std::string, std::string, std::less<>> overrides_;
  mutable std::set<std::string, std::less<>> read_;
  mutable toml::table defaults_;
};

// The candidate closest to `word`, or nothing when none is close enough to be a plausible typo.
std::optional<std::string> closest_match(std::string_view word, const std::vector<std::string>& candidates);

}  // namespace lockstep::launch
