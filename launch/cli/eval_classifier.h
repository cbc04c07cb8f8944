// `lockstep eval --classifier A.h5 [B.h5 ...]`: test figures of one classifier or of an ensemble (with the
// per-class table), and with --attack fgsm its accuracy on FGSM examples and a PNG of some of them.
#pragma once

#include <string>
#include <vector>

#include "launch/config/settings.h"

namespace lockstep::launch {

// A model file's stored settings, with the data path replaced when given.
launch::Settings stored_settings(const std::string& file, const std::string& data_path);

struct ClassifierEvalOptions {
  std::string data_path;  // the data set file (empty: the one each model was trained on)
  std::string attack;     // "" or "fgsm"
  double epsilon = 0.1;   // the attack's step in pixel units
  std::string png;        // where the attack's examples go
  std::uint64_t seed = 0;
};

// Prints each classifier's test accuracy, top-5 accuracy and loss; with several, the ensemble's (mean of
// the members' probabilities); the per-class table (precision, recall, F1, confusion matrix) of the single
// classifier or of the ensemble; with an attack, clean and adversarial accuracy of the single classifier and
// a PNG of 8 test images: rows of clean | perturbation (grey = 0, scaled to +-epsilon) | adversarial.
// UsageError for an unknown attack, an epsilon outside [0, 1], or an attack on an ensemble.
void eval_classifiers(const std::vector<std::string>& files, const ClassifierEvalOptions& options);

}  // namespace lockstep::launch
