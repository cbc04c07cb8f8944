// Config over toml++: parsing with located errors, command-line overrides, typed getters that record the
// keys read, rejection of unknown keys with suggestions, and a TOML dump of the effective configuration.
#include "launch/config/config.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>
#include <iterator>
#include <sstream>
#include <type_traits>
#include <utility>

#include "src/core/error.h"
#include "src/core/strings.h"

namespace lockstep::launch {
namespace {

constexpr std::size_t kMaxShownValue = 60;

bool is_bare_key(std::string_view part) {
  return !part.empty() && std::all_of(part.begin(), part.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
  });
}

// Splits "a.b.c" into its parts; empty when some part is not a bare TOML key.
std::vector<std::string> split_key(std::string_view key) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  while (true) {
    const std::size_t dot = key.find('.', start);
    const std::string_view part = key.substr(start, dot == std::string_view::npos ? dot : dot - start);
    if (!is_bare_key(part)) return {};
    parts.emplace_back(part);
    if (dot == std::string_view::npos) return parts;
    start = dot + 1;
  }
}

std::vector<std::string> checked_split(std::string_view function, std::string_view key) {
  std::vector<std::string> parts = split_key(key);
  LOCKSTEP_CHECK(!parts.empty(), ValueError, function,
                 ": expected a dotted key of letters, digits, '_' and '-' (like optimizer.lr), but got '",
                 key, "'.");
  return parts;
}

std::string_view trim(std::string_view text) {
  const auto first = text.find_first_not_of(" \t");
  if (first == std::string_view::npos) return {};
  return text.substr(first, text.find_last_not_of(" \t") - first + 1);
}

void write_string(std::ostream& out, std::string_view text) {
  out << '"';
  for (const char c : text) {
    switch (c) {
      case '"':
        out << "\\\"";
        break;
      case '\\':
        out << "\\\\";
        break;
      case '\n':
        out << "\\n";
        break;
      case '\t':
        out << "\\t";
        break;
      case '\r':
        out << "\\r";
        break;
      case '\b':
        out << "\\b";
        break;
      case '\f':
        out << "\\f";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
          constexpr char kHex[] = "0123456789ABCDEF";
          out << "\\u00" << kHex[(c >> 4) & 0xf] << kHex[c & 0xf];
        } else {
          out << c;
        }
    }
  }
  out << '"';
}

void write_key(std::ostream& out, std::string_view key) {
  if (is_bare_key(key)) {
    out << key;
  } else {
    write_string(out, key);
  }
}

// Shortest text that reads back as the same double, always with a '.' or exponent so TOML sees a float.
// (toml++ 3.3's own serializer round-trips too, but at 17 digits: 2e-4 becomes 0.00020000000000000001 in
// every stored config, which people read; measured when the writer was reviewed.)
void write_float(std::ostream& out, double value) {
  if (std::isnan(value)) {
    out << "nan";
  } else if (std::isinf(value)) {
    out << (value < 0 ? "-inf" : "inf");
  } else {
    char buffer[32];
    const auto [end, ec] = std::to_chars(buffer, buffer + sizeof(buffer), value);
    const std::string_view text(buffer, static_cast<std::size_t>(end - buffer));
    out << text;
    if (text.find_first_of(".e") == std::string_view::npos) out << ".0";
  }
}

// Writes a value, array or table in inline TOML form.
void write_inline(std::ostream& out, const toml::node& node) {
  node.visit([&out](const auto& n) {
    using N = std::remove_cvref_t<decltype(n)>;
    if constexpr (std::is_same_v<N, toml::table>) {
      out << "{ ";
      bool first = true;
      for (const auto& [key, child] : n) {
        out << (first ? "" : ", ");
        first = false;
        write_key(out, key.str());
        out << " = ";
        write_inline(out, child);
      }
      out << (first ? "}" : " }");
    } else if constexpr (std::is_same_v<N, toml::array>) {
      out << '[';
      for (std::size_t i = 0; i < n.size(); ++i) {
        out << (i == 0 ? "" : ", ");
        write_inline(out, *n.get(i));
      }
      out << ']';
    } else if constexpr (std::is_same_v<N, toml::value<std::string>>) {
      write_string(out, n.get());
    } else if constexpr (std::is_same_v<N, toml::value<double>>) {
      write_float(out, n.get());
    } else if constexpr (std::is_same_v<N, toml::value<bool>>) {
      out << (n.get() ? "true" : "false");
    } else {
      out << n.get();
    }
  });
}

