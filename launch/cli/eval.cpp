// `lockstep eval`: test accuracy of a trained classifier and, given a generator, the Fréchet distance between
// generated and test images in that classifier's feature space, for the trained and an untrained generator;
// given a CycleGAN (--translator), how its translations of test images are classified; given an
// autoencoder or a PixelCNN, their figures on the test split.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <functional>
#include <iostream>
#include <optional>
#include <utility>

#include "io/data/text.h"
#include "io/model/model_file.h"
#include "launch/cli/commands.h"
#include "launch/cli/common.h"
#include "launch/cli/eval_classifier.h"
#include "launch/config/settings.h"
#include "launch/train/charlm.h"
#include "launch/train/cyclegan.h"
#include "launch/train/evaluate.h"
#include "launch/train/factory.h"
#include "launch/train/progress.h"
#include "launch/train/run.h"
#include "src/autograd/grad_mode.h"
#include "src/core/rng.h"
#include "src/core/strings.h"
#include "src/metrics/frechet.h"
#include "src/metrics/linear_probe.h"
#include "src/models/autoencoder.h"
#include "src/models/pixelcnn.h"
#include "src/ops/activation.h"
#include "src/ops/elementwise.h"
#include "src/ops/loss.h"
#include "src/ops/reduce.h"
#include "src/ops/shape.h"
#include "src/tensor/factories.h"

