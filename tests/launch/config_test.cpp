// Tests of launch::Config: typed getters, defaults, command-line overrides, located errors (syntax, type,
// missing keys, malformed overrides), rejection of unknown keys with suggestions, and the TOML dump.
#include "launch/config/config.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <string>

#include "src/core/error.h"

namespace lockstep::launch {
namespace {

constexpr const char* kRun = R"(# a training run
seed = 7
name = "mnist-mlp"
verbose = true

[optimizer]
kind = "sgd"
lr = 0.1
momentum = 0
milestones = [30, 60, 90]

[model]
hidden = [128, 64]
scales = [1, 0.5, 2.5e-1]
layers = ["conv", "bn", "relu"]
)";

// Runs `f`, expects a ConfigError and returns it.
ConfigError config_error(const std::function<void()>& f) {
  try {
    f();
  } catch (const ConfigError& e) {
    return e;
  }
  ADD_FAILURE() << "expected a ConfigError";
  return ConfigError("none", "", -1, "");
}

TEST(Config, TypedGettersReadNestedKeys) {
  const Config c = Config::parse(kRun, "run.toml");
  EXPECT_EQ(c.get_int("seed"), 7);
  EXPECT_EQ(c.get_string("name"), "mnist-mlp");
  EXPECT_TRUE(c.get_bool("verbose"));
  EXPECT_EQ(c.get_string("optimizer.kind"), "sgd");
  EXPECT_DOUBLE_EQ(c.get_double("optimizer.lr"), 0.1);
  // An integer is accepted where a number is expected.
  EXPECT_DOUBLE_EQ(c.get_double("optimizer.momentum"), 0.0);
  EXPECT_EQ(c.get_ints("optimizer.milestones"), (std::vector<int64_t>{30, 60, 90}));
  EXPECT_EQ(c.get_ints("model.hidden"), (std::vector<int64_t>{128, 64}));
  EXPECT_EQ(c.get_doubles("model.scales"), (std::vector<double>{1.0, 0.5, 0.25}));
  EXPECT_EQ(c.get_strings("model.layers"), (std::vector<std::string>{"conv", "bn", "relu"}));
  EXPECT_TRUE(c.has("optimizer.lr"));
  EXPECT_TRUE(c.has("optimizer"));
  EXPECT_FALSE(c.has("optimizer.beta1"));
  EXPECT_FALSE(c.has("data.path"));
  EXPECT_EQ(c.file(), "run.toml");
}

TEST(Config, DefaultsApplyOnlyToMissingKeys) {
  const Config c = Config::parse(kRun, "run.toml");
  EXPECT_EQ(c.get_int("seed", 1), 7);
  EXPECT_EQ(c.get_int("epochs", 12), 12);
  EXPECT_DOUBLE_EQ(c.get_double("optimizer.weight_decay", 5e-4), 5e-4);
  EXPECT_EQ(c.get_string("data.path", "fashion.h5"), "fashion.h5");
  EXPECT_FALSE(c.get_bool("data.shuffle", false));
  EXPECT_EQ(c.get_ints("data.crop", {28, 28}), (std::vector<int64_t>{28, 28}));
  EXPECT_EQ(c.get_doubles("data.mean", {0.5}), (std::vector<double>{0.5}));
  EXPECT_EQ(c.get_strings("data.splits", {"train", "test"}), (std::vector<std::string>{"train", "test"}));
  EXPECT_EQ(c.get_ints("model.hidden", {1}), (std::vector<int64_t>{128, 64}));
}

TEST(Config, ChoiceChecksTheAllowedValues) {
  const Config c = Config::parse("[optimizer]\nkind = \"adamm\"\n[model]\nnorm = \"batch\"\n", "run.toml");
  EXPECT_EQ(c.choice("model.norm", {"batch", "layer", "none"}), "batch");
  EXPECT_EQ(c.choice("model.act", {"relu", "gelu"}, "gelu"), "gelu");
  const ConfigError e = config_error([&] { c.choice("optimizer.kind", {"sgd", "adam", "adamw"}, "sgd"); });
  EXPECT_EQ(e.file(), "run.toml");
  EXPECT_EQ(e.line(), 2);
  EXPECT_EQ(e.key(), "optimizer.kind");
  EXPECT_NE(std::string(e.what()).find("one of 'sgd', 'adam', 'adamw', but got 'adamm'"), std::string::npos)
      << e.what();
  EXPECT_NE(std::string(e.what()).find("Did you mean 'adam'?"), std::string::npos) << e.what();
  // A default outside the choices is a programming error.
  EXPECT_THROW(c.choice("model.act", {"relu"}, "tanh"), ValueError);
}

TEST(Config, WrongTypeNamesFileLineKeyAndWhatWasFound) {
  const Config c = Config::parse(kRun, "run.toml");
  ConfigError e = config_error([&] { c.get_int("name"); });
  EXPECT_EQ(e.file(), "run.toml");
  EXPECT_EQ(e.line(), 3);
  EXPECT_EQ(e.key(), "name");
  const std::string message = e.what();
  EXPECT_NE(
      message.find("Config::get_int: expected 'name' to be an integer, but got a string \"mnist-mlp\" at "
                   "run.toml:3."),
      std::string::npos)
      << message;

  e = config_error([&] { c.get_int("optimizer.lr"); });
  EXPECT_EQ(e.line(), 8);
  EXPECT_NE(std::string(e.what()).find("a float 0.1"), std::string::npos) << e.what();

  e = config_error([&] { c.get_bool("optimizer.milestones", true); });
  EXPECT_EQ(e.line(), 10);
  EXPECT_NE(std::string(e.what()).find("a boolean, but got an array [30, 60, 90]"), std::string::npos)
      << e.what();

  // A wrong element of an array is named by its index and its own line.
  e = config_error([&] { c.get_ints("model.layers"); });
  EXPECT_EQ(e.line(), 15);
  EXPECT_NE(std::string(e.what()).find("an array of integers, but got a string \"conv\" as element 0"),
            std::string::npos)
      << e.what();
  e = config_error([&] { c.get_strings("model.scales"); });
  EXPECT_NE(std::string(e.what()).find("an integer 1 as element 0"), std::string::npos) << e.what();

  // A key below a value that is not a table.
  e = config_error([&] { c.get_double("optimizer.kind.lr", 0.1); });
  EXPECT_EQ(e.line(), 7);
  EXPECT_EQ(e.key(), "optimizer.kind.lr");
  EXPECT_NE(std::string(e.what()).find("'optimizer.kind' to be a table"), std::string::npos) << e.what();

  e = config_error([&] { c.get_string("model"); });
  EXPECT_NE(std::string(e.what()).find("to be a string, but got a table"), std::string::npos) << e.what();
}

TEST(Config, MissingRequiredKeyNamesFileAndKey) {
  const Config c = Config::parse(kRun, "run.toml");
  const ConfigError e = config_error([&] { c.get_double("optimizer.beta1"); });
  EXPECT_EQ(e.file(), "run.toml");
  EXPECT_EQ(e.line(), 0);
  EXPECT_EQ(e.key(), "optimizer.beta1");
  EXPECT_NE(std::string(e.what()).find(
                "expected the key 'optimizer.beta1' (a number) in run.toml, but it is missing"),
            std::string::npos)
      << e.what();
  EXPECT_THROW(c.get_strings("data.files"), ConfigError);
  // A malformed key in the program is a ValueError, not a configuration error.
  EXPECT_THROW(c.get_int("optimizer..lr"), ValueError);
}

TEST(Config, FailLocatesAnInvalidValue) {
  const Config c = Config::parse(kRun, "run.toml", {"train.epochs=0"});
  ConfigError e = config_error([&] { c.fail("optimizer.lr", "expected at most 0.05, but got 0.1"); });
  EXPECT_EQ(e.file(), "run.toml");
  EXPECT_EQ(e.line(), 8);
  EXPECT_EQ(e.key(), "optimizer.lr");
  EXPECT_EQ(std::string(e.what()),
            "Config: invalid 'optimizer.lr' at run.toml:8: expected at most 0.05, but got 0.1.");
  e = config_error([&] { c.fail("train.epochs", "expected at least 1, but got 0."); });
  EXPECT_EQ(e.file(), "<command line>");
  EXPECT_EQ(e.line(), 0);
  EXPECT_EQ(
      std::string(e.what()),
      "Config: invalid 'train.epochs' from the command-line override 'train.epochs=0': expected at least 1, "
      "but got 0.");
  e = config_error([&] { c.fail("train.batch", "too big"); });
  EXPECT_EQ(e.file(), "run.toml");
  EXPECT_EQ(e.line(), 0);
  EXPECT_NE(std::string(e.what()).find("the default value"), std::string::npos) << e.what();
}

TEST(Config, SyntaxErrorsGiveFileLineAndColumn) {
  ConfigError e = config_error([] { Config::parse("a = 1\nb = 2\nc = [1, 2\nd = 4\n", "bad.toml"); });
  EXPECT_EQ(e.file(), "bad.toml");
  EXPECT_GE(e.line(), 3);
  EXPECT_LE(e.line(), 4);
  EXPECT_NE(std::string(e.what()).find("syntax error at bad.toml:" + std::to_string(e.line()) + ":"),
            std::string::npos)
      << e.what();

  e = config_error([] { Config::parse("x = 1\n\n[t]\ny = \"unterminated\n", "bad.toml"); });
  EXPECT_EQ(e.line(), 4);

  e = config_error([] { Config::parse("lr = 0.1\nlr = 0.2\n", "dup.toml"); });
  EXPECT_EQ(e.line(), 2);
  EXPECT_NE(std::string(e.what()).find("lr"), std::string::npos) << e.what();
}

TEST(Config, OverridesParseTomlValuesAndBareWords) {
  const Config c = Config::parse(
      kRun, "run.toml",
      {"seed=11", "optimizer.lr = 0.05", "verbose=false", "name=resnet", "optimizer.kind=\"adam\"",
       "model.hidden=[256, 128, 10]", "data.path=/d/f.h5", "train.schedule.warmup=500",
       "optimizer.momentum=0.9", "model.scales=[2]", "data.tags=[\"a\", \"b\"]"});
  EXPECT_EQ(c.get_int("seed"), 11);
  EXPECT_DOUBLE_EQ(c.get_double("optimizer.lr"), 0.05);
  EXPECT_FALSE(c.get_bool("verbose"));
  EXPECT_EQ(c.get_string("name"), "resnet");
  EXPECT_EQ(c.get_string("optimizer.kind"), "adam");
  EXPECT_EQ(c.get_ints("model.hidden"), (std::vector<int64_t>{256, 128, 10}));
  EXPECT_EQ(c.get_string("data.path"), "/d/f.h5");
  // Nested tables are created on demand.
  EXPECT_EQ(c.get_int("train.schedule.warmup"), 500);
  // An override may change a value's type (0 -> 0.9).
  EXPECT_DOUBLE_EQ(c.get_double("optimizer.momentum"), 0.9);
  EXPECT_EQ(c.get_doubles("model.scales"), (std::vector<double>{2.0}));
  EXPECT_EQ(c.get_strings("data.tags"), (std::vector<std::string>{"a", "b"}));
  // Untouched values stay.
  EXPECT_EQ(c.get_strings("model.layers"), (std::vector<std::string>{"conv", "bn", "relu"}));
}

TEST(Config, LaterOverridesWinAndMayReplaceTables) {
  const Config c = Config::parse(kRun, "run.toml", {"seed=1", "seed=2", "model={ hidden = [8] }"});
  EXPECT_EQ(c.get_int("seed"), 2);
  EXPECT_EQ(c.get_ints("model.hidden"), (std::vector<int64_t>{8}));
  EXPECT_FALSE(c.has("model.layers"));
}

TEST(Config, WrongTypeFromOverrideNamesTheCommandLine) {
  const Config c = Config::parse(kRun, "run.toml", {"optimizer.lr=fast"});
  const ConfigError e = config_error([&] { c.get_double("optimizer.lr"); });
  EXPECT_EQ(e.file(), std::string(Config::kCommandLine));
  EXPECT_EQ(e.line(), 0);
  EXPECT_EQ(e.key(), "optimizer.lr");
  EXPECT_NE(
      std::string(e.what()).find("a string \"fast\" from the command-line override 'optimizer.lr=fast'"),
      std::string::npos)
      << e.what();
}

TEST(Config, MalformedOverridesAreConfigErrorsOnTheCommandLine) {
  const auto check = [](const std::string& text, const std::string& key, const std::string& fragment) {
    const ConfigError e = config_error([&] { Config::parse(kRun, "run.toml", {text}); });
    EXPECT_EQ(e.file(), "<command line>") << text;
    EXPECT_EQ(e.line(), 0) << text;
    EXPECT_EQ(e.key(), key) << text;
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  };
  check("optimizer.lr", "optimizer.lr", "of the form dotted.key=value, but got 'optimizer.lr'");
  check("optimizer..lr=1", "optimizer..lr", "expected a dotted key");
  check("=3", "", "expected a dotted key");
  check("my key=3", "my key", "expected a dotted key");
  check("seed=", "seed", "expected a value after '='");
  check("model.hidden=[1, 2", "model.hidden", "does not parse");
  check("name=\"open", "name", "does not parse");
  check("model={a=", "model", "does not parse");
  // A parent that is a value, not a table.
  check("optimizer.kind.beta=1", "optimizer.kind.beta", "expected 'optimizer.kind' to be a table");
}

TEST(Config, RejectUnknownListsUnreadKeysWithLinesAndSuggestions) {
  const Config c = Config::parse(
      "seed = 1\n[optimizer]\nlr = 0.1\nmomentun = 0.9\n[data]\npath = \"x.h5\"\nbatch_size = 64\nweird = "
      "3\npth = \"y\"\n"
      "[train]\nepochs = 2\n",
      "run.toml", {"optimizer.wd=0.01"});
  c.get_int("seed");
  c.get_double("optimizer.lr");
  c.get_double("optimizer.momentum", 0.0);
  c.get_double("optimizer.weight_decay", 0.0);
  c.get_string("data.path");
  c.get_int("train.batch_size", 32);
  c.get_int("train.epochs");
  const ConfigError e = config_error([&] { c.reject_unknown(); });
  const std::string message = e.what();
  // The first unknown key by line.
  EXPECT_EQ(e.file(), "run.toml");
  EXPECT_EQ(e.line(), 4);
  EXPECT_EQ(e.key(), "optimizer.momentun");
  EXPECT_NE(message.find("5 unknown keys in run.toml"), std::string::npos) << message;
  EXPECT_NE(message.find("'optimizer.momentun' at run.toml:4 (did you mean 'optimizer.momentum'?)"),
            std::string::npos)
      << message;
  // The right name in the wrong table.
  EXPECT_NE(message.find("'data.batch_size' at run.toml:7 (did you mean 'train.batch_size'?)"),
            std::string::npos)
      << message;
  // Nothing close: no suggestion.
  EXPECT_NE(message.find("'data.weird' at run.toml:8\n"), std::string::npos) << message;
  // A key that is present is not what a misspelt key meant.
  EXPECT_NE(message.find("'data.pth' at run.toml:9\n"), std::string::npos) << message;
  EXPECT_NE(message.find("'optimizer.wd' from the command-line override 'optimizer.wd=0.01'\n"),
            std::string::npos)
      << message;
  EXPECT_EQ(message.find("'seed'"), std::string::npos) << message;
  EXPECT_EQ(message.find("'train.epochs'"), std::string::npos) << message;
}

TEST(Config, RejectUnknownPassesWhenEverythingWasRead) {
  const Config c = Config::parse("a = 1\n[b]\nc = [1]\nd = \"x\"\n", "ok.toml", {"e.f=true"});
  c.get_int("a");
  c.get_ints("b.c");
  EXPECT_TRUE(c.has("b.d"));
  c.get_bool("e.f");
  EXPECT_NO_THROW(c.reject_unknown());
}

TEST(Config, ToStringDumpsTheEffectiveConfigAsToml) {
  const Config c =
      Config::parse(kRun, "run.toml", {"optimizer.lr=0.01", "train.note=\"a \\\"quoted\\\" word\""});
  c.get_int("train.epochs", 5);
  c.get_double("optimizer.weight_decay", 1e-4);
  c.get_strings("data.splits", {"train", "test"});
  const std::string text = c.to_string();
  EXPECT_NE(text.find("lr = 0.01\n"), std::string::npos) << text;
  EXPECT_NE(text.find("momentum = 0\n"), std::string::npos) << text;
  EXPECT_NE(text.find("[optimizer]\n"), std::string::npos) << text;
  EXPECT_NE(text.find("scales = [1, 0.5, 0.25]\n"), std::string::npos) << text;

  // Reading the dump back gives the same values, the defaults used included.
  const Config back = Config::parse(text, "dump.toml");
  EXPECT_EQ(back.get_int("seed"), 7);
  EXPECT_EQ(back.get_string("name"), "mnist-mlp");
  EXPECT_TRUE(back.get_bool("verbose"));
  EXPECT_DOUBLE_EQ(back.get_double("optimizer.lr"), 0.01);
  EXPECT_EQ(back.get_int("optimizer.momentum"), 0);
  EXPECT_EQ(back.get_ints("optimizer.milestones"), (std::vector<int64_t>{30, 60, 90}));
  EXPECT_EQ(back.get_doubles("model.scales"), (std::vector<double>{1.0, 0.5, 0.25}));
  EXPECT_EQ(back.get_string("train.note"), "a \"quoted\" word");
  EXPECT_EQ(back.get_int("train.epochs"), 5);
  EXPECT_DOUBLE_EQ(back.get_double("optimizer.weight_decay"), 1e-4);
  EXPECT_EQ(back.get_strings("data.splits"), (std::vector<std::string>{"train", "test"}));
  EXPECT_EQ(back.to_string(), text);
}

TEST(Config, LoadReadsFilesAndNamesThemInErrors) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("lockstep_config_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::filesystem::path path = dir / "run.toml";
  {
    std::ofstream out(path);
    out << "[train]\nepochs = \"ten\"\nbatch = 64\n";
  }
  const Config c = Config::load(path, {"train.batch=128"});
  EXPECT_EQ(c.get_int("train.batch"), 128);
  const ConfigError e = config_error([&] { c.get_int("train.epochs"); });
  EXPECT_EQ(e.file(), path.string());
  EXPECT_EQ(e.line(), 2);
  EXPECT_NE(std::string(e.what()).find(path.string() + ":2"), std::string::npos) << e.what();

  try {
    Config::load(dir / "missing.toml");
    ADD_FAILURE() << "expected an IoError";
  } catch (const IoError& error) {
    EXPECT_EQ(error.file(), (dir / "missing.toml").string());
    EXPECT_NE(std::string(error.what()).find("missing.toml"), std::string::npos);
  }
  std::filesystem::remove_all(dir);
}

// The edit distance itself is tested with the other string helpers (tests/core).
TEST(Config, ClosestMatch) {
  EXPECT_EQ(closest_match("optimzer.lr", {"model.width", "optimizer.lr", "optimizer.wd"}), "optimizer.lr");
  EXPECT_EQ(closest_match("seed", {"optimizer.lr", "model.width"}), std::nullopt);
  EXPECT_EQ(closest_match("optimizer.wd", {"optimizer.lr"}), std::nullopt);
}

}  // namespace
}  // namespace lockstep::launch
