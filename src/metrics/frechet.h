// The Fréchet distance between two Gaussians fitted to feature vectors (the statistic behind FID):
// fit_gaussian turns features [N, D] into a mean and covariance, frechet_distance compares two of them.
#pragma once

#include <cstdint>
#include <vector>

#include "src/tensor/tensor.h"

namespace lockstep::metrics {

// A Gaussian in D dimensions: mean [D] and covariance [D, D] row-major, in f64. Plain data.
struct Gaussian {
  std::vector<double> mean;
  std::vector<double> cov;
  std::int64_t dim = 0;
};

// Mean and unbiased covariance (divisor N - 1) of the rows of features [N, D] (f32 or f64, any device,
// N >= 2), accumulated in f64.
Gaussian fit_gaussian(const Tensor& features);

// |mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^{1/2}), with Tr((S1 S2)^{1/2}) computed in the symmetric form
// sum_i sqrt(lambda_i(A S2 A)), A = S1^{1/2}, eigenvalues clamped at 0; the result is clamped at 0 too.
// Both Gaussians must have the same dimension.
double frechet_distance(const Gaussian& a, const Gaussian& b);

}  // namespace lockstep::metrics
