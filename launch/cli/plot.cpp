// `lockstep plot RUN_DIR [--output DIR] [--width W] [--height H]`: PNG figures of a training run's
// metrics.jsonl (launch/plot/plot.h), written into RUN_DIR or DIR.
#include "launch/plot/plot.h"

#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "launch/cli/commands.h"
#include "launch/cli/common.h"

namespace lockstep::launch {

int run_plot(const std::vector<std::string>& args) {
  namespace po = boost::program_options;
  po::options_description options("Options");
  options.add_options()("run", po::value<std::string>()->required(), "the run folder (run.output) to plot")(
      "output,o", po::value<std::string>(), "where to write the PNG files (default: the run folder)")(
      "width", po::value<int>()->default_value(1000), "width of each curve figure in pixels")(
      "height", po::value<int>()->default_value(640),
      "height of each figure in pixels (the confusion matrix "
      "is height x height)");
  po::positional_options_description positional;
  positional.add("run", 1);
  const auto values = parse_options(
      args, options, positional, "plot RUN_DIR",
      "Draws the curves of RUN_DIR/metrics.jsonl as PNG files: loss.png (every loss), accuracy.png, lr.png, "
      "frechet.png (where logged) and one file per other logged figure, each against the epoch; and "
      "confusion.png, the confusion matrix of the latest evaluation that logged one. Lists the files "
      "written.");
  if (!values) return 0;
  const std::filesystem::path run = (*values)["run"].as<std::string>();
  const std::filesystem::path output =
      values->count("output") ? std::filesystem::path((*values)["output"].as<std::string>()) : run;
  const int width = (*values)["width"].as<int>(), height = (*values)["height"].as<int>();
  if (width < 200 || width > 8000 || height < 200 || height > 8000) {
    throw UsageError(
        str_cat("--width and --height: expected 200 to 8000 pixels, but got ", width, " and ", height, "."));
  }
  const std::vector<MetricsRecord> records = read_metrics(run);
  for (const std::filesystem::path& file : plot_metrics(records, output, width, height))
    std::cout << "wrote " << file.string() << '\n';
  return 0;
}

}  // namespace lockstep::launch
