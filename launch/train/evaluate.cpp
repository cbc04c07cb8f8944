// Classifier evaluation and helpers shared by the training loops.
#include "launch/train/evaluate.h"

#include <algorithm>
#include <array>
#include <functional>

#include "src/autograd/grad_mode.h"
#include "src/models/conditional.h"
#include "src/ops/elementwise.h"
#include "src/ops/loss.h"
#include "src/ops/reduce.h"
#include "src/ops/shape.h"
#include "src/tensor/factories.h"

namespace lockstep::launch {

namespace {

// This rank's sums over its loader: [correct, count, loss sum] (f64 holds counts exactly up to 2^53).
std::array<double, 3> local_sums(nn::Module& model, io::DataLoader& loader) {
  NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.eval();
  loader.start_epoch(0);
  double loss_sum = 0;
  std::int64_t correct = 0, count = 0;
  while (std::optional<io::Batch> batch = loader.next()) {
    const Tensor logits = model(batch->images);
    loss_sum += cross_entropy(logits, batch->labels, Reduction::kSum).item();
    const std::vector<std::int64_t> predicted = argmax(logits, 1).to_vector<std::int64_t>();
    const std::vector<std::int64_t> labels = batch->labels.to_vector<std::int64_t>();
    for (std::size_t i = 0; i < labels.size(); ++i) correct += predicted[i] == labels[i];
    count += static_cast<std::int64_t>(labels.size());
  }
  model.train(was_training);
  return {static_cast<double>(correct), static_cast<double>(count), loss_sum};
}

Accuracy to_accuracy(const std::array<double, 3>& sums) {
  Accuracy result;
  result.count = static_cast<std::int64_t>(sums[1]);
  if (result.count > 0) {
    result.loss = sums[2] / sums[1];
    result.accuracy = sums[0] / sums[1];
  }
  return result;
}

}  // namespace

Accuracy evaluate_classifier(nn::Module& model, io::DataLoader& loader) {
  return to_accuracy(local_sums(model, loader));
}

Accuracy evaluate_classifier(nn::Module& model, io::DataLoader& loader, distributed::ProcessGroup& group) {
  std::array<double, 3> sums = local_sums(model, loader);
  if (group.size() > 1) {
    const Tensor reduced = from_vector(std::vector<double>(sums.begin(), sums.end()), {3});
    group.all_reduce(reduced, distributed::ReduceOp::kSum)->wait();
    const std::vector<double> total = reduced.to_vector<double>();
    std::copy(total.begin(), total.end(), sums.begin());
  }
  return to_accuracy(sums);
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
