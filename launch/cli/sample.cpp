// `lockstep sample PATH`: a PNG grid of images drawn from a trained GAN's generator or a PixelCNN (or, for a
// CycleGAN, given images translated and translated back), read from a model file, a checkpoint directory
// (verified against its manifest first) or the newest valid checkpoint of a directory of checkpoints.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "io/checkpoint/checkpoint_store.h"
#include "io/checkpoint/manifest.h"
#include "io/h5/h5.h"
#include "io/image/grid.h"
#include "io/image/png.h"
#include "launch/cli/commands.h"
#include "launch/cli/common.h"
#include "launch/config/config.h"
#include "launch/train/charlm.h"
#include "launch/train/cyclegan.h"
#include "launch/train/factory.h"
#include "launch/train/run.h"
#include "launch/config/settings.h"
#include "io/model/model_file.h"
#include "src/autograd/grad_mode.h"
#include "src/core/rng.h"
#include "src/core/strings.h"
#include "src/models/conditional.h"
#include "src/models/pixelcnn.h"
#include "src/ops/shape.h"
#include "src/tensor/factories.h"

namespace lockstep::launch {
namespace {

namespace fs = std::filesystem;
namespace po = boost::program_options;

constexpr const char* kModelName = io::kCheckpointModelFile;
constexpr std::int64_t kMaxCount = 4096;
constexpr std::int64_t kBatch = 256;  // images per generator call: bounds the activations' memory

// The model file to load and how to name where it came from.
struct Source {
  fs::path model;
  std::string description;  // "model file runs/gan/model.h5", "checkpoint ckpt/step_000001200 (step 1200)"
};

// The model file of a committed checkpoint that verifies; IoError with the reason otherwise.
Source checkpoint_source(const fs::path& dir, const std::string& note = "") {
  std::string why;
  if (!io::CheckpointStore::verify(dir, &why)) {
    throw IoError(
        str_cat("sample: checkpoint ", in_quotes(dir.string()), " fails verification against its manifest: ", why),
        dir.string());
  }
  const std::int64_t step = io::read_manifest(dir / io::kManifestName).step;
  if (!fs::is_regular_file(dir / kModelName)) {
    throw IoError(str_cat("sample: expected the GAN's ", kModelName, " in checkpoint ", in_quotes(dir.string()),
                          ", but it holds none"),
                  dir.string());
  }
  return {dir / kModelName, str_cat("checkpoint ", dir.string(), " (step ", step, note, ")")};
}

// PATH as a model file, a checkpoint (it holds a manifest or is named step_*) or a directory of
// checkpoints (the newest that verifies; a warning on stderr for each newer one that does not).
Source resolve(const fs::path& path) {
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  if (ec || !fs::exists(status)) {
    throw IoError(str_cat("sample: expected a GAN model file, a checkpoint directory or a directory of "
                          "checkpoints, but ",
                          in_quotes(path.string()), " does not exist"),
                  path.string());
  }
  if (fs::is_regular_file(status)) return {path, str_cat("model file ", path.string())};
  const fs::path dir = path.has_filename() ? path : path.parent_path();  // "ckpt/" is "ckpt"
  if (fs::exists(dir / io::kManifestName) || dir.filename().string().rfind("step_", 0) == 0)
    return checkpoint_source(dir);
  const io::CheckpointStore store(dir);
  const std::size_t count = store.list().size();
  if (count == 0) {
    throw IoError(
        str_cat("sample: expected a checkpoint directory (with a ", io::kManifestName,
                ") or a directory of step_NNNNNNNNN checkpoints, but ", in_quotes(dir.string()), " holds neither"),
        dir.string());
  }
  std::vector<std::string> warnings;
  const std::optional<io::CheckpointInfo> latest = store.latest_valid(&warnings);
  for (const std::string& warning : warnings) std::cerr << "warning: " << warning << '\n';
  if (!latest) {
    throw IoError(str_cat("sample: none of the ", count, " checkpoints in ", in_quotes(dir.string()),
                          " passes verification (see the warnings above)"),
                  dir.string());
  }
  return checkpoint_source(latest->path, str_cat(", the newest valid one in ", dir.string()));
}

// The kind of model `file` holds ("gan", "pixelcnn" or "cyclegan"); ValueError for any other model file,
// IoError when it is not HDF5.
std::string generative_kind(const fs::path& file) {
  std::optional<io::h5::File> h5file;
  try {
    h5file.emplace(file, io::h5::Access::kRead);
  } catch (const IoError& e) {
    throw IoError(str_cat("sample: expected a GAN model file (HDF5), but ", in_quotes(file.string()),
                          " cannot be read as one: ", e.what()),
                  file.string());
  }
  const io::h5::Group root = h5file->root();
  if (!root.has_attribute("kind") || !root.has_attribute("config")) {
    throw ValueError(
        str_cat("sample: expected a model file written by `lockstep train` (attributes kind and "
                "config at its root), but ",
                in_quotes(file.string()), " has none"));
  }
  const std::string kind = root.attribute_string("kind");
  if (kind != "gan" && kind != "pixelcnn" && kind != "cyclegan" && kind != "charlm") {
    throw ValueError(
        str_cat("sample: expected a GAN, PixelCNN, character or CycleGAN model file (kind \"gan\", "
                "\"pixelcnn\", \"charlm\" or \"cyclegan\"), but ",
                in_quotes(file.string()), " holds a model of kind \"", kind, "\""));
  }
  return kind;
}

// --- Character models: text ------------------------------------------------------------------------------

// `lockstep sample CHARLM --prompt P --length N --temperature T --seed S`: prints the prompt and the
// characters drawn after it.
int sample_charlm(const Source& source, const po::variables_map& values) {
  for (const char* option : {"input", "class", "columns"}) {
    if (values.count(option) != 0)
      throw UsageError(str_cat("--", option, ": expected an image model, but ", source.description,
                               " holds a character model"));
  }
  const std::string prompt = values["prompt"].as<std::string>();
  const auto length = values["length"].as<std::int64_t>();
  const double temperature = values["temperature"].as<double>();
  const auto seed = values["seed"].as<std::int64_t>();
  if (length < 0 || length > 1000000)
    throw UsageError(str_cat("--length: expected 0 to 1000000 characters, but got ", length));
  if (!(temperature > 0.0) || !std::isfinite(temperature))
    throw UsageError(str_cat("--temperature: expected a positive number, but got ", temperature));
  const launch::LoadedCharLm loaded = launch::load_char_lm(source.model);
  std::string text;
  try {
    text = launch::sample_text(*loaded.model, prompt, length, temperature, static_cast<std::uint64_t>(seed),
                               "--prompt");
  } catch (const ValueError& e) {
    throw UsageError(e.what());
  }
  std::cout << prompt << text << '\n';
  return 0;
}

// --- CycleGAN: translations of given images ---------------------------------------------------------------

// `lockstep sample CYCLEGAN --input FILE.h5 --split S --direction a2b|b2a`: the first --count images of the
// source domain's classes in split S of FILE.h5 (default: the source domain's file trained on), each as
// input | translation | reconstruction, --columns triples per row (default min(4, count)); prints the
// reconstructions' mean absolute error (pixels in [-1, 1]).
int sample_translations(const Source& source, const po::variables_map& values) {
  const auto count = values["count"].as<std::int64_t>();
  const fs::path output = values["output"].as<std::string>();
  const std::string direction = values["direction"].as<std::string>();
  const std::string split = values["split"].as<std::string>();
  if (direction != "a2b" && direction != "b2a")
    throw UsageError(str_cat("--direction: expected a2b or b2a, but got ", in_quotes(direction)));
  if (split.empty()) throw UsageError("--split: expected a split name, e.g. test, but got an empty one");
  std::int64_t columns = std::min<std::int64_t>(4, count);
  if (values.count("columns") != 0) columns = values["columns"].as<std::int64_t>();
  const io::ModelFileInfo info = io::read_model_file_info(source.model);
  // The stored config on the input's split alone (only its metadata is read: no image cache).
  std::vector<std::string> overrides = {"data.cache=\"none\"", str_cat("data.train_split=\"", split, "\""),
                                        "data.test_split=\"\"", "data.validation_fraction=0"};
  const bool a2b = direction == "a2b";
  std::string input = values["data"].as<std::string>();
  if (values.count("input") != 0) {
    input = values["input"].as<std::string>();
  } else if (!a2b) {  // domain B's own file, when it had one
    const launch::Settings stored = launch::read_settings(
        launch::Config::parse(info.config, source.model.string(), {"data.cache=\"none\""}));
    if (!stored.cyclegan.path_b.empty()) input = stored.cyclegan.path_b.string();
  }
  if (!input.empty()) overrides.push_back(str_cat("data.path=\"", input, "\""));
  const launch::Settings settings =
      launch::read_settings(launch::Config::parse(info.config, source.model.string(), overrides));
  const launch::DataSplits data = launch::make_data(settings.data, 0);
  const std::vector<std::int64_t>& classes = a2b ? settings.cyclegan.classes_a : settings.cyclegan.classes_b;
  std::vector<std::int64_t> indices;
  for (std::int64_t i = 0; i < data.train->size() && static_cast<std::int64_t>(indices.size()) < count; ++i) {
    const std::int64_t label = data.train->labels()[static_cast<std::size_t>(i)];
    if (classes.empty() || std::find(classes.begin(), classes.end(), label) != classes.end())
      indices.push_back(i);
  }
  if (indices.empty()) {
    throw ValueError(str_cat("sample: expected images of domain ", a2b ? "A" : "B", "'s classes in split ",
                             in_quotes(split), " of ", in_quotes(settings.data.path.string()),
                             ", but it has none"));
  }
  const auto g = launch::make_cyclegan_generator(settings.generator.model, data.geometry);
  const auto f = launch::make_cyclegan_generator(settings.generator.model, data.geometry);
  io::load_model_group(source.model, "generator_a2b", *g);
  io::load_model_group(source.model, "generator_b2a", *f);
  io::LoaderOptions options = data.test_options;  // no shuffling, no augmentation
  options.batch_size = kBatch;
  options.prefetch = 0;
  const std::int64_t n = static_cast<std::int64_t>(indices.size());
  options.subset = std::make_shared<const std::vector<std::int64_t>>(std::move(indices));
  io::DataLoader loader(data.train, options);
  loader.start_epoch(0);
  std::vector<Tensor> rows;
  double error = 0.0, values_seen = 0.0;
  while (std::optional<io::Batch> batch = loader.next()) {
    const Tensor triples = a2b ? launch::translation_rows(*g, *f, batch->images)
                               : launch::translation_rows(*f, *g, batch->images);
    const std::vector<float> x = batch->images.to_vector<float>();
    const std::vector<float> back = triples.slice(0, 2, triples.size(0), 3).contiguous().to_vector<float>();
    for (std::size_t i = 0; i < x.size(); ++i) error += std::fabs(static_cast<double>(back[i]) - x[i]);
    values_seen += static_cast<double>(x.size());
    rows.push_back(triples);
  }
  io::write_png(output, io::image_grid(cat(rows, 0), 3 * columns));
  std::cout << "wrote " << n << (n == 1 ? " translation" : " translations") << " (" << direction << ") of "
            << settings.data.path.string() << " [" << split << "] from " << source.description << " to "
            << output.string() << "; reconstruction mean absolute error "
            << format_fixed(error / values_seen, 4) << '\n';
  return 0;
}

// " (Sneaker)" for class 7 of Fashion-MNIST; "" when the file names fewer classes.
std::string class_label(const std::vector<std::string>& names, std::int64_t k) {
  return k < static_cast<std::int64_t>(names.size()) ? str_cat(" (", names[static_cast<std::size_t>(k)], ")") : "";
}

}  // namespace

int run_sample(const std::vector<std::string>& args) {
  po::options_description options("Options");
  options.add_options()("path", po::value<std::string>()->required(),
                        "a GAN's model.h5, a checkpoint directory or a directory of checkpoints")(
      "count", po::value<std::int64_t>()->default_value(64), "images to draw (1 to 4096)")(
      "seed", po::value<std::int64_t>()->default_value(0), "seed of the noise")(
      "output", po::value<std::string>()->default_value("samples.png"), "the PNG file to write")(
      "columns", po::value<std::int64_t>(), "columns of the grid (default: ceil(sqrt(count)))")(
      "data", po::value<std::string>()->default_value(""), "the data set file (default: the one trained on)")(
      "class", po::value<std::int64_t>(),
      "a conditional GAN's class to draw (default: one row of the grid per class)")(
      "input", po::value<std::string>(),
      "CycleGAN: the data set file whose images to translate (default: --data)")(
      "split", po::value<std::string>()->default_value("test"), "CycleGAN: the split of --input")(
      "direction", po::value<std::string>()->default_value("a2b"),
      "CycleGAN: a2b (domain A's images through G: A -> B, then back) or b2a")(
      "prompt", po::value<std::string>()->default_value("The "), "character model: the text to continue")(
      "length", po::value<std::int64_t>()->default_value(400), "character model: characters to draw")(
      "temperature", po::value<double>()->default_value(0.8),
      "character model: divides the logits (below 1: safer text, above 1: wilder)");
  po::positional_options_description positional;
  positional.add("path", 1);
  const auto values = parse_options(
      args, options, positional,
      "sample PATH [--count N] [--seed S] [--output FILE.png] [--columns C] [--data FILE] [--class K]",
      "Draws --count images from a trained GAN's generator for noise z ~ N(0, 1) from --seed (or from a "
      "PixelCNN, pixel by pixel) and writes them as a PNG grid. PATH is a model file, a checkpoint directory (verified first) or a directory of "
      "checkpoints (the newest one that verifies). A conditional GAN draws --class K, or each class in turn, "
      "one row of the grid per class.");
  if (!values) return 0;
  const auto count = (*values)["count"].as<std::int64_t>();
  const auto seed = (*values)["seed"].as<std::int64_t>();
  const fs::path output = (*values)["output"].as<std::string>();
  const std::string data_path = (*values)["data"].as<std::string>();
  if (count < 1 || count > kMaxCount)
    throw UsageError(str_cat("--count: expected 1 to ", kMaxCount, ", but got ", count));
  if (seed < 0) throw UsageError(str_cat("--seed: expected an integer >= 0, but got ", seed));
  std::optional<std::int64_t> columns;
  if (values->count("columns") != 0) {
    columns = (*values)["columns"].as<std::int64_t>();
    if (*columns < 1) throw UsageError(str_cat("--columns: expected at least 1, but got ", *columns));
  }
  std::optional<std::int64_t> drawn_class;
  if (values->count("class") != 0) drawn_class = (*values)["class"].as<std::int64_t>();

  const Source source = resolve((*values)["path"].as<std::string>());
  const std::string kind = generative_kind(source.model);
  if (kind == "cyclegan") return sample_translations(source, *values);
  if (kind == "charlm") return sample_charlm(source, *values);
  if (values->count("input") != 0)
    throw UsageError("--input: expected a CycleGAN model, whose generators translate images; this model draws "
                     "from noise");
  // As `lockstep eval --generator`: the stored config and the data geometry the generator was built for
  // (only the file's metadata is read: no image cache).
  std::vector<std::string> overrides = {"data.cache=\"none\""};
  if (!data_path.empty()) overrides.push_back(str_cat("data.path=\"", data_path, "\""));
  const io::ModelFileInfo info = io::read_model_file_info(source.model);
  const launch::Settings settings =
      launch::read_settings(launch::Config::parse(info.config, source.model.string(), overrides));
  const launch::DataSplits data = launch::make_data(settings.data, 0);
  if (kind == "pixelcnn") {
    if (drawn_class) throw UsageError("--class: expected a conditional GAN, but the model is a PixelCNN");
    std::shared_ptr<models::PixelCNN> model = launch::make_pixelcnn(settings.pixelcnn, data.geometry);
    io::load_model_group(source.model, "model", *model);
    Generator stream(static_cast<std::uint64_t>(seed));
    const auto start = std::chrono::steady_clock::now();
    const Tensor images = models::sample_pixelcnn(*model, count, data.geometry.height, data.geometry.width, &stream);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (!columns) columns = static_cast<std::int64_t>(std::ceil(std::sqrt(static_cast<double>(count))));
    io::write_png(output, io::image_grid(images, *columns, 0.0, 1.0));
    std::cout << "drew " << count << (count == 1 ? " image" : " images") << " pixel by pixel ("
              << data.geometry.height * data.geometry.width << " passes) in " << format_fixed(seconds, 1) << " s from "
              << source.description << " to " << output.string() << '\n';
    return 0;
  }
  const std::int64_t latent = settings.gan.latent;
  std::shared_ptr<nn::Module> generator = launch::make_generator(settings, data.geometry);
  // The moving average of the generator's weights when the run kept one (gan.ema_decay).
  io::load_model_group(source.model, info.has_group("generator_ema") ? "generator_ema" : "generator", *generator);

  // A conditional generator's labels: --class, or one row per class (class r on row r, cycling).
  const std::int64_t classes = settings.gan.conditional ? data.geometry.classes : 0;
  if (drawn_class && classes == 0) {
    throw UsageError(str_cat("--class: expected a conditional GAN (gan.conditional = true), but ",
                             source.description, " holds an unconditional one"));
  }
  if (drawn_class && (*drawn_class < 0 || *drawn_class >= classes)) {
    throw UsageError(str_cat("--class: expected a class in [0, ", classes, ") of ",
                             join(data.train->class_names(), ", "), ", but got ", *drawn_class));
  }
  if (!columns) {
    columns = classes > 0 && !drawn_class
                  ? (count + classes - 1) / classes
                  : static_cast<std::int64_t>(std::ceil(std::sqrt(static_cast<double>(count))));
  }
  Tensor labels;
  if (classes > 0) {
    std::vector<std::int64_t> drawn;
    for (std::int64_t i = 0; i < count; ++i) drawn.push_back(drawn_class ? *drawn_class : i / *columns % classes);
    labels = from_vector(drawn, {count});
  }

  Generator stream(static_cast<std::uint64_t>(seed));
  const Tensor z = randn({count, latent}, 0.0, 1.0, DType::f32, kCPU, &stream);
  std::vector<Tensor> parts;
  {
    NoGradGuard no_grad;
    generator->eval();
    for (std::int64_t start = 0; start < count; start += kBatch) {
      const std::int64_t end = std::min(count, start + kBatch);
      parts.push_back(models::generate(*generator, z.slice(0, start, end),
                                       labels.defined() ? labels.slice(0, start, end) : labels));
    }
  }
  io::write_png(output, io::image_grid(cat(parts, 0), *columns));
  std::cout << "wrote " << count << (count == 1 ? " sample" : " samples")
            << (drawn_class ? str_cat(" of class ", *drawn_class, class_label(data.train->class_names(), *drawn_class))
                            : "")
            << " from " << source.description << " to " << output.string() << '\n';
  return 0;
}

}  // namespace lockstep::launch
