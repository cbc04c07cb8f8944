// The one error hierarchy of Lockstep. A user error reads
// "<function>: expected <condition>, but got <values>. <hint>"; library code never exits or aborts.
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

}  // namespace lockstep

// LOCKSTEP_CHECK(cond, ErrorType, parts...): throws ErrorType(str_cat(parts...)) when cond is false.
#define LOCKSTEP_CHECK(cond, ErrorType, ...)                   \
  do {                                                         \
    if (!(cond)) throw ErrorType(::lockstep::str_cat(__VA_ARGS__)); \
  } while (false)
