// `lockstep train CONFIG [key=value ...]`: classifier or GAN training from a config file.
#include "launch/cli/commands.h"
#include "launch/cli/common.h"
#include "launch/config/config.h"
#include "launch/train/classifier.h"
#include "launch/train/evaluate.h"
#include "launch/train/gan.h"
#include "launch/train/run.h"

namespace lockstep::cli {

namespace po = boost::program_options;

int run_train(const std::vector<std::string>& args) {
  po::options_description options("Options");
  options.add_options()("config", po::value<std::string>()->required(), "the TOML config file")(
      "override", po::value<std::vector<std::string>>()->default_value({}, ""),
      "dotted.key=value overrides of config values (TOML syntax), after the config file")(
      "progress", po::value<std::string>()->default_value("auto"), "auto | bar | lines");
  po::positional_options_description positional;
  positional.add("config", 1).add("override", -1);
  const auto values =
      parse_options(args, options, positional, "train CONFIG [key=value ...] [--progress auto|bar|lines]",
                    "Trains the classifier or GAN the config describes (see examples/*.toml).");
  if (!values) return 0;
  const std::string style_name = (*values)["progress"].as<std::string>();
  if (style_name != "auto" && style_name != "bar" && style_name != "lines") {
    throw UsageError(str_cat("--progress: expected auto, bar or lines, but got '", style_name, "'"));
  }
  const launch::Config cfg = launch::Config::load((*values)["config"].as<std::string>(),
                                                  (*values)["override"].as<std::vector<std::string>>());
  const train::RunSettings run = train::setup_run(cfg);
  train::Progress progress(stdout, style_name == "bar"     ? train::Style::kBar
                                   : style_name == "lines" ? train::Style::kLines
                                                           : train::Style::kAuto);
  const std::string model_file = (run.output / "model.h5").string();
  if (run.task == "classifier") {
    const train::ClassifierResult r = train::train_classifier(cfg, run, progress);
    progress.print(str_cat("done: best test accuracy ", train::format_fixed(r.best_accuracy, 4), " (epoch ",
                           r.best_epoch, "), final train loss ", train::format_fixed(r.last_loss, 4), ", ",
                           r.steps, " steps, ", static_cast<std::int64_t>(r.images_per_s), " img/s, ",
                           train::format_duration(r.seconds), "; model ", model_file));
  } else {
    const train::GanResult r = train::train_gan(cfg, run, progress);
    progress.print(str_cat(
        "done: D loss ", train::format_fixed(r.d_loss, 4), ", G loss ", train::format_fixed(r.g_loss, 4),
        ", ", r.generator_steps, " generator steps, ", static_cast<std::int64_t>(r.images_per_s), " img/s, ",
        train::format_duration(r.seconds), "; models ", model_file, ", samples in ", run.output.string()));
  }
  return 0;
}

}  // namespace lockstep::cli
