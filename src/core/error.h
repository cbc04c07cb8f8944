// The one error hierarchy of Lockstep. A user error reads
// "<function>: expected <condition>, but got <values>. <hint>"; library code never exits or aborts and throws
// nothing but these types. LOCKSTEP_CHECK guards what a caller passes in; LOCKSTEP_INTERNAL_ASSERT guards an
// invariant of Lockstep itself (its failure is a bug in Lockstep, whatever the input).
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace lockstep {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

class ValueError : public Error { using Error::Error; };
class TypeError : public Error { using Error::Error; };
class IndexError : public Error { using Error::Error; };
class NotImplementedError : public Error { using Error::Error; };
class DeviceError : public Error { using Error::Error; };
// Autograd misuse: backward through a freed graph, a saved tensor modified in place, a leaf modified in place.
class AutogradError : public Error { using Error::Error; };
// A broken invariant of Lockstep itself: a bug in the library, not a misuse by the caller
// (LOCKSTEP_INTERNAL_ASSERT).
class InternalError : public Error { using Error::Error; };

class DistributedError : public Error {
 public:
  DistributedError(const std::string& message, int rank, int world_size, std::string collective)
      : Error(message), rank_(rank), world_size_(world_size), collective_(std::move(collective)) {}
  int rank() const { return rank_; }
  int world_size() const { return world_size_; }
  const std::string& collective() const { return collective_; }

 private:
  int rank_;
  int world_size_;
  std::string collective_;
};

class IoError : public Error {
 public:
  IoError(const std::string& message, std::string file, std::string object = {})
      : Error(message), file_(std::move(file)), object_(std::move(object)) {}
  const std::string& file() const { return file_; }
  const std::string& object() const { return object_; }

 private:
  std::string file_;
  std::string object_;
};

class ConfigError : public Error {
 public:
  ConfigError(const std::string& message, std::string file, int line, std::string key)
      : Error(message), file_(std::move(file)), line_(line), key_(std::move(key)) {}
  const std::string& file() const { return file_; }
  int line() const { return line_; }
  const std::string& key() const { return key_; }

 private:
  std::string file_;
  int line_;
  std::string key_;
};

// Concatenates anything printable with operator<< into one string.
template <class... Args> std::string str_cat(const Args&... args) {
  std::ostringstream out;
  (out << ... << args);
  return out.str();
}

namespace detail {

// __FILE__ from the repository root: the build's -fmacro-prefix-map strips the absolute source folder, and
// this the leading "../" of the relative paths that ccache's base_dir makes.
constexpr const char* source_path(const char* file) {
  for (;;) {
    if (file[0] == '.' && file[1] == '.' && file[2] == '/') {
      file += 3;
    } else if (file[0] == '.' && file[1] == '/') {
      file += 2;
    } else {
      return file;
    }
  }
}

}  // namespace detail

}  // namespace lockstep

// LOCKSTEP_CHECK(cond, ErrorType, parts...): throws ErrorType(str_cat(parts...)) when cond is false. For
// conditions on what the caller passed in.
#define LOCKSTEP_CHECK(cond, ErrorType, ...)                        \
  do {                                                              \
    if (!(cond)) throw ErrorType(::lockstep::str_cat(__VA_ARGS__)); \
  } while (false)

// LOCKSTEP_INTERNAL_ASSERT(cond, parts...): throws InternalError when cond is false, with the message
// "Lockstep internal error at <file>:<line> in <function>: expected `<cond>`: <parts>. This is a bug in
// Lockstep, not in the calling code; please report it." (no ": <parts>" without parts). For invariants no
// input can break, like PyTorch's TORCH_INTERNAL_ASSERT beside TORCH_CHECK. Always on, also in Release
// builds.
#define LOCKSTEP_INTERNAL_ASSERT(cond, ...)                                                                \
  do {                                                                                                     \
    if (!(cond)) {                                                                                         \
      throw ::lockstep::InternalError(::lockstep::str_cat(                                                 \
          "Lockstep internal error at ", ::lockstep::detail::source_path(__FILE__), ":", __LINE__, " in ", \
          __func__, ": expected `", #cond, "`" __VA_OPT__(, ": ", __VA_ARGS__),                            \
          ". This is a bug in Lockstep, not in the calling code; please report it."));                     \
    }                                                                                                      \
  } while (false)
