// `lockstep convert`: turns a data set in its original format (IDX, CIFAR-10 binary, NumPy, PNG folders) into
// the HDF5 layout the loader reads, then prints one summary line per split written.
#include "io/data/convert.h"

#include <chrono>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <utility>

#include "io/data/dataset.h"
#include "io/data/text.h"
#include "launch/cli/commands.h"
#include "launch/cli/common.h"
#include "src/core/strings.h"

namespace lockstep::launch {
namespace {

namespace po = boost::program_options;

constexpr std::pair<std::string_view, io::SourceFormat> kFormats[] = {
    {"fashion-mnist", io::SourceFormat::kFashionMnist},
    {"mnist", io::SourceFormat::kMnist},
    {"idx", io::SourceFormat::kIdx},
    {"cifar10", io::SourceFormat::kCifar10},
    {"npy", io::SourceFormat::kNpy},
    {"image-folder", io::SourceFormat::kImageFolder},
};

io::SourceFormat parse_format(const std::string& name) {
  std::string listed;
  for (const auto& [text, format] : kFormats) {
    if (text == name) return format;
    listed += str_cat(listed.empty() ? "" : ", ", text);
  }
  throw UsageError(str_cat("--format: expected one of ", listed, ", text, but got '", name, "'."));
}

// "a,b,c" -> {"a", "b", "c"}.
std::vector<std::string> split_commas(const std::string& text) {
  std::vector<std::string> parts;
  std::string part;
  std::istringstream in(text);
  while (std::getline(in, part, ',')) parts.push_back(part);
  return parts;
}

// Throws a UsageError when `option` was given although `format_name` does not use it.
void reject_option(const po::variables_map& values, const std::string& option, const std::string& format_name,
                   std::string_view used_by) {
  if (values.count(option) != 0 && !values[option].defaulted()) {
    throw UsageError(str_cat("--", option, ": expected only with --format ", used_by, ", but got --format ",
                             format_name, "."));
  }
}

// `lockstep convert --format text`: a folder of UTF-8 text files to token arrays (io/data/text.h).
int convert_text_folder(const po::variables_map& values) {
  for (const char* option : {"labels", "classes", "append"}) {
    if (values.count(option) != 0 && !values[option].defaulted())
      throw UsageError(str_cat("--", option, ": expected no --", option, " with --format text."));
  }
  reject_option(values, "split", "text", "idx, npy or image-folder");
  reject_option(values, "layout", "text", "npy");
  io::TextConvertOptions options;
  options.input = values["input"].as<std::string>();
  options.output = values["output"].as<std::string>();
  options.test_every = values["test-every"].as<std::int64_t>();
  if (options.test_every < 2) {
    throw UsageError(
        str_cat("--test-every: expected at least 2 (every k-th file goes to the test split), but got ",
                options.test_every, "."));
  }
  if (values.count("exclude") != 0) options.exclude = values["exclude"].as<std::vector<std::string>>();
  const auto start = std::chrono::steady_clock::now();
  const io::TextConvertResult result = io::convert_text(options);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cout << "train: " << result.train_tokens << " characters from " << result.train_files.size()
            << " files\n"
            << "test: " << result.test_tokens << " characters from " << result.test_files.size() << " files ("
            << join(result.test_files, ", ") << ")\n"
            << "vocabulary: " << result.vocabulary << " characters\n"
            << "wrote " << options.output.string() << " in " << std::fixed << std::setprecision(2) << seconds
            << " s\n";
  return 0;
}

}  // namespace

int run_convert(const std::vector<std::string>& args) {
  po::options_description options("Options");
  options.add_options()  //
      ("format", po::value<std::string>()->value_name("FORMAT")->required(),
       "fashion-mnist | mnist | idx | cifar10 | npy | image-folder | text")  //
      ("input", po::value<std::string>()->value_name("PATH")->required(),
       "the directory (fashion-mnist, mnist, cifar10, image-folder, text) or the images file (idx, npy)")  //
      ("labels", po::value<std::string>()->value_name("PATH"), "the labels file (idx and npy only)")  //
      ("split", po::value<std::string>()->value_name("NAME")->default_value("train"),
       "the split to write (idx, npy, image-folder; the others write train and test)")                   //
      ("output", po::value<std::string>()->value_name("FILE.h5")->required(), "the HDF5 file to write")  //
      ("classes", po::value<std::string>()->value_name("NAMES"),
       "comma-separated class names (idx and npy; default 0, 1, ...)")  //
      ("layout", po::value<std::string>()->value_name("LAYOUT")->default_value("nchw"),
       "nchw | nhwc: layout of 4-d npy images")  //
      ("append", po::bool_switch(), "add the split(s) to an existing data-set file with the same classes")  //
      ("test-every", po::value<std::int64_t>()->value_name("K")->default_value(10),
       "text: files K-1, 2K-1, ... (in name order) form the test split")  //
      ("exclude", po::value<std::vector<std::string>>()->value_name("PATTERN")->composing(),
       "text: skip the files whose names match PATTERN (fnmatch, e.g. '*.dat'); repeatable");
  const auto values = parse_options(
      args, options, "convert --format FORMAT --input PATH [--labels PATH] [--split NAME] --output FILE.h5",
      "Converts a data set to the HDF5 layout Lockstep trains from: /<split>/images u8 [N,C,H,W],\n"
      "/<split>/labels i64 [N], per-channel mean and std, class names and source checksums.");
  if (!values) return 0;

  const std::string format_name = (*values)["format"].as<std::string>();
  if (format_name == "text") return convert_text_folder(*values);
  reject_option(*values, "test-every", format_name, "text");
  reject_option(*values, "exclude", format_name, "text");
  io::ConvertOptions convert_options;
  convert_options.format = parse_format(format_name);
  convert_options.input = (*values)["input"].as<std::string>();
  convert_options.output = (*values)["output"].as<std::string>();
  convert_options.split = (*values)["split"].as<std::string>();
  convert_options.mode = (*values)["append"].as<bool>() ? io::OutputMode::kAddSplit : io::OutputMode::kCreate;

  const bool paired_files =
      convert_options.format == io::SourceFormat::kIdx || convert_options.format == io::SourceFormat::kNpy;
  const bool single_split = paired_files || convert_options.format == io::SourceFormat::kImageFolder;
  if (paired_files) {
    if (values->count("labels") == 0) {
      throw UsageError(
          str_cat("--labels: expected the labels file with --format ", format_name, ", but got none."));
    }
    convert_options.labels = (*values)["labels"].as<std::string>();
    if (values->count("classes") != 0)
      convert_options.class_names = split_commas((*values)["classes"].as<std::string>());
  } else {
    reject_option(*values, "labels", format_name, "idx or npy");
    reject_option(*values, "classes", format_name, "idx or npy");
  }
  if (!single_split) reject_option(*values, "split", format_name, "idx, npy or image-folder");
  if (convert_options.format == io::SourceFormat::kNpy) {
    const std::string layout = (*values)["layout"].as<std::string>();
    if (layout != "nchw" && layout != "nhwc") {
      throw UsageError(str_cat("--layout: expected nchw or nhwc, but got '", layout, "'."));
    }
    convert_options.npy_layout = layout == "nhwc" ? io::NpyLayout::kNHWC : io::NpyLayout::kNCHW;
  } else {
    reject_option(*values, "layout", format_name, "npy");
  }

  const auto start = std::chrono::steady_clock::now();
  convert(convert_options);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  const std::vector<std::string> splits = single_split ? std::vector<std::string>{convert_options.split}
                                                       : std::vector<std::string>{"train", "test"};
  for (const std::string& split : splits) {
    const auto set = io::ImageDataset::open(convert_options.output, split, io::Cache::kNone);
    std::cout << split << ": " << set->size() << " images of " << set->channels() << 'x' << set->height()
              << 'x' << set->width() << ", " << set->class_names().size() << " classes, mean "
              << format_values(set->mean()) << ", std " << format_values(set->std()) << '\n';
  }
  std::cout << "wrote " << convert_options.output.string() << " in " << std::fixed << std::setprecision(2)
            << seconds << " s\n";
  return 0;
}

}  // namespace lockstep::launch