// Writes a table's values as "key = value" lines, then its sub-tables as [sections].
void write_table(std::ostringstream& out, const toml::table& table, const std::string& prefix) {
  for (const auto& [key, node] : table) {
    if (node.is_table()) continue;
    write_key(out, key.str());
    out << " = ";
    write_inline(out, node);
    out << '\n';
  }
  for (const auto& [key, node] : table) {
    if (!node.is_table()) continue;
    std::ostringstream name;
    name << prefix << (prefix.empty() ? "" : ".");
    write_key(name, key.str());
    const toml::table& child = *node.as_table();
    const bool only_tables = !child.empty() && std::all_of(child.begin(), child.end(), [](const auto& kv) {
      return kv.second.is_table();
    });
    if (!only_tables) {
      if (out.tellp() > 0) out << '\n';
      out << '[' << name.str() << "]\n";
    }
    write_table(out, child, name.str());
  }
}

const char* type_name(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::table:
      return "a table";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a float";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::date:
      return "a date";
    case toml::node_type::time:
      return "a time";
    case toml::node_type::date_time:
      return "a date-time";
    case toml::node_type::none:
      break;
  }
  return "nothing";
}

// "a string \"abc\"", "an array [1, 2]", "a table".
std::string describe(const toml::node& node) {
  if (node.is_table()) return "a table";
  std::ostringstream value;
  write_inline(value, node);
  std::string shown = value.str();
  if (shown.size() > kMaxShownValue) shown = shown.substr(0, kMaxShownValue) + "...";
  return str_cat(type_name(node), " ", shown);
}

// How each supported C++ type is read from and written to TOML.
template <class T>
struct Kind;

template <>
struct Kind<int64_t> {
  static constexpr std::string_view kName = "an integer";
  static constexpr std::string_view kPlural = "integers";
  static std::optional<int64_t> from(const toml::node& node) {
    if (const auto* v = node.as_integer()) return v->get();
    return std::nullopt;
  }
  static toml::value<int64_t> to(int64_t value) { return toml::value<int64_t>(value); }
};

template <>
struct Kind<double> {
  static constexpr std::string_view kName = "a number";
  static constexpr std::string_view kPlural = "numbers";
  static std::optional<double> from(const toml::node& node) {
    if (const auto* v = node.as_floating_point()) return v->get();
    if (const auto* v = node.as_integer()) return static_cast<double>(v->get());
    return std::nullopt;
  }
  static toml::value<double> to(double value) { return toml::value<double>(value); }
};

template <>
struct Kind<bool> {
  static constexpr std::string_view kName = "a boolean";
  static std::optional<bool> from(const toml::node& node) {
    if (const auto* v = node.as_boolean()) return v->get();
    return std::nullopt;
  }
  static toml::value<bool> to(bool value) { return toml::value<bool>(value); }
};

template <>
struct Kind<std::string> {
  static constexpr std::string_view kName = "a string";
  static constexpr std::string_view kPlural = "strings";
  static std::optional<std::string> from(const toml::node& node) {
    if (const auto* v = node.as_string()) return v->get();
    return std::nullopt;
  }
  static toml::value<std::string> to(const std::string& value) { return toml::value<std::string>(value); }
};

template <class E>
struct Kind<std::vector<E>> {
  static toml::array to(const std::vector<E>& values) {
    toml::array array;
    for (const E& v : values) array.push_back(Kind<E>::to(v));
    return array;
  }
};

template <class T>
struct IsVector : std::false_type {};
template <class E>
struct IsVector<std::vector<E>> : std::true_type {};

