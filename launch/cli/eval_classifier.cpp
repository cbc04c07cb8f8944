// `lockstep eval --classifier ...`: one classifier or an ensemble on the test split, and the FGSM attack.
#include "launch/cli/eval_classifier.h"

#include <iostream>
#include <memory>

#include "io/image/grid.h"
#include "io/image/png.h"
#include "io/model/model_file.h"
#include "launch/cli/common.h"
#include "launch/train/evaluate.h"
#include "launch/train/factory.h"
#include "src/core/strings.h"
#include "src/ops/elementwise.h"
#include "src/ops/shape.h"

namespace lockstep::launch {

launch::Settings stored_settings(const std::string& file, const std::string& data_path) {
  std::vector<std::string> overrides;
  if (!data_path.empty()) overrides.push_back(str_cat("data.path=\"", data_path, "\""));
  return launch::read_settings(launch::Config::parse(io::read_model_file_info(file).config, file, overrides));
}

namespace {

struct Member {
  DataSplits data;
  std::shared_ptr<nn::Module> model;
  std::unique_ptr<io::DataLoader> loader;
};

Member load_member(const std::string& file, const ClassifierEvalOptions& options) {
  const launch::Settings settings = stored_settings(file, options.data_path);
  if (settings.task != "classifier") {
    throw ValueError(str_cat("eval: expected a classifier's model file for --classifier, but ",
                             in_quotes(file), " holds a model of task \"", settings.task, "\""));
  }
  Member m;
  m.data = launch::make_data(settings.data, options.seed);
  if (!m.data.test)
    throw ValueError(
        str_cat("eval: the data set of ", in_quotes(file), " has no test split (data.test_split is empty)"));
  m.model = launch::make_classifier(settings.model.model, m.data.geometry);
  io::load_model_group(file, "model", *m.model);
  m.loader = std::make_unique<io::DataLoader>(m.data.test, m.data.test_options);
  return m;
}

std::string figures(const metrics::ClassificationReport& r) {
  return str_cat("test accuracy ", format_fixed(r.accuracy, 4), ", top-", r.top_k, " accuracy ",
                 format_fixed(r.top_k_accuracy, 4), ", test loss ", format_fixed(r.loss, 4), ", macro F1 ",
                 format_fixed(r.macro_f1, 4), " on ", r.count, " images");
}

}  // namespace

void eval_classifiers(const std::vector<std::string>& files, const ClassifierEvalOptions& options) {
  if (!options.attack.empty() && options.attack != "fgsm")
    throw UsageError(str_cat("--attack: expected \"fgsm\", but got \"", options.attack, "\""));
  if (!(options.epsilon >= 0.0 && options.epsilon <= 1.0))
    throw UsageError(
        str_cat("--epsilon: expected a number in [0, 1] (pixel units), but got ", options.epsilon));
  if (!options.attack.empty() && files.size() > 1)
    throw UsageError(
        str_cat("--attack: expected one --classifier, but got ", files.size(), " (an ensemble)"));
  std::vector<Member> members;
  for (const std::string& file : files) members.push_back(load_member(file, options));
  std::vector<nn::Module*> models;
  std::vector<io::DataLoader*> loaders;
  for (Member& m : members) {
    models.push_back(m.model.get());
    loaders.push_back(m.loader.get());
  }
  const EnsembleAccuracy acc = launch::evaluate_ensemble(models, loaders);
  for (std::size_t i = 0; i < files.size(); ++i)
    std::cout << "classifier " << files[i] << ": " << figures(acc.members[i]) << "\n";
  if (files.size() > 1)
    std::cout << "ensemble of " << files.size() << " (mean probability): " << figures(acc.ensemble) << "\n";
  std::cout << report_table(files.size() > 1 ? acc.ensemble : acc.members[0],
                            members[0].data.test->class_names());
  if (options.attack.empty()) return;

  Member& m = members[0];
  const models::InputNormalization normalization = input_normalization(*m.data.test, m.data.test_options);
  std::pair<Tensor, Tensor> examples;
  const AttackAccuracy attack =
      launch::evaluate_fgsm(*m.model, *m.loader, options.epsilon, normalization, 8, &examples);
  std::cout << "FGSM, epsilon " << format_fixed(options.epsilon, 3) << " (pixel units), on "
            << attack.clean.count << " test images: clean accuracy " << format_fixed(attack.clean.accuracy, 4)
            << ", adversarial accuracy " << format_fixed(attack.adversarial.accuracy, 4)
            << " (adversarial loss " << format_fixed(attack.adversarial.loss, 4) << ")\n";
  const auto& [clean, adversarial] = examples;
  const Tensor perturbation = (adversarial - clean) / std::max(2.0 * options.epsilon, 1e-12) + 0.5;
  std::vector<Tensor> tiles;
  for (std::int64_t i = 0; i < clean.size(0); ++i)
    for (const Tensor* t : {&clean, &perturbation, &adversarial}) tiles.push_back(t->slice(0, i, i + 1));
  io::write_png(options.png, io::image_grid(cat(tiles, 0), 3, 0.0, 1.0));
  std::cout << "  " << clean.size(0) << " examples (rows of clean | perturbation | adversarial) in "
            << options.png << "\n";
}

}  // namespace lockstep::launch
