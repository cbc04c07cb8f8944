// The character model through the command line: `lockstep convert --format text`, a short `lockstep train`
// of task "charlm", `lockstep sample --prompt` (the same text for a seed) and `lockstep eval --charlm` (its
// figures against an independent computation), and the errors for bad options, configs and prompts.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "io/data/text.h"
#include "launch/cli/commands.h"
#include "launch/cli/common.h"
#include "launch/config/config.h"
#include "launch/config/settings.h"
#include "launch/train/charlm.h"
#include "launch/train/loop.h"
#include "launch/train/run.h"
#include "tests/support/expect_error.h"
#include "tests/support/fashion_mnist.h"
#include "tests/support/temp_dir.h"
#include "tests/support/text_corpus.h"

namespace lockstep::launch {
namespace {

namespace fs = std::filesystem;

// Runs a subcommand and returns what it printed on stdout (errors propagate).
std::string printed(int (*command)(const std::vector<std::string>&), const std::vector<std::string>& args) {
  std::ostringstream out;
  std::streambuf* saved = std::cout.rdbuf(out.rdbuf());
  try {
    EXPECT_EQ(command(args), 0);
  } catch (...) {
    std::cout.rdbuf(saved);
    throw;
  }
  std::cout.rdbuf(saved);
  return out.str();
}

std::string config_text(const fs::path& output, const std::string& extra = "") {
  return "task = \"charlm\"\n[run]\nseed = 2\nepochs = 1\nmax_steps = 4\nthreads = 1\noutput = \"" +
         output.string() + "\"\n[data]\npath = \"" + test::small_text_h5().string() +
         "\"\nbatch_size = 4\neval_batch_size = 4\n[charlm]\nembedding = 8\nhidden = 16\nlayers = 1\nsamples "
         "= 10\n"
         "[train]\nbptt_steps = 16\n" +
         extra;
}

// A character model trained for 4 steps once per test binary.
fs::path trained_model() {
  static const std::unique_ptr<test::TempDir> dir = [] {
    auto d = std::make_unique<test::TempDir>();
    Progress progress(nullptr);
    const Settings settings = read_settings(Config::parse(config_text(*d / "run"), "charlm.toml"));
    train(settings, setup_run(settings), progress);
    return d;
  }();
  return *dir / "run" / "model.h5";
}

TEST(CharLmCli, ConvertWritesTheSplitsAndSaysWhichFilesAreTest) {
  test::TempDir dir;
  test::write_text_folder(dir / "in", 4, 200, 5);
  const std::string out = printed(run_convert, {"--format", "text", "--input", (dir / "in").string(),
                                                "--output", (dir / "t.h5").string(), "--test-every", "2"});
  EXPECT_NE(out.find("test: "), std::string::npos) << out;
  EXPECT_NE(out.find("from 2 files (text_01, text_03)"), std::string::npos) << out;
  EXPECT_EQ(io::TextDataset::open(dir / "t.h5", "test")->files(),
            (std::vector<std::string>{"text_01", "text_03"}));
  const std::string inspected = printed(run_inspect, {(dir / "t.h5").string()});
  EXPECT_NE(inspected.find("text data set"), std::string::npos) << inspected;
  EXPECT_NE(inspected.find("characters from 2 files (text_01, text_03)"), std::string::npos) << inspected;
  const auto convert = [&](std::vector<std::string> extra) {
    std::vector<std::string> args = {
        "--format", "text", "--input", (dir / "in").string(), "--output", (dir / "u.h5").string()};
    args.insert(args.end(), extra.begin(), extra.end());
    return [args] { run_convert(args); };
  };
  test::expect_error<UsageError>(convert({"--test-every", "1"}), {"--test-every", "at least 2"});
  test::expect_error<UsageError>(convert({"--labels", "x"}), {"--labels", "--format text"});
  test::expect_error<IoError>(convert({"--test-every", "5"}), {"at least 5 text files", "found 4"});
  test::expect_error<UsageError>(
      [&] {
        run_convert(
            {"--format", "mnist", "--input", "x", "--output", (dir / "v.h5").string(), "--exclude", "*.dat"});
      },
      {"--exclude", "--format text"});
}

TEST(CharLmCli, SampleRepeatsForASeedAndNamesACharacterOutsideTheVocabulary) {
  const fs::path model = trained_model();
  const std::vector<std::string> args = {model.string(), "--prompt", "The ", "--length", "50", "--seed", "3"};
  const std::string a = printed(run_sample, args), b = printed(run_sample, args);
  EXPECT_EQ(a, b);
  ASSERT_EQ(a.rfind("The ", 0), 0U) << a;
  EXPECT_EQ(a.size(), 4U + 50U + 1U);  // ASCII text, the prompt, then a newline
  EXPECT_NE(printed(run_sample, {model.string(), "--prompt", "The ", "--length", "50", "--seed", "4"}), a);
  test::expect_error<UsageError>(
      [&] {
        run_sample({model.string(), "--prompt", "The Zebra"});
      },
      {"--prompt", "character 4 ('Z', U+5a)"});
  test::expect_error<UsageError>(
      [&] {
        run_sample({model.string(), "--temperature", "0"});
      },
      {"--temperature"});
  test::expect_error<UsageError>(
      [&] {
        run_sample({model.string(), "--class", "1"});
      },
      {"--class", "character"});
}

TEST(CharLmCli, EvalPrintsTheModelAndTheBigramOverTheSameCharacters) {
  const fs::path model = trained_model();
  const std::string out = printed(run_eval, {"--charlm", model.string()});
  // Both figures computed here independently of the command.
  const auto train_text = io::TextDataset::open(test::small_text_h5(), "train");
  const auto test_text = io::TextDataset::open(test::small_text_h5(), "test");
  const double bigram = io::bigram_bits_per_char(train_text->tokens(), test_text->tokens(),
                                                 static_cast<std::int64_t>(train_text->vocabulary().size()));
  const LoadedCharLm loaded = load_char_lm(model);
  const TextLoss loss = text_loss(*loaded.model, test_text->tokens(), 4, 16);
  EXPECT_EQ(loss.tokens, static_cast<double>(test_text->size() - 1));
  EXPECT_NE(out.find(format_fixed(loss.nats / loss.tokens / std::log(2.0), 4) + " bits per character"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find(format_fixed(bigram, 4) + " bits per character"), std::string::npos) << out;
  EXPECT_NE(out.find("ratio model / bigram"), std::string::npos) << out;
  // A checkpoint directory stands for its model file (the last checkpoint holds the same model).
  const std::string from_checkpoint =
      printed(run_eval, {"--charlm", (model.parent_path() / "checkpoints" / "step_000000004").string()});
  EXPECT_NE(
      from_checkpoint.find(format_fixed(loss.nats / loss.tokens / std::log(2.0), 4) + " bits per character"),
      std::string::npos)
      << from_checkpoint;
}

TEST(CharLmCli, ConfigErrorsNameTheKey) {
  test::TempDir dir;
  const auto run_config = [&](const std::string& text) {
    return [&dir, text] {
      Progress progress(nullptr);
      const Settings settings = read_settings(Config::parse(text, "bad.toml"));
      train(settings, setup_run(settings), progress);
    };
  };
  std::string text = config_text(dir / "c");
  text.replace(text.find("samples = 10"), 12, "samples = 10\nprompt = \"Zz\"");
  test::expect_error<ConfigError>(run_config(text), {"charlm.prompt", "character 0 ('Z'"});
  text = config_text(dir / "d");
  text.replace(text.find("batch_size = 4"), 14, "batch_size = 4000");
  test::expect_error<ConfigError>(run_config(text), {"data.batch_size", "train.bptt_steps = 16"});
  text = config_text(dir / "e");
  text.replace(text.find(test::small_text_h5().string()), test::small_text_h5().string().size(),
               test::small_fashion_mnist_h5().string());
  test::expect_error<ConfigError>(run_config(text), {"data.path", "text data set"});
  text = config_text(dir / "f");
  text.replace(text.find("eval_batch_size = 4"), 19, "eval_batch_size = 4\nvalidation_fraction = 0.1");
  test::expect_error<ConfigError>(run_config(text), {"data.validation_fraction", "expected 0 for text"});
  // And a text file given to an image task.
  test::expect_error<ConfigError>(
      run_config("task = \"classifier\"\n[run]\noutput = \"" + (dir / "g").string() +
                 "\"\n[data]\npath = \"" + test::small_text_h5().string() +
                 "\"\nbatch_size = 4\n[model]\nname = \"mlp\"\n[optimizer]\nname = \"sgd\"\nlr = 0.1\n"),
      {"data.path", "holds text", "task = \"charlm\""});
}

}  // namespace
}  // namespace lockstep::launch
