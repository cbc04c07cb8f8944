// Recurrent classifiers of images read row by row.
#include "src/models/recurrent.h"

#include "src/core/error.h"
#include "src/ops/shape.h"

namespace lockstep::models {

RowSequenceClassifier::RowSequenceClassifier(nn::RecurrentKind kind, std::int64_t channels,
                                             std::int64_t height, std::int64_t width,
                                             const std::vector<std::int64_t>& hidden, std::int64_t classes)
    : nn::Module("RowSequenceClassifier"), kind_(kind), channels_(channels), height_(height), width_(width) {
  LOCKSTEP_CHECK(
      channels > 0 && height > 0 && width > 0 && classes > 0 && !hidden.empty(), ValueError,
      "RowSequenceClassifier: expected positive image sizes, classes and at least one layer, but got ",
      channels, "x", height, "x", width, " images, ", classes, " classes and ", hidden.size(), " layers");
  std::int64_t in = channels * width;
  for (std::size_t l = 0; l < hidden.size(); ++l) {
    layers_.push_back(
        register_module(str_cat("rnn", l), std::make_shared<nn::RecurrentLayer>(kind, in, hidden[l])));
    in = hidden[l];
  }
  fc_ = register_module("fc", std::make_shared<nn::Linear>(in, classes));
}

Tensor RowSequenceClassifier::forward(const Tensor& images) {
  LOCKSTEP_CHECK(images.dim() == 4 && images.size(1) == channels_ && images.size(2) == height_ &&
                     images.size(3) == width_,
                 ValueError, "RowSequenceClassifier: expected images [N, ", channels_, ", ", height_, ", ",
                 width_, "], but got ", shape_str(images.shape()));
  // Step t reads row t of every channel: [N, C, W] -> [N, C * W].
  std::vector<Tensor> xs;
  for (std::int64_t t = 0; t < height_; ++t) xs.push_back(images.select(2, t).reshape({images.size(0), channels_ * width_}));
  nn::RecurrentState state;
  for (const auto& layer : layers_) {
    state = {};
    xs = layer->forward_steps(xs, state);
  }
  return fc_->forward(state.h);
}

std::string RowSequenceClassifier::describe() const {
  return str_cat(nn::recurrent_kind_name(kind_), " over ", height_, " rows of ", channels_ * width_,
                 " features, ", layers_.size(), layers_.size() == 1 ? " layer" : " layers");
}

}  // namespace lockstep::models