// Inserts `value` at the dotted path, creating (or replacing non-table) parents.
void insert_at(toml::table& root, const std::vector<std::string>& parts, toml::node&& value) {
  toml::table* table = &root;
  for (std::size_t i = 0; i + 1 < parts.size(); ++i) {
    toml::node* child = table->get(parts[i]);
    if (child == nullptr || !child->is_table()) {
      table->insert_or_assign(parts[i], toml::table{});
      child = table->get(parts[i]);
    }
    table = child->as_table();
  }
  table->insert_or_assign(parts.back(), std::move(value));
}

// Adds every entry of `extra` that `into` lacks, recursing into tables present in both.
void merge_missing(toml::table& into, const toml::table& extra) {
  for (const auto& [key, node] : extra) {
    toml::node* existing = into.get(key);
    if (existing == nullptr) {
      into.insert(key, node);
    } else if (existing->is_table() && node.is_table()) {
      merge_missing(*existing->as_table(), *node.as_table());
    }
  }
}

// Dotted paths of every non-table node under `table`, with the node.
void collect_leaves(const toml::table& table, const std::string& prefix,
                    std::vector<std::pair<std::string, const toml::node*>>& leaves) {
  for (const auto& [key, node] : table) {
    std::string path = prefix.empty() ? std::string(key.str()) : str_cat(prefix, ".", key.str());
    if (const toml::table* child = node.as_table()) {
      collect_leaves(*child, path, leaves);
    } else {
      leaves.emplace_back(std::move(path), &node);
    }
  }
}

// Whether the dotted path is missing from `root` (false when a parent on it is a value, not a table).
bool is_absent(const toml::table& root, const std::vector<std::string>& parts) {
  const toml::node* node = &root;
  for (const std::string& part : parts) {
    if (!node->is_table()) return false;
    node = node->as_table()->get(part);
    if (node == nullptr) return true;
  }
  return false;
}

std::string_view last_part(std::string_view key) {
  const auto dot = key.rfind('.');
  return dot == std::string_view::npos ? key : key.substr(dot + 1);
}

toml::table parse_document(std::string_view function, std::string_view text, const std::string& name) {
  try {
    return toml::parse(text, std::string_view(name));
  } catch (const toml::parse_error& e) {
    const int line = static_cast<int>(e.source().begin.line);
    throw ConfigError(str_cat(function, ": expected valid TOML, but got a syntax error at ", name, ":", line,
                              ":", e.source().begin.column, ": ", e.description(), "."),
                      name, line, "");
  }
}

}  // namespace

std::optional<std::string> closest_match(std::string_view word, const std::vector<std::string>& candidates) {
  const std::size_t limit = std::max<std::size_t>(1, (word.size() + 1) / 3);
  std::optional<std::string> best;
  std::size_t best_distance = limit + 1;
  for (const std::string& candidate : candidates) {
    const std::size_t distance = edit_distance(word, candidate);
    // Rewriting a whole name (the last part of a dotted one) is not a typo.
    if (distance < best_distance && distance < last_part(word).size()) {
      best_distance = distance;
      best = candidate;
    }
  }
  return best;
}

Config Config::load(const std::filesystem::path& path, const std::vector<std::string>& overrides) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw IoError(str_cat("Config::load: expected a readable TOML file, but could not open '", path.string(),
                          "'. Check the path and its permissions."),
                  path.string());
  }
  const std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  if (in.bad()) {
    throw IoError(str_cat("Config::load: expected to read '", path.string(), "', but the read failed."),
                  path.string());
  }
  Config config(parse_document("Config::load", text, path.string()), path.string());
  for (const std::string& text_override : overrides) config.apply_override(text_override);
  return config;
}

Config Config::parse(std::string_view text, std::string name, const std::vector<std::string>& overrides) {
  toml::table table = parse_document("Config::parse", text, name);
  Config config(std::move(table), std::move(name));
  for (const std::string& text_override : overrides) config.apply_override(text_override);
  return config;
}

