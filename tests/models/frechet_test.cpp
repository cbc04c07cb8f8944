// Tests of fit_gaussian and frechet_distance against closed forms and a numpy reference.
#include "src/metrics/frechet.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "src/tensor/factories.h"

namespace lockstep::metrics {
namespace {

Gaussian diagonal(std::vector<double> mean, const std::vector<double>& variances) {
  Gaussian g;
  g.dim = static_cast<std::int64_t>(mean.size());
  g.mean = std::move(mean);
  g.cov.assign(static_cast<std::size_t>(g.dim * g.dim), 0.0);
  for (std::int64_t i = 0; i < g.dim; ++i) g.cov[static_cast<std::size_t>(i * g.dim + i)] = variances[i];
  return g;
}

// The 8 x 5 feature matrices of the numpy reference (rng = np.random.default_rng(7); X1 = round(normal, 3),
// X2 = round(normal * 1.5 + 0.3, 3)).
const std::vector<double> kX1 = {0.001,  0.299,  -0.274, -0.891, -0.455, -0.992, 0.06,   1.34,
                                 -0.492, -0.62,  0.49,   0.357,  0.105,  -0.93,  -0.029, 0.695,
                                 -1.344, -0.458, -1.901, -1.29,  -1.842, -0.235, -1.267, 0.271,
                                 0.157,  -0.187, -2.517, -0.539, -0.049, 0.113,  -1.53,  -0.478,
                                 -0.979, -0.809, 1.061,  -0.808, -0.033, 0.884,  -0.584, -0.112};
const std::vector<double> kX2 = {0.466,  0.396, -1.538, 0.414,  2.338,  -2.021, 1.589,  0.479,
                                 -0.662, 3.301, 1.443,  -1.499, 0.412,  1.165,  0.017,  1.324,
                                 0.2,    1.301, 2.458,  -0.713, 0.605,  -0.395, 0.491,  -1.481,
                                 -0.569, 0.006, 1.648,  2.018,  -1.685, -0.892, 1.27,   -2.689,
                                 -0.395, 0.154, 2.186,  1.334,  -0.191, -0.253, -0.075, 2.585};

TEST(Frechet, FitGaussianMatchesNumpyMeanAndUnbiasedCov) {
  // numpy: X1.mean(0) and np.cov(X1, rowvar=False).
  const Gaussian g = fit_gaussian(from_vector(kX1, {8, 5}));
  ASSERT_EQ(g.dim, 5);
  const std::vector<double> mean = {-0.521625, -0.486375, -0.1485, -0.673125, -0.146875};
  for (int i = 0; i < 5; ++i) EXPECT_NEAR(g.mean[i], mean[i], 1e-15);
  const std::vector<double> row0 = {0.8503065535714286, -0.16949441071428573, 0.1431572142857143,
                                    -0.41129280357142856, -0.393177625};
  for (int j = 0; j < 5; ++j) {
    EXPECT_NEAR(g.cov[j], row0[j], 1e-14);
    EXPECT_EQ(g.cov[j * 5], g.cov[j]);
  }
  EXPECT_NEAR(g.cov[2 * 5 + 4], -0.2414850714285714, 1e-14);
}

TEST(Frechet, FitGaussianAcceptsF32AndManyRowBlocks) {
  // 1500 rows (several 512-row blocks): x_i = (i mod 3, 2 * (i mod 3) + 1); mean (1, 3) exactly since 1500
  // is a multiple of 3; var of {0,1,2} repeated = (2/3) * 1500 / 1499.
  std::vector<float> values;
  for (int i = 0; i < 1500; ++i) {
    values.push_back(static_cast<float>(i % 3));
    values.push_back(static_cast<float>(2 * (i % 3) + 1));
  }
  const Gaussian g = fit_gaussian(from_vector(values, {1500, 2}));
  const double var = (2.0 / 3.0) * 1500.0 / 1499.0;
  EXPECT_NEAR(g.mean[0], 1.0, 1e-12);
  EXPECT_NEAR(g.mean[1], 3.0, 1e-12);
  EXPECT_NEAR(g.cov[0], var, 1e-12);
  EXPECT_NEAR(g.cov[1], 2 * var, 1e-12);
  EXPECT_NEAR(g.cov[2], 2 * var, 1e-12);
  EXPECT_NEAR(g.cov[3], 4 * var, 1e-12);
}

TEST(Frechet, IdenticalGaussiansAreAtDistanceZero) {
  const Gaussian g = fit_gaussian(from_vector(kX1, {8, 5}));
  EXPECT_NEAR(frechet_distance(g, g), 0.0, 1e-12);
}

TEST(Frechet, OneDimensionalClosedForm) {
  // (mu1 - mu2)^2 + (s1 - s2)^2 with s the standard deviations: (1 - -2)^2 + (2 - 0.5)^2 = 9 + 2.25.
  EXPECT_NEAR(frechet_distance(diagonal({1.0}, {4.0}), diagonal({-2.0}, {0.25})), 11.25, 1e-12);
}

TEST(Frechet, DiagonalCovariancesClosedForm) {
  const Gaussian a = diagonal({0.0, 1.0, 2.0}, {1.0, 4.0, 9.0});
  const Gaussian b = diagonal({1.0, 1.0, 0.0}, {4.0, 1.0, 0.01});
  // |mu|^2 = 1 + 0 + 4; sum (sqrt a - sqrt b)^2 = 1 + 1 + 2.9^2.
  EXPECT_NEAR(frechet_distance(a, b), 5.0 + 2.0 + 8.41, 1e-12);
  EXPECT_NEAR(frechet_distance(b, a), 5.0 + 2.0 + 8.41, 1e-12);
}

TEST(Frechet, MatchesNumpyReferenceOnRandomFiveDimensionalCase) {
  // numpy 1.24 (offline, /usr/bin/python3): np.cov + eigh for sqrt(S1), eigvalsh(A S2 A), clamped sqrt sum:
  // FID = 6.3961353955453202, Tr sqrt = 5.0091977598166268 (np.linalg.eigvals(S1 @ S2) agrees to 2e-15).
  const Gaussian a = fit_gaussian(from_vector(kX1, {8, 5}));
  const Gaussian b = fit_gaussian(from_vector(kX2, {8, 5}, DType::f32));
  EXPECT_NEAR(frechet_distance(a, b), 6.3961353955453202, 1e-5);  // kX2 rounded to f32 here
  const Gaussian b64 = fit_gaussian(from_vector(kX2, {8, 5}));
  EXPECT_NEAR(frechet_distance(a, b64), 6.3961353955453202, 1e-12);
  EXPECT_NEAR(frechet_distance(b64, a), 6.3961353955453202, 1e-12);
}

TEST(Frechet, SingularCovarianceIsHandled) {
  // Rank-one covariances (fewer samples than dimensions would give the same): S1 = S2 = u u^T, equal means.
  Gaussian g;
  g.dim = 2;
  g.mean = {0.0, 0.0};
  g.cov = {1.0, 1.0, 1.0, 1.0};
  EXPECT_NEAR(frechet_distance(g, g), 0.0, 1e-12);
  // Against the zero covariance: Tr(S1) = 2.
  Gaussian zero = g;
  zero.cov = {0.0, 0.0, 0.0, 0.0};
  EXPECT_NEAR(frechet_distance(g, zero), 2.0, 1e-12);
}

TEST(Frechet, RejectsBadInput) {
  try {
    fit_gaussian(zeros({1, 4}));
    FAIL() << "expected ValueError";
  } catch (const ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("[1, 4]"), std::string::npos) << e.what();
  }
  EXPECT_THROW(fit_gaussian(zeros({6})), ValueError);
  EXPECT_THROW(fit_gaussian(zeros({3, 2}, DType::i64)), TypeError);
  try {
    frechet_distance(diagonal({0.0, 0.0}, {1.0, 1.0}), diagonal({0.0}, {1.0}));
    FAIL() << "expected ValueError";
  } catch (const ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("2 and 1"), std::string::npos) << e.what();
  }
  Gaussian broken = diagonal({0.0, 0.0}, {1.0, 1.0});
  broken.cov.pop_back();
  EXPECT_THROW(frechet_distance(broken, broken), ValueError);
}

}  // namespace
}  // namespace lockstep::metrics
