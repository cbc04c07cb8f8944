// The linear probe: standardisation, softmax regression with Adam, accuracies.
#include "src/metrics/linear_probe.h"

#include <algorithm>
#include <memory>
#include <numeric>
#include <random>
#include <vector>

#include "src/autograd/grad_mode.h"
#include "src/core/error.h"
#include "src/nn/linear.h"
#include "src/ops/elementwise.h"
#include "src/ops/index.h"
#include "src/ops/loss.h"
#include "src/ops/reduce.h"
#include "src/optim/adam.h"
#include "src/tensor/factories.h"

namespace lockstep::metrics {
namespace {

double accuracy(nn::Linear& probe, const Tensor& features, const Tensor& labels) {
  NoGradGuard no_grad;
  const std::vector<std::int64_t> predicted = argmax(probe(features), 1).to_vector<std::int64_t>();
  const std::vector<std::int64_t> truth = labels.to_vector<std::int64_t>();
  std::int64_t correct = 0;
  for (std::size_t i = 0; i < truth.size(); ++i) correct += predicted[i] == truth[i];
  return static_cast<double>(correct) / static_cast<double>(std::max<std::size_t>(truth.size(), 1));
}

}  // namespace

LinearProbe linear_probe(const Tensor& train_features, const Tensor& train_labels,
                         const Tensor& test_features, const Tensor& test_labels, std::int64_t classes,
                         std::int64_t epochs, std::uint64_t seed) {
  LOCKSTEP_CHECK(
      train_features.dim() == 2 && test_features.dim() == 2 &&
          train_features.size(1) == test_features.size(1) && train_labels.numel() == train_features.size(0) &&
          test_labels.numel() == test_features.size(0) && train_features.size(0) >= 2 && classes >= 2,
      ValueError,
      "linear_probe: expected features [N, D] and [M, D] with N >= 2 and one label each, and at least 2 "
      "classes, but got ",
      shape_str(train_features.shape()), ", ", shape_str(test_features.shape()), " and ", classes,
      " classes");
  const Tensor train = train_features.detach().to(DType::f32);
  const Tensor mu = mean(train, {0}, KeepDim::kYes);
  const Tensor sd = sqrt(var(train, {0}, 1, KeepDim::kYes) + 1e-8);
  const Tensor x_train = (train - mu) / sd;
  const Tensor x_test = (test_features.detach().to(DType::f32) - mu) / sd;

  Generator init(seed);
  nn::Linear probe(x_train.size(1), classes);
  {
    NoGradGuard no_grad;
    Tensor weight = probe.weight(), bias = probe.bias();
    weight.copy_(randn(weight.shape(), 0.0, 0.01, DType::f32, kCPU, &init));
    bias.zero_();
  }
  optim::Adam adam(probe.named_parameters(), {.lr = 1e-2});
  const std::int64_t n = x_train.size(0);
  std::vector<std::int64_t> order(static_cast<std::size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::mt19937_64 shuffle(seed);
  constexpr std::int64_t kBatch = 256;
  for (std::int64_t epoch = 0; epoch < epochs; ++epoch) {
    std::shuffle(order.begin(), order.end(), shuffle);
    for (std::int64_t start = 0; start < n; start += kBatch) {
      const std::vector<std::int64_t> rows(order.begin() + start,
                                           order.begin() + std::min(n, start + kBatch));
      const Tensor index = from_vector(rows, {static_cast<std::int64_t>(rows.size())});
      adam.zero_grad();
      cross_entropy(probe(index_select(x_train, 0, index)), index_select(train_labels, 0, index)).backward();
      adam.step();
    }
  }
  return {accuracy(probe, x_train, train_labels), accuracy(probe, x_test, test_labels)};
}

}  // namespace lockstep::metrics
