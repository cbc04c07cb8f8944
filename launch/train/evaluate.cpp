// Classifier evaluation and helpers shared by the training loops.
#include "launch/train/evaluate.h"

#include <algorithm>
#include <array>
#include <functional>

#include "launch/train/run_log.h"
#include "src/autograd/grad_mode.h"
#include "src/core/strings.h"
#include "src/models/conditional.h"
#include "src/ops/elementwise.h"
#include "src/ops/loss.h"
#include "src/ops/reduce.h"
#include "src/ops/shape.h"
#include "src/ops/softmax.h"
#include "src/tensor/factories.h"

namespace lockstep::launch {

namespace {

std::int64_t classes_of(const io::ImageDataset& dataset) {
  std::int64_t classes = std::max<std::int64_t>(static_cast<std::int64_t>(dataset.class_names().size()), 1);
  for (const std::int64_t label : dataset.labels()) classes = std::max(classes, label + 1);
  return classes;
}

// This rank's tally over its loader, evaluated on the model's device.
metrics::ClassificationTally local_tally(nn::Module& model, io::DataLoader& loader) {
  NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.eval();
  loader.start_epoch(0);
  metrics::ClassificationTally tally(classes_of(loader.dataset()));
  const Device device = device_of(model);
  while (std::optional<io::Batch> batch = loader.next()) {
    const Tensor labels = batch->labels.to(device);
    const Tensor logits = model(batch->images.to(device));
    tally.add(logits, labels, cross_entropy(logits, labels, Reduction::kSum).item());
  }
  model.train(was_training);
  return tally;
}

Accuracy to_accuracy(const metrics::ClassificationTally& tally) {
  Accuracy result;
  result.report = metrics::classification_report(tally);
  result.count = result.report.count;
  result.loss = result.report.loss;
  result.accuracy = result.report.accuracy;
  return result;
}

}  // namespace

Device device_of(const nn::Module& model) {
  const auto params = model.named_parameters();
  return params.empty() ? kCPU : params.front().second.device();
}

Accuracy evaluate_classifier(nn::Module& model, io::DataLoader& loader) {
  return to_accuracy(local_tally(model, loader));
}

Accuracy evaluate_classifier(nn::Module& model, io::DataLoader& loader, distributed::ProcessGroup& group) {
  metrics::ClassificationTally tally = local_tally(model, loader);
  if (group.size() > 1) {
    std::vector<double>& counts = tally.counts();
    const Tensor reduced = from_vector(counts, {static_cast<std::int64_t>(counts.size())});
    group.all_reduce(reduced, distributed::ReduceOp::kSum)->wait();
    counts = reduced.to_vector<double>();
  }
  return to_accuracy(tally);
}

EnsembleAccuracy evaluate_ensemble(const std::vector<nn::Module*>& models,
                                   const std::vector<io::DataLoader*>& loaders) {
  LOCKSTEP_CHECK(!models.empty() && models.size() == loaders.size(), ValueError,
                 "evaluate_ensemble: expected one loader per model and at least one model, but got ",
                 models.size(), " models and ", loaders.size(), " loaders");
  NoGradGuard no_grad;
  std::vector<bool> was_training;
  for (nn::Module* m : models) {
    was_training.push_back(m->is_training());
    m->eval();
  }
  const std::int64_t classes = classes_of(loaders[0]->dataset());
  std::vector<metrics::ClassificationTally> tallies(models.size(), metrics::ClassificationTally(classes));
  metrics::ClassificationTally ensemble(classes);
  for (io::DataLoader* loader : loaders) loader->start_epoch(0);
  for (;;) {
    std::vector<std::optional<io::Batch>> batches;
    for (io::DataLoader* loader : loaders) batches.push_back(loader->next());
    const bool any = std::any_of(batches.begin(), batches.end(), [](const auto& b) { return b.has_value(); });
    if (!any) break;
    Tensor mean_probability;
    for (std::size_t i = 0; i < models.size(); ++i) {
      LOCKSTEP_CHECK(
          batches[i] && batches[i]->labels.numel() == batches[0]->labels.numel() &&
              batches[i]->labels.to_vector<std::int64_t>() == batches[0]->labels.to_vector<std::int64_t>(),
          ValueError, "evaluate_ensemble: member ", i,
          "'s test samples differ from member 0's (the members must be evaluated on the same data)");
      const Tensor logits = (*models[i])(batches[i]->images);
      tallies[i].add(logits, batches[i]->labels,
                     cross_entropy(logits, batches[i]->labels, Reduction::kSum).item());
      const Tensor p = softmax(logits.to(DType::f64), 1);
      mean_probability = i == 0 ? p : mean_probability + p;
    }
    const Tensor log_p = log(mean_probability / static_cast<double>(models.size()));
    // log p is its own log-softmax (p sums to 1), so the cross-entropy of log p is -log p(label).
    ensemble.add(log_p, batches[0]->labels, cross_entropy(log_p, batches[0]->labels, Reduction::kSum).item());
  }
  for (std::size_t i = 0; i < models.size(); ++i) models[i]->train(was_training[i]);
  EnsembleAccuracy result;
  for (const auto& t : tallies) result.members.push_back(metrics::classification_report(t));
  result.ensemble = metrics::classification_report(ensemble);
  LOCKSTEP_CHECK(result.ensemble.count > 0, ValueError, "evaluate_ensemble: the loaders hold no samples");
  return result;
}

AttackAccuracy evaluate_fgsm(nn::Module& model, io::DataLoader& loader, double epsilon,
                             const models::InputNormalization& normalization, std::int64_t count,
                             std::pair<Tensor, Tensor>* examples) {
  const bool was_training = model.is_training();
  model.eval();
  const std::int64_t classes = classes_of(loader.dataset());
  metrics::ClassificationTally clean(classes), adversarial(classes);
  std::vector<Tensor> clean_kept, adversarial_kept;
  std::int64_t kept = 0;
  const auto as_pixels = [&](const Tensor& x) {
    const auto c = static_cast<std::int64_t>(normalization.mean.size());
    return x * from_vector(normalization.std, {1, c, 1, 1}, DType::f64).to(x.dtype()) +
           from_vector(normalization.mean, {1, c, 1, 1}, DType::f64).to(x.dtype());
  };
  loader.start_epoch(0);
  while (std::optional<io::Batch> batch = loader.next()) {
    const Tensor x_adv = models::fgsm(model, batch->images, batch->labels, epsilon, normalization);
    NoGradGuard no_grad;
    for (auto [images, tally] : {std::pair{batch->images, &clean}, std::pair{x_adv, &adversarial}}) {
      const Tensor logits = model(images);
      tally->add(logits, batch->labels, cross_entropy(logits, batch->labels, Reduction::kSum).item());
    }
    if (examples != nullptr && kept < count) {
      const std::int64_t n = std::min(count - kept, batch->images.size(0));
      clean_kept.push_back(as_pixels(batch->images.slice(0, 0, n)));
      adversarial_kept.push_back(as_pixels(x_adv.slice(0, 0, n)));
      kept += n;
    }
  }
  model.train(was_training);
  if (examples != nullptr && kept > 0) *examples = {cat(clean_kept, 0), cat(adversarial_kept, 0)};
  return {metrics::classification_report(clean), metrics::classification_report(adversarial)};
}

namespace {

std::string json_array(const std::vector<double>& values) {
  std::string text = "[";
  for (std::size_t i = 0; i < values.size(); ++i)
    text += str_cat(i > 0 ? ", " : "", format_number(values[i]));
  return text + "]";
}

}  // namespace

void append_report_fields(const std::string& name, const metrics::ClassificationReport& report,
                          std::vector<std::pair<std::string, double>>& fields,
                          std::vector<std::pair<std::string, std::string>>& json) {
  fields.emplace_back(str_cat(name, "_top", report.top_k, "_accuracy"), report.top_k_accuracy);
  fields.emplace_back(str_cat(name, "_macro_f1"), report.macro_f1);
  std::string confusion = "[";
  for (std::size_t t = 0; t < report.confusion.size(); ++t) {
    confusion += t > 0 ? ", [" : "[";
    for (std::size_t p = 0; p < report.confusion[t].size(); ++p)
      confusion += str_cat(p > 0 ? ", " : "", report.confusion[t][p]);
    confusion += "]";
  }
  json.emplace_back(str_cat(name, "_confusion"), confusion + "]");
  json.emplace_back(str_cat(name, "_precision"), json_array(report.precision));
  json.emplace_back(str_cat(name, "_recall"), json_array(report.recall));
  json.emplace_back(str_cat(name, "_f1"), json_array(report.f1));
}

std::string report_table(const metrics::ClassificationReport& report,
                         const std::vector<std::string>& class_names) {
  const std::size_t c = report.confusion.size();
  std::vector<std::string> names;
  std::size_t width = 5;
  for (std::size_t k = 0; k < c; ++k) {
    names.push_back(k < class_names.size() && !class_names[k].empty() ? class_names[k] : str_cat(k));
    width = std::max(width, names.back().size());
  }
  const auto pad = [](const std::string& text, std::size_t w) {
    return text.size() >= w ? text : std::string(w - text.size(), ' ') + text;
  };
  std::string out = str_cat("  ", pad("class", width), pad("support", 9), pad("precision", 11),
                            pad("recall", 9), pad("f1", 9), "\n");
  for (std::size_t k = 0; k < c; ++k) {
    out += str_cat("  ", pad(names[k], width), pad(str_cat(report.support[k]), 9),
                   pad(format_fixed(report.precision[k], 4), 11), pad(format_fixed(report.recall[k], 4), 9),
                   pad(format_fixed(report.f1[k], 4), 9), "\n");
  }
  out += str_cat("  ", pad("macro", width), pad(str_cat(report.count), 9), pad("", 11), pad("", 9),
                 pad(format_fixed(report.macro_f1, 4), 9), "\n");
  out += str_cat("  confusion matrix (rows: true class, columns: predicted class 0..", c - 1, ")\n");
  std::int64_t biggest = 1;
  for (const auto& row : report.confusion)
    for (const std::int64_t v : row) biggest = std::max(biggest, v);
  const std::size_t cell = str_cat(biggest).size() + 1;
  for (std::size_t t = 0; t < c; ++t) {
    out += str_cat("  ", pad(names[t], width), " ");
    for (const std::int64_t v : report.confusion[t]) out += pad(str_cat(v), cell);
    out += "\n";
  }
  return out;
}

namespace {

// f(batch) over `images` in batches, in eval mode without gradients, joined along dimension 0.
Tensor in_batches(nn::Module& model, const Tensor& images, std::int64_t batch,
                  const std::function<Tensor(const Tensor&)>& f) {
  NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.eval();
  std::vector<Tensor> parts;
  for (std::int64_t start = 0; start < images.size(0); start += batch)
    parts.push_back(f(images.slice(0, start, std::min(start + batch, images.size(0)))));
  model.train(was_training);
  return cat(parts, 0);
}

}  // namespace

Tensor classifier_features(models::Classifier& classifier, const Tensor& images, std::int64_t batch) {
  return in_batches(classifier, images, batch, [&](const Tensor& x) { return classifier.features(x); });
}

Tensor predict_classes(nn::Module& classifier, const Tensor& images, std::int64_t batch) {
  return in_batches(classifier, images, batch, [&](const Tensor& x) { return argmax(classifier(x), 1); });
}

Tensor generate_images(nn::Module& generator, std::int64_t latent, std::int64_t count, Generator& stream,
                       const Tensor& labels, std::int64_t batch) {
  NoGradGuard no_grad;
  const bool was_training = generator.is_training();
  generator.eval();
  std::vector<Tensor> parts;
  for (std::int64_t start = 0; start < count; start += batch) {
    const std::int64_t n = std::min(batch, count - start);
    const Tensor z = randn({n, latent}, 0.0, 1.0, DType::f32, kCPU, &stream);
    parts.push_back(
        models::generate(generator, z, labels.defined() ? labels.slice(0, start, start + n) : labels));
  }
  generator.train(was_training);
  return cat(parts, 0);
}

Tensor to_classifier_input(const Tensor& generated, std::int64_t height, std::int64_t width,
                           const std::vector<double>& mean, const std::vector<double>& std) {
  const std::int64_t c = generated.size(1);
  LOCKSTEP_CHECK(generated.size(2) >= height && generated.size(3) >= width, ValueError,
                 "to_classifier_input: expected generated images of at least ", height, "x", width,
                 ", but got ", generated.size(2), "x", generated.size(3));
  LOCKSTEP_CHECK(static_cast<std::int64_t>(mean.size()) == c && static_cast<std::int64_t>(std.size()) == c,
                 ValueError, "to_classifier_input: expected ", c, " channel means and stds, but got ",
                 mean.size(), " and ", std.size());
  const std::int64_t top = (generated.size(2) - height) / 2, left = (generated.size(3) - width) / 2;
  const Tensor crop = generated.slice(2, top, top + height).slice(3, left, left + width);
  std::vector<float> scale(static_cast<std::size_t>(c)), shift(static_cast<std::size_t>(c));
  for (std::size_t i = 0; i < scale.size(); ++i) {  // ((x + 1) / 2 - mean) / std
    scale[i] = static_cast<float>(0.5 / std[i]);
    shift[i] = static_cast<float>((0.5 - mean[i]) / std[i]);
  }
  return crop * from_vector(scale, {1, c, 1, 1}) + from_vector(shift, {1, c, 1, 1});
}

models::InputNormalization input_normalization(const io::ImageDataset& dataset,
                                               const io::LoaderOptions& options) {
  const auto per_channel = [&](const std::vector<double>& given, const std::vector<double>& fallback) {
    const std::vector<double>& v = given.empty() ? fallback : given;
    return v.size() == 1 ? std::vector<double>(static_cast<std::size_t>(dataset.channels()), v[0]) : v;
  };
  return {per_channel(options.augment.mean, dataset.mean()), per_channel(options.augment.std, dataset.std())};
}

nn::StateDict clone_state(const nn::StateDict& state) {
  nn::StateDict copy;
  for (const auto& [name, tensor] : state) copy.insert(name, tensor.detach().clone());
  return copy;
}

}  // namespace lockstep::launch