namespace lockstep::launch {
namespace {

namespace po = boost::program_options;

// A model file's stored settings, with the data path replaced when given.
launch::Settings stored(const std::string& file, const std::string& data_path) {
  return stored_settings(file, data_path);
}

// Every image of a split through `loader` (its batches, in order): images and labels.
std::pair<Tensor, Tensor> whole_split(io::DataLoader& loader) {
  std::vector<Tensor> images, labels;
  loader.start_epoch(0);
  while (std::optional<io::Batch> batch = loader.next()) {
    images.push_back(batch->images);
    labels.push_back(batch->labels);
  }
  return {cat(images, 0), cat(labels, 0)};
}

// `f` over `images` in batches of 500 without gradients, joined along dimension 0.
Tensor batched(const Tensor& images, const std::function<Tensor(const Tensor&)>& f) {
  NoGradGuard no_grad;
  std::vector<Tensor> parts;
  for (std::int64_t start = 0; start < images.size(0); start += 500)
    parts.push_back(f(images.slice(0, start, std::min(images.size(0), start + 500))));
  return cat(parts, 0);
}

double mean_squared_error(const Tensor& a, const Tensor& b) { return mean(square(a - b)).item(); }

// `lockstep eval --autoencoder`: reconstruction, denoising gain, the encoder's Jacobian, a linear probe on
// the codes; a VAE's negative ELBO and importance-weighted likelihood; with a classifier, how it labels the
// reconstructions and, for a VAE, the Fréchet distance of samples.
int eval_autoencoder(const std::string& file, const std::string& classifier_file, const std::string& data_path,
                     std::int64_t samples, std::uint64_t seed, std::int64_t iwae_k) {
  const launch::Settings settings = stored(file, data_path);
  if (settings.task != "autoencoder") {
    throw ValueError(str_cat("eval: expected an autoencoder's model file for --autoencoder, but ", in_quotes(file),
                             " holds a model of task \"", settings.task, "\""));
  }
  const launch::AutoencoderSection& a = settings.autoencoder;
  launch::DataSplits data = launch::make_data(settings.data, seed);
  if (!data.test) throw ValueError("eval: the data set has no test split (data.test_split is empty)");
  std::shared_ptr<models::Autoencoder> model = launch::make_autoencoder(a, data.geometry);
  io::load_model_group(file, "model", *model);
  model->eval();
  io::DataLoader test_loader(data.test, data.test_options);
  io::DataLoader train_loader(data.train, data.test_options);  // in order, unaugmented
  const auto [test, test_labels] = whole_split(test_loader);
  const models::ReconstructionLoss loss =
      a.loss == "mse" ? models::ReconstructionLoss::kMse : models::ReconstructionLoss::kBce;
  Generator stream(seed);

  const Tensor codes = batched(test, [&](const Tensor& x) { return model->encode(x); });
  const Tensor reconstructions = batched(codes, [&](const Tensor& z) { return sigmoid(model->decode(z)); });
  std::cout << "autoencoder " << file << " (" << model->num_parameters() << " parameters, code " << a.code
            << ") on " << test.size(0) << " test images:\n"
            << "  reconstruction of clean images: mean squared error " << format_fixed(mean_squared_error(reconstructions, test), 5)
            << " per pixel\n";
  // Gaussian noise of sigma 0.3 on the input, the clean image as the reference.
  const Tensor noisy = models::gaussian_noise(test, 0.3, &stream);
  const Tensor denoised = batched(noisy, [&](const Tensor& x) { return sigmoid(model->decode(model->encode(x))); });
  const double noisy_error = mean_squared_error(noisy, test), denoised_error = mean_squared_error(denoised, test);
  std::cout << "  denoising (Gaussian sigma 0.3): noisy input " << format_fixed(noisy_error, 5)
            << ", reconstruction " << format_fixed(denoised_error, 5) << " per pixel ("
            << format_fixed(100.0 * (1.0 - denoised_error / noisy_error), 1) << "% lower)\n";
  // The exact Jacobian norm on the first 500 test images (one backward per code unit).
  const Tensor first = test.slice(0, 0, std::min<std::int64_t>(500, test.size(0)));
  const double jacobian =
      models::jacobian_frobenius([&](const Tensor& x) { return model->encode(x); }, first).item();
  std::cout << "  encoder Jacobian: mean ||d code / d x||_F^2 " << format_fixed(jacobian, 3) << " over " << first.size(0)
            << " test images\n";
  const auto [train, train_labels] = whole_split(train_loader);
  const Tensor train_codes = batched(train, [&](const Tensor& x) { return model->encode(x); });
  const metrics::LinearProbe probe =
      metrics::linear_probe(train_codes, train_labels, codes, test_labels, data.geometry.classes, 20, seed);
  std::cout << "  linear probe on the " << a.code << "-d code: test accuracy " << format_fixed(probe.test_accuracy, 4)
            << " (train " << format_fixed(probe.train_accuracy, 4) << ")\n";
  if (a.variational) {
    const double pixels = static_cast<double>(test.numel() / test.size(0));
    const auto nats = [&](std::int64_t k) {
      return -mean(batched(test, [&](const Tensor& x) {
                 return models::importance_weighted_log_likelihood(*model, loss, x, k, &stream);
               })).item();
    };
    const double elbo = nats(1);
    std::cout << "  negative ELBO " << format_fixed(elbo, 2) << " nats per image ("
              << format_fixed(elbo / pixels / std::log(2.0), 4) << " bits per dimension)\n";
    if (iwae_k > 0) {
      const double iwae = nats(iwae_k);
      std::cout << "  -log p(x) by importance weighting with k = " << iwae_k << ": " << format_fixed(iwae, 2)
                << " nats per image (" << format_fixed(iwae / pixels / std::log(2.0), 4) << " bits per dimension)\n";
    }
  }
  if (classifier_file.empty()) return 0;

  const launch::Settings csettings = stored(classifier_file, data_path);
  const launch::DataSplits cdata = launch::make_data(csettings.data, seed);
  std::shared_ptr<nn::Module> classifier = launch::make_classifier(csettings.model.model, cdata.geometry);
  io::load_model_group(classifier_file, "model", *classifier);
  const std::vector<double>& cmean =
      cdata.test_options.augment.mean.empty() ? cdata.test->mean() : cdata.test_options.augment.mean;
  const std::vector<double>& cstd = cdata.test_options.augment.std.empty() ? cdata.test->std() : cdata.test_options.augment.std;
  // Images in [0, 1] -> the classifier's input (to_classifier_input takes generator output in [-1, 1]).
  const auto as_input = [&](const Tensor& images) {
    return launch::to_classifier_input(images * 2.0 - 1.0, cdata.geometry.height, cdata.geometry.width, cmean, cstd);
  };
  const std::vector<std::int64_t> named = launch::predict_classes(*classifier, as_input(reconstructions)).to_vector<std::int64_t>();
  const std::vector<std::int64_t> truth = test_labels.to_vector<std::int64_t>();
  std::int64_t correct = 0;
  for (std::size_t i = 0; i < truth.size(); ++i) correct += named[i] == truth[i];
  std::cout << "  classifier " << classifier_file << " labels " << correct << " of " << truth.size()
            << " test reconstructions correctly ("
            << format_fixed(static_cast<double>(correct) / static_cast<double>(truth.size()), 4) << ")\n";
  if (!a.variational) return 0;
  auto* features = dynamic_cast<models::Classifier*>(classifier.get());
  if (features == nullptr) throw ValueError("eval: the classifier model has no feature layer");
  const metrics::Gaussian real = metrics::fit_gaussian(launch::classifier_features(*features, as_input(test)));
  const auto distance = [&](models::Autoencoder& vae) {
    Generator z_stream(seed);
    const Tensor z = randn({samples, a.code}, 0.0, 1.0, DType::f32, kCPU, &z_stream);
    const Tensor images = batched(z, [&](const Tensor& c) { return sigmoid(vae.decode(c)); });
    return metrics::frechet_distance(metrics::fit_gaussian(launch::classifier_features(*features, as_input(images))), real);
  };
  manual_seed(seed);
  std::shared_ptr<models::Autoencoder> untrained = launch::make_autoencoder(a, data.geometry);
  untrained->eval();
  const double d_untrained = distance(*untrained), d_trained = distance(*model);
  std::cout << "Frechet distance, " << samples << " samples of the prior vs " << test.size(0)
            << " test images in the feature space of " << classifier_file << ":\n"
            << "  untrained decoder " << format_fixed(d_untrained, 3) << "\n"
            << "  trained decoder   " << format_fixed(d_trained, 3) << "\n"
            << "  ratio untrained / trained " << format_fixed(d_untrained / d_trained, 1) << "\n";
  return 0;
}

// `lockstep eval --pixelcnn`: the test split's bits per dimension next to the independent-pixels baseline
// fitted on the training split.
int eval_pixelcnn(const std::string& file, const std::string& data_path, std::uint64_t seed) {
  const launch::Settings settings = stored(file, data_path);
  if (settings.task != "pixelcnn") {
    throw ValueError(str_cat("eval: expected a PixelCNN's model file for --pixelcnn, but ", in_quotes(file),
                             " holds a model of task \"", settings.task, "\""));
  }
  launch::DataSplits data = launch::make_data(settings.data, seed);
  if (!data.test) throw ValueError("eval: the data set has no test split (data.test_split is empty)");
  std::shared_ptr<models::PixelCNN> model = launch::make_pixelcnn(settings.pixelcnn, data.geometry);
  io::load_model_group(file, "model", *model);
  model->eval();
  io::DataLoader test_loader(data.test, data.test_options);
  io::DataLoader train_loader(data.train, data.test_options);
  const Tensor test = whole_split(test_loader).first;
  double nats = 0.0;
  {
    NoGradGuard no_grad;
    for (std::int64_t start = 0; start < test.size(0); start += 500) {
      const Tensor x = test.slice(0, start, std::min(test.size(0), start + 500));
      nats += models::pixel_nll(model->forward(x), x).item() * static_cast<double>(x.size(0));
    }
  }
  const double model_bits = nats / static_cast<double>(test.size(0)) / std::log(2.0);
  const double baseline = models::independent_pixels_bits_per_dim(whole_split(train_loader).first, test);
  std::cout << "PixelCNN " << file << " (" << model->num_parameters() << " parameters) on " << test.size(0)
            << " test images: " << format_fixed(model_bits, 4) << " bits per dimension\n"
            << "  independent per-pixel categorical fitted on the " << data.train->size()
            << " training images: " << format_fixed(baseline, 4) << " bits per dimension\n"
            << "  PixelCNN is " << format_fixed(100.0 * (1.0 - model_bits / baseline), 1) << "% lower\n";
  return 0;
}

// `lockstep eval --charlm`: the test split's bits per character next to an add-one-smoothed bigram model of
// the training split, over the same predictions.
int eval_charlm(std::string file, const std::string& data_path) {
  // A checkpoint directory stands for its model file.
  if (std::filesystem::is_directory(file))
    file = (std::filesystem::path(file) / io::kCheckpointModelFile).string();
  std::vector<std::string> overrides;
  if (!data_path.empty()) overrides.push_back(str_cat("data.path=\"", data_path, "\""));
  const launch::LoadedCharLm loaded = launch::load_char_lm(file, overrides);
  const launch::Settings& settings = loaded.settings;
  const launch::DataSplits data = launch::make_data(settings.data, 0, 0, 1, launch::DataKind::kText);
  if (!data.test_text) throw ValueError("eval: the data set has no test split (data.test_split is empty)");
  if (data.train_text->vocabulary() != loaded.model->vocabulary()) {
    throw ValueError(str_cat("eval: expected the data set the model was trained on, but the vocabulary of ",
                             in_quotes(settings.data.path), " differs from the model's (",
                             data.train_text->vocabulary().size(), " vs ", loaded.model->vocabulary_size(),
                             " characters). Pass --data with the model's data set."));
  }
  const auto start = std::chrono::steady_clock::now();
  const launch::TextLoss loss = launch::text_loss(*loaded.model, data.test_text->tokens(),
                                                  settings.data.eval_batch_size, settings.charlm.bptt_steps);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double model_bits = loss.nats / loss.tokens / std::log(2.0);
  const double bigram = io::bigram_bits_per_char(data.train_text->tokens(), data.test_text->tokens(),
                                                 loaded.model->vocabulary_size());
  std::cout << "character LSTM " << file << " (" << loaded.model->num_parameters() << " parameters) on "
            << static_cast<std::int64_t>(loss.tokens) << " test characters ("
            << join(data.test_text->files(), ", ") << "): " << format_fixed(model_bits, 4)
            << " bits per character (" << format_fixed(seconds, 1) << " s)\n"
            << "  add-one-smoothed bigram of the " << data.train_text->size()
            << " training characters: " << format_fixed(bigram, 4) << " bits per character\n"
            << "  ratio model / bigram " << format_fixed(model_bits / bigram, 4) << ": the model is "
            << format_fixed(100.0 * std::abs(1.0 - model_bits / bigram), 1)
            << (model_bits <= bigram ? "% lower\n" : "% higher\n");
  return 0;
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
  options.add_options()("classifier",
                        po::value<std::vector<std::string>>()->multitoken()->default_value({}, ""),
                        "a classifier's model.h5; several: an ensemble (their mean probability)")(
      "attack", po::value<std::string>()->default_value(""),
      "fgsm: the classifier's accuracy on FGSM examples of the test images, and a PNG of some")(
      "epsilon", po::value<double>()->default_value(0.1), "the attack's step in pixel units (pixels in [0, 1])")(
      "attack-png", po::value<std::string>()->default_value("fgsm.png"),
      "where the attack's examples go (rows of clean | perturbation | adversarial)")(
      "generator", po::value<std::string>()->default_value(""), "a GAN's model.h5: measure its samples")(
      "autoencoder", po::value<std::string>()->default_value(""),
      "an autoencoder's or VAE's model.h5: reconstruction, denoising, Jacobian, linear probe, likelihood")(
      "pixelcnn", po::value<std::string>()->default_value(""),
      "a PixelCNN's model.h5: test bits per dimension against an independent-pixels baseline")(
      "charlm", po::value<std::string>()->default_value(""),
      "a character model's model.h5 (or checkpoint directory): test bits per character against an add-one "
      "bigram baseline")(
      "iwae-k", po::value<std::int64_t>()->default_value(0),
      "a VAE's importance-weighted -log p(x) with this many samples per image (0: not computed)")(
      "data", po::value<std::string>()->default_value(""), "the data set file (default: the one trained on)")(
      "samples", po::value<std::int64_t>()->default_value(10000), "images to generate")(
      "seed", po::value<std::int64_t>()->default_value(0),
      "seed of the noise and of the untrained generator")(
      "translator", po::value<std::string>()->default_value(""),
      "a CycleGAN's model.h5: classify its translations of the test images");
  const auto values =
      parse_options(args, options,
                    "eval --classifier MODEL.h5 [MODEL.h5 ...] [--attack fgsm [--epsilon E]] [--generator MODEL.h5] [--translator MODEL.h5] | eval --autoencoder "
                    "MODEL.h5 [--classifier MODEL.h5] [--iwae-k K] | eval --pixelcnn MODEL.h5",
                    "Test accuracy of a classifier; with --generator, the Fréchet distance between "
                    "generated and test images in the classifier's feature space, for the trained "
                    "generator and for an untrained one; with --translator, how a CycleGAN's translations of test "
                    "images are classified. With --autoencoder: the autoencoder's figures on the test "
                    "split, and with --classifier how it labels the reconstructions (and a VAE's Fréchet distance).");
  if (!values) return 0;
  const std::vector<std::string> classifier_files = (*values)["classifier"].as<std::vector<std::string>>();
  const std::string classifier_file = classifier_files.empty() ? "" : classifier_files[0];
  const std::string generator_file = (*values)["generator"].as<std::string>();
  const std::string data_path = (*values)["data"].as<std::string>();
  const auto samples = (*values)["samples"].as<std::int64_t>();
  const auto seed = static_cast<std::uint64_t>((*values)["seed"].as<std::int64_t>());
  if (samples < 2) throw UsageError(str_cat("--samples: expected at least 2, but got ", samples));
  const auto iwae_k = (*values)["iwae-k"].as<std::int64_t>();
  if (iwae_k < 0) throw UsageError(str_cat("--iwae-k: expected an integer >= 0, but got ", iwae_k));
  const std::string autoencoder_file = (*values)["autoencoder"].as<std::string>();
  if (!autoencoder_file.empty())
    return eval_autoencoder(autoencoder_file, classifier_file, data_path, samples, seed, iwae_k);
  const std::string pixelcnn_file = (*values)["pixelcnn"].as<std::string>();
  if (!pixelcnn_file.empty()) return eval_pixelcnn(pixelcnn_file, data_path, seed);
  const std::string charlm_file = (*values)["charlm"].as<std::string>();
  if (!charlm_file.empty()) return eval_charlm(charlm_file, data_path);
  if (classifier_file.empty())
    throw UsageError("expected --classifier MODEL.h5 (or --autoencoder MODEL.h5, or --pixelcnn MODEL.h5)");

  const launch::Settings csettings = stored(classifier_file, data_path);
  launch::DataSplits data = launch::make_data(csettings.data, seed);
  if (!data.test)
    throw ValueError(str_cat("eval: the data set has no test split (data.test_split is empty)"));
  std::shared_ptr<nn::Module> model = launch::make_classifier(csettings.model.model, data.geometry);
  io::load_model_group(classifier_file, "model", *model);
  io::DataLoader test_loader(data.test, data.test_options);
  eval_classifiers(classifier_files, {.data_path = data_path,
                                      .attack = (*values)["attack"].as<std::string>(),
                                      .epsilon = (*values)["epsilon"].as<double>(),
                                      .png = (*values)["attack-png"].as<std::string>(),
                                      .seed = seed});
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