void Config::apply_override(const std::string& override_text) {
  const std::string cli(kCommandLine);
  const std::size_t equals = override_text.find('=');
  if (equals == std::string::npos) {
    throw ConfigError(
        str_cat("Config: expected a command-line override of the form dotted.key=value, but got '",
                override_text, "'. Example: optimizer.lr=0.01."),
        cli, 0, override_text);
  }
  const std::string key(trim(std::string_view(override_text).substr(0, equals)));
  const std::string_view value = trim(std::string_view(override_text).substr(equals + 1));
  const std::vector<std::string> parts = split_key(key);
  if (parts.empty()) {
    throw ConfigError(
        str_cat("Config: expected a dotted key of letters, digits, '_' and '-' (like optimizer.lr) "
                "before '=', but got '",
                key, "' in the override '", override_text, "'."),
        cli, 0, key);
  }
  if (value.empty()) {
    throw ConfigError(str_cat("Config: expected a value after '=' in the override '", override_text,
                              "', but got nothing. Write \"\" for an empty string."),
                      cli, 0, key);
  }

  // A TOML value when it parses as one; a bare word is a string; text that starts like a TOML string, array
  // or inline table but does not parse is an error.
  std::optional<toml::table> parsed;
  std::string parse_problem;
  try {
    parsed = toml::parse(str_cat("v = ", value), std::string_view(cli));
    if (parsed->size() != 1 || !parsed->contains("v")) {
      parse_problem = "it holds more than one value";
      parsed.reset();
    }
  } catch (const toml::parse_error& e) {
    parse_problem = e.description();
  }
  if (!parsed && std::string_view("[{\"'").find(value.front()) != std::string_view::npos) {
    throw ConfigError(str_cat("Config: expected a TOML value in the override '", override_text,
                              "', but it does not parse: ", parse_problem,
                              ". Quote strings and close brackets, e.g. model.hidden=[128, 64]."),
                      cli, 0, key);
  }

  // Parents must be tables (or missing, then created).
  const toml::table* table = &table_;
  for (std::size_t i = 0; i + 1 < parts.size() && table != nullptr; ++i) {
    const toml::node* child = table->get(parts[i]);
    if (child != nullptr && !child->is_table()) {
      std::string parent = parts[0];
      for (std::size_t j = 1; j <= i; ++j) parent += "." + parts[j];
      const Origin where = origin(parent, *child);
      throw ConfigError(
          str_cat("Config: expected '", parent, "' to be a table so that the override '", override_text,
                  "' can set a key in it, but got ", describe(*child), " ", where.text, "."),
          cli, 0, key);
    }
    table = child == nullptr ? nullptr : child->as_table();
  }
  if (parsed) {
    insert_at(table_, parts, std::move(*parsed->get("v")));
  } else {
    insert_at(table_, parts, toml::value<std::string>(std::string(value)));
  }
  overrides_[key] = override_text;
}

Config::Origin Config::origin(std::string_view key, const toml::node& node) const {
  // The longest overridden prefix of the key (an override may have set a whole table).
  std::string_view prefix = key;
  while (true) {
    if (const auto it = overrides_.find(prefix); it != overrides_.end()) {
      return {std::string(kCommandLine), 0, str_cat("from the command-line override '", it->second, "'")};
    }
    const auto dot = prefix.rfind('.');
    if (dot == std::string_view::npos) break;
    prefix = prefix.substr(0, dot);
  }
  const int line = static_cast<int>(node.source().begin.line);
  return {file_, line, str_cat("at ", file_, ":", line)};
}

const toml::node* Config::find(std::string_view function, std::string_view key) const {
  const std::vector<std::string> parts = checked_split(function, key);
  read_.emplace(key);
  const toml::node* node = &table_;
  std::string path;
  for (const std::string& part : parts) {
    if (!node->is_table()) {
      const Origin where = origin(path, *node);
      throw ConfigError(str_cat(function, ": expected '", path, "' to be a table holding '", key,
                                "', but got ", describe(*node), " ", where.text, "."),
                        where.file, where.line, std::string(key));
    }
    node = node->as_table()->get(part);
    if (node == nullptr) return nullptr;
    path += (path.empty() ? "" : ".") + part;
  }
  return node;
}

void Config::throw_type_error(std::string_view function, std::string_view key, const toml::node& where,
                              std::string_view expected, std::string_view got) const {
  const Origin at = origin(key, where);
  throw ConfigError(
      str_cat(function, ": expected '", key, "' to be ", expected, ", but got ", got, " ", at.text, "."),
      at.file, at.line, std::string(key));
}

