// A multilayer perceptron classifier: flatten, then Linear + ReLU (+ dropout) per hidden layer, then a final
// Linear producing the class logits.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "src/models/classifier.h"
#include "src/nn/linear.h"

namespace lockstep::models {

// Owns Linear children fc1 .. fc{hidden.size() + 1} (fc1 takes in_features, the last one gives `classes`).
// Dropout with probability `dropout` follows every hidden ReLU in training mode. Not thread-safe.
class MLP : public Classifier {
 public:
  MLP(std::int64_t in_features, std::vector<std::int64_t> hidden, std::int64_t classes, double dropout = 0.0);
  // forward: x [N, ...] with in_features elements per sample -> logits [N, classes].
  // x -> the last hidden layer's activations [N, hidden.back()] (the input itself without hidden layers).
  Tensor features(const Tensor& x) override;
  Tensor head(const Tensor& features) override;
  std::int64_t in_features() const { return in_features_; }

 protected:
  std::string describe() const override;

 private:
  std::int64_t in_features_;
  double dropout_;
  std::vector<std::shared_ptr<nn::Linear>> layers_;
};

}  // namespace lockstep::models
