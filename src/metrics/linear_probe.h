// The linear probe of a representation: multinomial logistic regression trained on frozen features of the
// training split and scored on the test split (how linearly separable the classes are in the features).
#pragma once

#include <cstdint>

#include "src/tensor/tensor.h"

namespace lockstep::metrics {

struct LinearProbe {
  double train_accuracy = 0.0;
  double test_accuracy = 0.0;
};

// Features [N, D] (f32 or f64) and labels i64 [N] in [0, classes). The features are standardised with the
// training set's per-dimension mean and std; the probe is trained with Adam (lr 1e-2) on minibatches of 256
// for `epochs` epochs, the order drawn from `seed`.
LinearProbe linear_probe(const Tensor& train_features, const Tensor& train_labels,
                         const Tensor& test_features, const Tensor& test_labels, std::int64_t classes,
                         std::int64_t epochs = 20, std::uint64_t seed = 0);

}  // namespace lockstep::metrics
