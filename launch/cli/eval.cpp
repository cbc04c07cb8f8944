// `lockstep eval`: test accuracy of a trained classifier and, given a generator, the Fréchet distance between
// generated and test images in that classifier's feature space, for the trained and an untrained generator;
// given a CycleGAN (--translator), how its translations of test images are classified.
#include <algorithm>
#include <iostream>

#include "launch/cli/commands.h"
#include "launch/cli/common.h"
#include "io/model/model_file.h"
#include "launch/config/settings.h"
#include "launch/train/cyclegan.h"
#include "launch/train/evaluate.h"
#include "launch/train/factory.h"
#include "launch/train/progress.h"
#include "launch/train/run.h"
#include "src/core/rng.h"
#include "src/metrics/frechet.h"
#include "src/autograd/grad_mode.h"
#include "src/core/strings.h"
#include "src/ops/loss.h"
#include "src/ops/reduce.h"
#include "src/ops/shape.h"

namespace lockstep::launch {
namespace {

namespace po = boost::program_options;

// A model file's stored settings, with the data path replaced when given.
launch::Settings stored(const std::string& file, const std::string& data_path) {
  std::vector<std::string> overrides;
  if (!data_path.empty()) overrides.push_back(str_cat("data.path=\"", data_path, "\""));
  return launch::read_settings(launch::Config::parse(io::read_model_file_info(file).config, file, overrides));
}

// --- CycleGAN: the classifier judges translations ---------------------------------------------------------

// For each direction of the CycleGAN model `file`: up to `limit` test images of the source domain translated;
// the fraction of translations the classifier (`model`, of data `cdata`) assigns to the target domain's
// classes, next to that fraction for the untranslated images; and the reconstructions' mean absolute error
// (pixels in [-1, 1]). A target domain of a file of its own (cyclegan.domain_b.path) is not judged.
void eval_translator(const std::string& file, const std::string& data_path, nn::Module& model,
                     const launch::DataSplits& cdata, std::int64_t limit) {
  const io::ModelFileInfo info = io::read_model_file_info(file);
  if (info.kind != "cyclegan") {
    throw ValueError(str_cat("eval: expected a CycleGAN model file for --translator (kind \"cyclegan\"), ",
                             "but ", in_quotes(file), " holds a model of kind \"", info.kind, "\""));
  }
  const launch::Settings t = stored(file, data_path);
  const launch::CycleGanSection& cg = t.cyclegan;
  const launch::DataSplits a_data = launch::make_data(t.data, 0);
  const launch::DataSplits b_data =
      cg.path_b.empty() ? a_data : launch::make_data(stored(file, cg.path_b.string()).data, 0);
  const auto g = launch::make_cyclegan_generator(t.generator.model, a_data.geometry);
  const auto f = launch::make_cyclegan_generator(t.generator.model, a_data.geometry);
  io::load_model_group(file, "generator_a2b", *g);
  io::load_model_group(file, "generator_b2a", *f);
  const std::vector<double>& mean =
      cdata.test_options.augment.mean.empty() ? cdata.test->mean() : cdata.test_options.augment.mean;
  const std::vector<double>& std =
      cdata.test_options.augment.std.empty() ? cdata.test->std() : cdata.test_options.augment.std;
  const auto in_target = [](const Tensor& predicted, const std::vector<std::int64_t>& classes) {
    std::int64_t n = 0;
    for (const std::int64_t k : predicted.to_vector<std::int64_t>())
      n += std::find(classes.begin(), classes.end(), k) != classes.end();
    return n;
  };
  NoGradGuard no_grad;
  model.eval();
  g->eval();
  f->eval();
  std::cout << "CycleGAN " << file << ", judged by the classifier:\n";
  for (const bool a2b : {true, false}) {
    const launch::DataSplits& source = a2b ? a_data : b_data;
    if (!source.test) {
      std::cout << "  " << (a2b ? "a2b" : "b2a") << ": no test split to translate\n";
      continue;
    }
    const std::vector<std::int64_t>& from = a2b ? cg.classes_a : cg.classes_b;
    const std::vector<std::int64_t>& to = a2b ? cg.classes_b : cg.classes_a;
    const bool judged = !(a2b && !cg.path_b.empty());
    std::vector<std::int64_t> indices;
    const std::vector<std::int64_t>& labels = source.test->labels();
    for (std::size_t i = 0; i < labels.size() && static_cast<std::int64_t>(indices.size()) < limit; ++i) {
      if (from.empty() || std::find(from.begin(), from.end(), labels[i]) != from.end())
        indices.push_back(static_cast<std::int64_t>(i));
    }
    if (indices.empty()) continue;
    io::LoaderOptions options = source.test_options;
    const auto n = static_cast<std::int64_t>(indices.size());
    options.subset = std::make_shared<const std::vector<std::int64_t>>(std::move(indices));
    io::DataLoader loader(source.test, options);
    loader.start_epoch(0);
    nn::Module& there = a2b ? static_cast<nn::Module&>(*g) : *f;
    nn::Module& back = a2b ? static_cast<nn::Module&>(*f) : *g;
    std::int64_t translated_hits = 0, input_hits = 0;
    double error = 0.0, pixels = 0.0;
    while (std::optional<io::Batch> batch = loader.next()) {
      const Tensor y = there(batch->images);
      error += l1_loss(back(y), batch->images, Reduction::kSum).item();
      pixels += static_cast<double>(batch->images.numel());
      if (!judged) continue;
      const auto predict = [&](const Tensor& images) {
        return argmax(model(launch::to_classifier_input(images, cdata.geometry.height, cdata.geometry.width,
                                                        mean, std)),
                      1);
      };
      translated_hits += in_target(predict(y), to);
      input_hits += in_target(predict(batch->images), to);
    }
    std::cout << "  " << (a2b ? "a2b" : "b2a") << " on " << n << " test images: ";
    if (judged) {
      std::cout << format_fixed(static_cast<double>(translated_hits) / static_cast<double>(n), 4)
                << " of translations classified as the target domain (untranslated: "
                << format_fixed(static_cast<double>(input_hits) / static_cast<double>(n), 4) << "), ";
    }
    std::cout << "reconstruction mean absolute error " << format_fixed(error / pixels, 4) << "\n";
  }
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
  // CycleGAN models: the classifier as the judge of their translations (eval_translator).
  options.add_options()("translator", po::value<std::string>()->default_value(""),
                        "a CycleGAN's model.h5: classify its translations of the test images");
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
  if (const std::string translator = (*values)["translator"].as<std::string>(); !translator.empty())
    eval_translator(translator, data_path, *model, data, samples);
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
  const auto distance = [&](nn::Module& generator) {
    Generator stream(seed);
    const Tensor images = launch::generate_images(generator, latent, samples, stream);
    const Tensor input =
        launch::to_classifier_input(images, data.geometry.height, data.geometry.width, mean, std);
    return metrics::frechet_distance(metrics::fit_gaussian(launch::classifier_features(*classifier, input)),
                                     real_stats);
  };
  manual_seed(seed);
  std::shared_ptr<nn::Module> untrained = launch::make_generator(gsettings.generator.model, gdata.geometry, latent);
  std::shared_ptr<nn::Module> trained = launch::make_generator(gsettings.generator.model, gdata.geometry, latent);
  // The moving average of the generator's weights when the run kept one (gan.ema_decay).
  const bool averaged = io::read_model_file_info(generator_file).has_group("generator_ema");
  io::load_model_group(generator_file, averaged ? "generator_ema" : "generator", *trained);
  const double d_untrained = distance(*untrained);
  const double d_trained = distance(*trained);
  std::cout << "Frechet distance, " << samples << " generated vs " << real.size(0) << " test images in the "
            << real_stats.dim << "-d feature space of " << classifier_file << ":\n"
            << "  untrained generator " << format_fixed(d_untrained, 3) << "\n"
            << "  trained generator   " << format_fixed(d_trained, 3) << "  (" << generator_file
            << ")\n"
            << "  ratio untrained / trained " << format_fixed(d_untrained / d_trained, 1) << "\n";
  return 0;
}

}  // namespace lockstep::launch
