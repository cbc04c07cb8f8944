// Evaluation: test accuracy of a classifier, and the Fréchet distance between generated and real images in
// the feature space of a trained classifier.
#pragma once

#include <cstdint>
#include <string>

#include "distributed/process_group.h"
#include "io/data/loader.h"
#include "src/core/rng.h"
#include "src/metrics/classification.h"
#include "src/models/adversarial.h"
#include "src/models/classifier.h"
#include "src/nn/module.h"
#include "src/nn/state_dict.h"

namespace lockstep::launch {

struct Accuracy {
  double loss = 0;      // mean cross-entropy
  double accuracy = 0;  // fraction correct
  std::int64_t count = 0;
  metrics::ClassificationReport report;  // top-5 accuracy, confusion matrix, per-class precision/recall/F1
};

// Where `model`'s parameters live (the CPU for a model without any): evaluation moves its inputs there.
Device device_of(const nn::Module& model);

// Runs the whole loader once in eval mode without gradients, on the model's device; restores the module's
// mode afterwards. The classes are those of the loader's data set (its class names, or its largest label + 1
// if more).
Accuracy evaluate_classifier(nn::Module& model, io::DataLoader& loader);
// The distributed version: each rank evaluates its loader's shard (Shuffle::kNo, Pad::kNo, DropLast::kNo
// count every sample once over the ranks), then one all_reduce of the packed counts (samples, loss sum,
// top-1 and top-5 hits, confusion matrix: metrics::ClassificationTally) gives every rank the metrics of the
// whole split. Collective: every rank of `group` calls it; the forward passes must
// not communicate (eval mode, where batch norm uses its running statistics).
Accuracy evaluate_classifier(nn::Module& model, io::DataLoader& loader, distributed::ProcessGroup& group);

// Penultimate-layer features [N, D] of `images` (normalised the classifier's way), in batches, in eval mode
// without gradients.
Tensor classifier_features(models::Classifier& classifier, const Tensor& images, std::int64_t batch = 500);

// The classifier's predicted class (i64 [N]) for each of `images`, in batches, in eval mode without
// gradients.
Tensor predict_classes(nn::Module& classifier, const Tensor& images, std::int64_t batch = 500);

// `count` images from a generator in eval mode for z ~ N(0, 1) drawn from `stream`: [count, C, H, W] in (-1,
// 1). A conditional generator takes `labels` (i64 [count]), any other none.
Tensor generate_images(nn::Module& generator, std::int64_t latent, std::int64_t count, Generator& stream,
                       const Tensor& labels = {}, std::int64_t batch = 500);

// Generator output in [-1, 1] -> a classifier's input: scaled to [0, 1], centre-cropped to height x width
// (32x32 samples of zero-padded 28x28 data), normalised with the per-channel mean and std.
Tensor to_classifier_input(const Tensor& generated, std::int64_t height, std::int64_t width,
                           const std::vector<double>& mean, const std::vector<double>& std);

// An ensemble's evaluation: each member's figures and those of the mean of the members' softmax
// probabilities (its loss: the mean of -log p_ensemble(label)).
struct EnsembleAccuracy {
  std::vector<metrics::ClassificationReport> members;
  metrics::ClassificationReport ensemble;
};

// Evaluates models[i] on loaders[i] (one loader per member: members may normalise differently; every loader
// must give the same samples with the same labels in the same order, e.g. a test split without shuffling), in
// eval mode without gradients. ValueError when the loaders' samples or labels disagree or there are none.
EnsembleAccuracy evaluate_ensemble(const std::vector<nn::Module*>& models,
                                   const std::vector<io::DataLoader*>& loaders);

// Clean and FGSM figures of one classifier on a loader (models::fgsm with `epsilon` in pixel units and the
// loader's `normalization`); `examples` (when not null) receives the first `count` images as pixels in
// [0, 1] [count, C, H, W]: clean, then adversarial.
struct AttackAccuracy {
  metrics::ClassificationReport clean, adversarial;
};
AttackAccuracy evaluate_fgsm(nn::Module& model, io::DataLoader& loader, double epsilon,
                             const models::InputNormalization& normalization, std::int64_t count = 0,
                             std::pair<Tensor, Tensor>* examples = nullptr);

// The fields of an evaluation of split `name` for metrics.jsonl: scalars <name>_top5_accuracy and
// <name>_macro_f1 (appended to `fields`), and JSON arrays (appended to `json`) <name>_confusion (rows: true
// class, columns: predicted class, counts), <name>_precision, <name>_recall, <name>_f1 (per class).
void append_report_fields(const std::string& name, const metrics::ClassificationReport& report,
                          std::vector<std::pair<std::string, double>>& fields,
                          std::vector<std::pair<std::string, std::string>>& json);

// A readable table of `report`: per class (named by `class_names` where given) support, precision, recall,
// F1, then the confusion matrix.
std::string report_table(const metrics::ClassificationReport& report,
                         const std::vector<std::string>& class_names);

// How `options` normalise the images of `dataset` (its augmentation's mean and std, else the data set's; one
// value for every channel when one is given).
models::InputNormalization input_normalization(const io::ImageDataset& dataset,
                                               const io::LoaderOptions& options);

// A deep copy (values, not shared storage).
nn::StateDict clone_state(const nn::StateDict& state);

}  // namespace lockstep::launch
