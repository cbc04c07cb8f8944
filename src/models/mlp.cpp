// MLP: construction (argument checks, fc1..fcK) and the forward pass.
#include "src/models/mlp.h"

#include <utility>

#include "src/core/error.h"
#include "src/ops/activation.h"
#include "src/ops/dropout.h"

namespace lockstep::models {

MLP::MLP(std::int64_t in_features, std::vector<std::int64_t> hidden, std::int64_t classes, double dropout)
    : Classifier("MLP"), in_features_(in_features), dropout_(dropout) {
  LOCKSTEP_CHECK(in_features > 0 && classes > 0, ValueError,
                 "MLP: expected positive in_features and classes, but got in_features=", in_features,
                 ", classes=", classes);
  LOCKSTEP_CHECK(dropout >= 0.0 && dropout < 1.0, ValueError, "MLP: expected dropout in [0, 1), but got ",
                 dropout);
  std::int64_t width = in_features;
  hidden.push_back(classes);
  for (std::size_t i = 0; i < hidden.size(); ++i) {
    LOCKSTEP_CHECK(hidden[i] > 0, ValueError, "MLP: expected positive hidden sizes, but hidden layer ", i + 1,
                   " has ", hidden[i], " units");
    layers_.push_back(
        register_module("fc" + std::to_string(i + 1), std::make_shared<nn::Linear>(width, hidden[i])));
    width = hidden[i];
  }
}

Tensor MLP::features(const Tensor& input) {
  LOCKSTEP_CHECK(input.dim() >= 2 && input.numel() == input.size(0) * in_features_, ValueError,
                 "MLP::features: expected [N, ...] with ", in_features_,
                 " features per sample, but got shape ", shape_str(input.shape()));
  Tensor x = input.reshape({input.size(0), in_features_});
  const DropoutMode mode = is_training() ? DropoutMode::kTrain : DropoutMode::kEval;
  for (std::size_t i = 0; i + 1 < layers_.size(); ++i) {
    x = relu(layers_[i]->forward(x));
    if (dropout_ > 0.0) x = dropout(x, dropout_, mode);
  }
  return x;
}

Tensor MLP::head(const Tensor& features) { return layers_.back()->forward(features); }

std::string MLP::describe() const {
  return str_cat("in=", in_features_, ", layers=", layers_.size(), ", dropout=", dropout_);
}

}  // namespace lockstep::models
