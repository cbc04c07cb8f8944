// The course's recurrent classifiers of images: each image read as a sequence of its rows (H steps of C * W
// features: Fashion-MNIST as 28 rows of 28 pixels), a stack of RNN, LSTM or GRU layers, and a linear
// classifier on the last layer's final state.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "src/nn/linear.h"
#include "src/nn/module.h"
#include "src/nn/recurrent.h"

namespace lockstep::models {

// Owns layers `rnn0`, `rnn1`, ... (widths `hidden`, the first reading C * W features per step) and `fc`
// (last width -> classes). Not thread-safe.
class RowSequenceClassifier : public nn::Module {
 public:
  // ValueError for empty `hidden` or sizes below 1.
  RowSequenceClassifier(nn::RecurrentKind kind, std::int64_t channels, std::int64_t height,
                        std::int64_t width, const std::vector<std::int64_t>& hidden, std::int64_t classes);
  // images [N, C, H, W] -> logits [N, classes].
  Tensor forward(const Tensor& images) override;

 protected:
  std::string describe() const override;

 private:
  nn::RecurrentKind kind_;
  std::int64_t channels_, height_, width_;
  std::vector<std::shared_ptr<nn::RecurrentLayer>> layers_;
  std::shared_ptr<nn::Linear> fc_;
};

}  // namespace lockstep::models