template <class T>
T Config::get(std::string_view function, std::string_view key, const std::optional<T>& default_value) const {
  const toml::node* node = find(function, key);
  if (node == nullptr) {
    if (default_value) {
      insert_at(defaults_, checked_split(function, key), Kind<T>::to(*default_value));
      return *default_value;
    }
    std::string expected;
    if constexpr (IsVector<T>::value) {
      expected = str_cat("an array of ", Kind<typename T::value_type>::kPlural);
    } else {
      expected = Kind<T>::kName;
    }
    throw ConfigError(
        str_cat(function, ": expected the key '", key, "' (", expected, ") in ", file_,
                ", but it is missing. Add it to the file or override it on the command line with ", key,
                "=<value>."),
        file_, 0, std::string(key));
  }
  if constexpr (IsVector<T>::value) {
    using E = typename T::value_type;
    const std::string expected = str_cat("an array of ", Kind<E>::kPlural);
    const toml::array* array = node->as_array();
    if (array == nullptr) throw_type_error(function, key, *node, expected, describe(*node));
    T values;
    values.reserve(array->size());
    for (std::size_t i = 0; i < array->size(); ++i) {
      const toml::node& element = *array->get(i);
      std::optional<E> value = Kind<E>::from(element);
      if (!value) {
        throw_type_error(function, key, element, expected, str_cat(describe(element), " as element ", i));
      }
      values.push_back(std::move(*value));
    }
    return values;
  } else {
    std::optional<T> value = Kind<T>::from(*node);
    if (!value) throw_type_error(function, key, *node, Kind<T>::kName, describe(*node));
    return std::move(*value);
  }
}

int64_t Config::get_int(std::string_view key) const {
  return get<int64_t>("Config::get_int", key, std::nullopt);
}
int64_t Config::get_int(std::string_view key, int64_t default_value) const {
  return get<int64_t>("Config::get_int", key, default_value);
}
double Config::get_double(std::string_view key) const {
  return get<double>("Config::get_double", key, std::nullopt);
}
double Config::get_double(std::string_view key, double default_value) const {
  return get<double>("Config::get_double", key, default_value);
}
std::string Config::get_string(std::string_view key) const {
  return get<std::string>("Config::get_string", key, std::nullopt);
}
std::string Config::get_string(std::string_view key, std::string_view default_value) const {
  return get<std::string>("Config::get_string", key, std::string(default_value));
}
bool Config::get_bool(std::string_view key) const { return get<bool>("Config::get_bool", key, std::nullopt); }
bool Config::get_bool(std::string_view key, bool default_value) const {
  return get<bool>("Config::get_bool", key, default_value);
}
std::vector<int64_t> Config::get_ints(std::string_view key) const {
  return get<std::vector<int64_t>>("Config::get_ints", key, std::nullopt);
}
std::vector<int64_t> Config::get_ints(std::string_view key, const std::vector<int64_t>& default_value) const {
  return get<std::vector<int64_t>>("Config::get_ints", key, default_value);
}
std::vector<double> Config::get_doubles(std::string_view key) const {
  return get<std::vector<double>>("Config::get_doubles", key, std::nullopt);
}
std::vector<double> Config::get_doubles(std::string_view key,
                                        const std::vector<double>& default_value) const {
  return get<std::vector<double>>("Config::get_doubles", key, default_value);
}
std::vector<std::string> Config::get_strings(std::string_view key) const {
  return get<std::vector<std::string>>("Config::get_strings", key, std::nullopt);
}
std::vector<std::string> Config::get_strings(std::string_view key,
                                             const std::vector<std::string>& default_value) const {
  return get<std::vector<std::string>>("Config::get_strings", key, default_value);
}

