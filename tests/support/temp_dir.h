// Scratch directories for tests that write files: a fresh directory under the system temporary directory,
// removed with its contents at scope exit, and a fixture that gives each test its own.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <string>
#include <system_error>

namespace lockstep::test {

class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    path_ = std::filesystem::temp_directory_path() /
            ("lockstep_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

// A fixture whose tests each get a fresh TempDir; file(name) is a path in it.
class TempDirTest : public ::testing::Test {
 protected:
  std::filesystem::path file(const std::string& name) const { return dir_ / name; }

  TempDir dir_;
};

}  // namespace lockstep::test
