// `lockstep eval`: test accuracy of a trained classifier and, given a generator, the Fréchet distance between
// generated and test images in that classifier's feature space, for the trained and an untrained generator.
#include <iostream>

#include "launch/cli/commands.h"
#include "launch/cli/common.h"
#include "io/model/model_file.h"
#include "launch/config/settings.h"
#include "launch/train/evaluate.h"
#include "launch/train/factory.h"
#include "launch/train/progress.h"
#include "launch/train/run.h"
#include "src/core/rng.h"
#include "src/metrics/frechet.h"
#include "src/ops/shape.h"
#include "src/tensor/factories.h"

namespace lockstep::launch {
namespace {

namespace po = boost::program_options;

// A model file's stored settings, with the data path replaced when given.
launch::Settings stored(const std::string& file, const std::string& data_path) {
  std::vector<std::string> overrides;
  if (!data_path.empty()) overrides.push_back(str_cat("data.path=\"", data_path, "\""));
  return launch::read_settings(launch::Config::parse(io::read_model_file_info(file).config, file, overrides));
}

}  // namespace

int run_eval(const std::vector<std::string>& args) {
  po::options_description options("Options");
  options.add_options()("classifier", po::value<std::string>()->required(), "a classifier's model.h5")(
      "generator", po::value<std::string>()->default_value(""), "a GAN's model.h5: measure its samples")(
      "data", po::value<std::string>()->default_value(""), "the data set file (default: the one trained on)")(
      "samples", po::value<std::int64_t>()->default_value(10000), "images to generate")(
      "seed", po::value<std::int64_t>()->default_value(0),
      "seed of the noise and of the untrained generator");
  const auto values =
      parse_options(args, options, "eval --classifier MODEL.h5 [--generator MODEL.h5]",
                    "Test accuracy of a classifier; with --generator, the Fréchet distance between "
                    "generated and test images in the classifier's feature space, for the trained "
                    "generator and for an untrained one.");
  if (!values) return 0;
  const std::string classifier_file = (*values)["classifier"].as<std::string>();
  const std::string generator_file = (*values)["generator"].as<std::string>();
  const std::string data_path = (*values)["data"].as<std::string>();
  const auto samples = (*values)["samples"].as<std::int64_t>();
  const auto seed = static_cast<std::uint64_t>((*values)["seed"].as<std::int64_t>());
  if (samples < 2) throw UsageError(str_cat("--samples: expected at least 2, but got ", samples));

  const launch::Settings csettings = stored(classifier_file, data_path);
  launch::DataSplits data = launch::make_data(csettings.data, seed);
  if (!data.test)
    throw ValueError(str_cat("eval: the data set has no test split (data.test_split is empty)"));
  std::shared_ptr<nn::Module> model = launch::make_classifier(csettings.model.model, data.geometry);
  io::load_model_group(classifier_file, "model", *model);
  io::DataLoader test_loader(data.test, data.test_options);
  const launch::Accuracy acc = launch::evaluate_classifier(*model, test_loader);
  std::cout << "classifier " << classifier_file << ": test accuracy " << format_fixed(acc.accuracy, 4)
            << ", test loss " << format_fixed(acc.loss, 4) << " on " << acc.count << " images\n";
  if (generator_file.empty()) return 0;

  auto* classifier = dynamic_cast<models::Classifier*>(model.get());
  if (classifier == nullptr) throw ValueError("eval: the classifier model has no feature layer");
  std::vector<Tensor> real_parts;
  test_loader.start_epoch(0);
  while (std::optional<io::Batch> batch = test_loader.next()) real_parts.push_back(batch->images);
  const Tensor real = cat(real_parts, 0);
  const metrics::Gaussian real_stats = metrics::fit_gaussian(launch::classifier_features(*classifier, real));

  const launch::Settings gsettings = stored(generator_file, data_path);
  const launch::DataSplits gdata = launch::make_data(gsettings.data, seed);
  const std::int64_t latent = gsettings.gan.latent;
  const std::vector<double>& mean =
      data.test_options.augment.mean.empty() ? data.test->mean() : data.test_options.augment.mean;
  const std::vector<double>& std =
      data.test_options.augment.std.empty() ? data.test->std() : data.test_options.augment.std;
  // A conditional generator draws every class equally often: sample i is of class i mod classes.
  const std::int64_t classes = gsettings.gan.conditional ? gdata.geometry.classes : 0;
  Tensor labels;
  if (classes > 0) {
    std::vector<std::int64_t> drawn;
    for (std::int64_t i = 0; i < samples; ++i) drawn.push_back(i % classes);
    labels = from_vector(drawn, {samples});
  }
  // The generator's images as the classifier's input.
  const auto classifier_input = [&](nn::Module& generator) {
    Generator stream(seed);
    const Tensor images = launch::generate_images(generator, latent, samples, stream, labels);
    return launch::to_classifier_input(images, data.geometry.height, data.geometry.width, mean, std);
  };
  const auto distance = [&](const Tensor& input) {
    return metrics::frechet_distance(metrics::fit_gaussian(launch::classifier_features(*classifier, input)),
                                     real_stats);
  };
  manual_seed(seed);
  std::shared_ptr<nn::Module> untrained = launch::make_generator(gsettings, gdata.geometry);
  std::shared_ptr<nn::Module> trained = launch::make_generator(gsettings, gdata.geometry);
  // The moving average of the generator's weights when the run kept one (gan.ema_decay).
  const bool averaged = io::read_model_file_info(generator_file).has_group("generator_ema");
  io::load_model_group(generator_file, averaged ? "generator_ema" : "generator", *trained);
  const double d_untrained = distance(classifier_input(*untrained));
  const Tensor trained_input = classifier_input(*trained);
  const double d_trained = distance(trained_input);
  std::cout << "Frechet distance, " << samples << " generated vs " << real.size(0) << " test images in the "
            << real_stats.dim << "-d feature space of " << classifier_file << ":\n"
            << "  untrained generator " << format_fixed(d_untrained, 3) << "\n"
            << "  trained generator   " << format_fixed(d_trained, 3) << "  (" << generator_file
            << ")\n"
            << "  ratio untrained / trained " << format_fixed(d_untrained / d_trained, 1) << "\n";
  if (classes > 0) {
    // How often the classifier names the class each sample was drawn for, overall and per class.
    const std::vector<std::int64_t> drawn = labels.to_vector<std::int64_t>();
    const std::vector<std::int64_t> named = launch::predict_classes(*model, trained_input).to_vector<std::int64_t>();
    std::vector<std::int64_t> hits(static_cast<std::size_t>(classes)), counts(static_cast<std::size_t>(classes));
    for (std::size_t i = 0; i < drawn.size(); ++i) {
      counts[static_cast<std::size_t>(drawn[i])] += 1;
      hits[static_cast<std::size_t>(drawn[i])] += named[i] == drawn[i] ? 1 : 0;
    }
    std::int64_t total = 0;
    std::vector<std::string> per_class;
    for (std::size_t k = 0; k < hits.size(); ++k) {
      total += hits[k];
      per_class.push_back(
          format_fixed(static_cast<double>(hits[k]) / static_cast<double>(std::max<std::int64_t>(counts[k], 1)), 2));
    }
    std::cout << "conditional samples the classifier assigns to the class they were drawn for: " << total << " of "
              << samples << " (" << format_fixed(static_cast<double>(total) / static_cast<double>(samples), 4)
              << "); per class " << join(per_class, " ") << "\n";
  }
  return 0;
}

}  // namespace lockstep::launch