std::string Config::choice(std::string_view key, std::initializer_list<std::string_view> choices) const {
  const std::string value = get<std::string>("Config::choice", key, std::nullopt);
  if (std::find(choices.begin(), choices.end(), value) != choices.end()) return value;
  std::string listed;
  std::vector<std::string> candidates;
  for (const std::string_view c : choices) {
    listed += str_cat(listed.empty() ? "" : ", ", "'", c, "'");
    candidates.emplace_back(c);
  }
  const std::optional<std::string> suggestion = closest_match(value, candidates);
  const Origin at = origin(key, *find("Config::choice", key));
  throw ConfigError(
      str_cat("Config::choice: expected '", key, "' to be one of ", listed, ", but got '", value, "' ",
              at.text, ".", suggestion ? str_cat(" Did you mean '", *suggestion, "'?") : ""),
      at.file, at.line, std::string(key));
}

std::string Config::choice(std::string_view key, std::initializer_list<std::string_view> choices,
                           std::string_view default_value) const {
  LOCKSTEP_CHECK(std::find(choices.begin(), choices.end(), default_value) != choices.end(), ValueError,
                 "Config::choice: expected the default of '", key, "' to be one of the choices, but got '",
                 default_value, "'.");
  if (!has(key)) return get<std::string>("Config::choice", key, std::string(default_value));
  return choice(key, choices);
}

void Config::fail(std::string_view key, std::string_view message) const { locate(key).fail(message); }

ConfigKey Config::locate(std::string_view key) const {
  if (const toml::node* node = find("Config::locate", key)) {
    Origin at = origin(key, *node);
    return {std::string(key), std::move(at.file), at.line, std::move(at.text)};
  }
  return {std::string(key), file_, 0, str_cat("(the default value, absent from ", file_, ")")};
}

void ConfigKey::fail(std::string_view message) const {
  const std::string_view end = !message.empty() && message.back() == '.' ? "" : ".";
  throw ConfigError(str_cat("Config: invalid '", key, "' ", where, ": ", message, end), file, line, key);
}

bool Config::has(std::string_view key) const { return find("Config::has", key) != nullptr; }

void Config::reject_unknown() const {
  std::vector<std::pair<std::string, const toml::node*>> leaves;
  collect_leaves(table_, "", leaves);
  // A misspelt key leaves the key the program wanted absent, so only keys read but absent are suggested.
  std::vector<std::string> read;
  std::vector<std::string> read_last_parts;
  for (const std::string& key : read_) {
    if (!is_absent(table_, split_key(key))) continue;
    read.push_back(key);
    read_last_parts.emplace_back(last_part(key));
  }

  struct Unknown {
    std::string key;
    Origin where;
    std::optional<std::string> suggestion;
  };
  std::vector<Unknown> unknown;
  for (const auto& [key, node] : leaves) {
    if (read_.count(key) != 0) continue;
    std::optional<std::string> suggestion = closest_match(key, read);
    if (!suggestion) {
      // The right name in the wrong table, e.g. "lr" at the top instead of "optimizer.lr".
      if (const auto same = closest_match(last_part(key), read_last_parts)) {
        suggestion = read[static_cast<std::size_t>(
            std::find(read_last_parts.begin(), read_last_parts.end(), *same) - read_last_parts.begin())];
      }
    }
    unknown.push_back({key, origin(key, *node), std::move(suggestion)});
  }
  if (unknown.empty()) return;
  // File keys by line first, then the command-line overrides.
  std::stable_sort(unknown.begin(), unknown.end(), [&](const Unknown& a, const Unknown& b) {
    const bool a_cli = a.where.line == 0, b_cli = b.where.line == 0;
    if (a_cli != b_cli) return b_cli;
    return a.where.line < b.where.line;
  });
  std::ostringstream message;
  message << "Config::reject_unknown: expected only keys that the program reads, but got " << unknown.size()
          << " unknown key" << (unknown.size() == 1 ? "" : "s") << " in " << file_ << ":";
  for (const Unknown& u : unknown) {
    message << "\n  '" << u.key << "' " << u.where.text;
    if (u.suggestion) message << " (did you mean '" << *u.suggestion << "'?)";
  }
  message << "\nRemove or rename them.";
  throw ConfigError(message.str(), unknown.front().where.file, unknown.front().where.line,
                    unknown.front().key);
}

std::string Config::to_string() const {
  toml::table effective = table_;
  merge_missing(effective, defaults_);
  std::ostringstream out;
  write_table(out, effective, "");
  return out.str();
}

}  // namespace lockstep::launch
