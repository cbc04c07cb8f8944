// Tests of the `lockstep` command line through run_cli: help and version, exit codes for usage errors and
// failures, error messages on the error stream, and `convert` end to end on a tiny IDX data set.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "launch/cli/commands.h"
#include "launch/cli/dispatch.h"
#include "src/core/error.h"

namespace lockstep::launch {
namespace {

std::vector<std::string> g_received;

int record_args(const std::vector<std::string>& args) {
  g_received = args;
  return 3;
}
int throw_value_error(const std::vector<std::string>&) {
  throw ValueError("model: expected depth 20, but got 21.");
}
int throw_runtime_error(const std::vector<std::string>&) { throw std::runtime_error("disk on fire"); }
int throw_int(const std::vector<std::string>&) { throw 42; }

constexpr Command kCommands[] = {
    {"convert", "convert a data set", run_convert},
    {"record", "records its arguments", record_args},
    {"value", "throws a ValueError", throw_value_error},
    {"runtime", "throws a std::runtime_error", throw_runtime_error},
    {"int", "throws an int", throw_int},
};

struct Result {
  int code;
  std::string out;
  std::string err;
  std::string cout;  // what the command itself printed on std::cout
};

Result run(const std::vector<std::string>& args) {
  std::ostringstream out, err, captured;
  std::streambuf* saved = std::cout.rdbuf(captured.rdbuf());
  const int code = run_cli(kCommands, args, out, err);
  std::cout.rdbuf(saved);
  return {code, out.str(), err.str(), captured.str()};
}

bool contains(const std::string& text, const std::string& fragment) {
  return text.find(fragment) != std::string::npos;
}

TEST(Cli, HelpListsTheCommands) {
  for (const std::string flag : {"--help", "-h"}) {
    const Result r = run({flag});
    EXPECT_EQ(r.code, 0);
    EXPECT_TRUE(contains(r.out, "Usage: lockstep")) << r.out;
    EXPECT_TRUE(contains(r.out, "  convert   convert a data set\n")) << r.out;
    EXPECT_TRUE(contains(r.out, "--version")) << r.out;
    EXPECT_EQ(r.err, "");
  }
}

TEST(Cli, VersionPrintsTheVersion) {
  const Result r = run({"--version"});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, "lockstep 0.1.0\n");
}

TEST(Cli, UnknownCommandIsAUsageErrorWithASuggestion) {
  const Result r = run({"conver", "--input", "x"});
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(contains(r.err,
                       "lockstep: error: expected a command (convert, record, value, runtime, int), but got "
                       "'conver'. Did you mean 'convert'?"))
      << r.err;
  EXPECT_TRUE(contains(r.err, "Run 'lockstep --help' for usage.")) << r.err;
  EXPECT_EQ(r.out, "");
}

TEST(Cli, MissingCommandAndBadOptionsAreUsageErrors) {
  Result r = run({});
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(contains(r.err, "expected a command, but got none")) << r.err;
  r = run({"--bogus", "convert"});
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(contains(r.err, "bogus")) << r.err;
  EXPECT_TRUE(contains(r.err, "lockstep --help")) << r.err;
}

TEST(Cli, CommandsGetTheArgumentsAfterTheirName) {
  const Result r = run({"record", "a", "--b", "c=d"});
  EXPECT_EQ(r.code, 3);
  EXPECT_EQ(g_received, (std::vector<std::string>{"a", "--b", "c=d"}));
}

TEST(Cli, ErrorsBecomeMessagesAndExitCodeOne) {
  Result r = run({"value"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "lockstep: error: model: expected depth 20, but got 21.\n");
  r = run({"runtime"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "lockstep: error: disk on fire\n");
  r = run({"int"});
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(contains(r.err, "lockstep: error: an exception of unknown type")) << r.err;
}

TEST(Cli, ConvertHelpAndUsageErrors) {
  Result r = run({"convert", "--help"});
  EXPECT_EQ(r.code, 0);
  EXPECT_TRUE(contains(r.cout, "Usage: lockstep convert --format FORMAT")) << r.cout;
  EXPECT_TRUE(contains(r.cout, "--labels")) << r.cout;

  r = run({"convert", "--format", "idx", "--input", "a"});
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(contains(r.err, "'--output' is required")) << r.err;
  EXPECT_TRUE(contains(r.err, "Run 'lockstep convert --help' for usage.")) << r.err;

  r = run({"convert", "--format", "png", "--input", "a", "--output", "b.h5"});
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(
      contains(r.err,
               "--format: expected one of fashion-mnist, mnist, idx, cifar10, npy, image-folder, text, "
               "but got 'png'"))
      << r.err;

  r = run({"convert", "--format", "idx", "--input", "a", "--output", "b.h5"});
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(contains(r.err, "--labels: expected the labels file with --format idx")) << r.err;

  r = run({"convert", "--format", "mnist", "--input", "a", "--labels", "l", "--output", "b.h5"});
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(contains(r.err, "--labels: expected only with --format idx or npy, but got --format mnist"))
      << r.err;

  r = run({"convert", "--format", "cifar10", "--input", "a", "--split", "val", "--output", "b.h5"});
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(contains(r.err, "--split")) << r.err;

  r = run(
      {"convert", "--format", "npy", "--input", "a", "--labels", "l", "--layout", "chw", "--output", "b.h5"});
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(contains(r.err, "--layout: expected nchw or nhwc, but got 'chw'")) << r.err;

  r = run({"convert", "--format", "idx", "--input", "a", "--labels", "l", "--output", "b.h5", "--bogus"});
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(contains(r.err, "bogus")) << r.err;
}

class CliConvert : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("lockstep_cli_test_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Writes an IDX file: big-endian magic and sizes, then the bytes.
  void write_idx(const std::filesystem::path& path, std::uint32_t magic,
                 const std::vector<std::uint32_t>& dims, const std::vector<std::uint8_t>& bytes) {
    std::ofstream out(path, std::ios::binary);
    const auto put = [&out](std::uint32_t v) {
      const char b[4] = {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
                         static_cast<char>(v)};
      out.write(b, 4);
    };
    put(magic);
    for (const std::uint32_t d : dims) put(d);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  }

  std::filesystem::path dir_;
};

TEST_F(CliConvert, MissingInputFileIsNamedOnTheErrorStream) {
  const std::string images = (dir_ / "no-such-images-idx3-ubyte").string();
  const Result r = run({"convert", "--format", "idx", "--input", images, "--labels",
                        (dir_ / "labels").string(), "--output", (dir_ / "out.h5").string()});
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(contains(r.err, "lockstep: error: ")) << r.err;
  EXPECT_TRUE(contains(r.err, images)) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir_ / "out.h5"));
}

TEST_F(CliConvert, ConvertsIdxAndSummarisesTheSplit) {
  // Two 1x1x2 images: pixels 0, 255, 255, 255 -> mean 0.75, population std sqrt(0.75 - 0.5625) = 0.4330.
  write_idx(dir_ / "images", 0x803, {2, 1, 2}, {0, 255, 255, 255});
  write_idx(dir_ / "labels", 0x801, {2}, {1, 0});
  const std::string output = (dir_ / "set.h5").string();
  const Result r =
      run({"convert", "--format", "idx", "--input", (dir_ / "images").string(), "--labels",
           (dir_ / "labels").string(), "--split", "val", "--classes", "cat,dog", "--output", output});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(contains(r.cout, "val: 2 images of 1x1x2, 2 classes, mean [0.7500], std [0.4330]\n")) << r.cout;
  EXPECT_TRUE(contains(r.cout, "wrote " + output + " in ")) << r.cout;
  EXPECT_TRUE(std::filesystem::exists(output));
}

}  // namespace
}  // namespace lockstep::launch
