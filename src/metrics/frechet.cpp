// Gaussian fitting (blocked, BLAS syrk in f64) and the Fréchet distance through two symmetric
// eigen-decompositions (LAPACK dsyevd from OpenBLAS).
#include "src/metrics/frechet.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>

#include "src/core/error.h"

// LAPACK's symmetric eigen-solver (divide and conquer); the trailing arguments are the hidden lengths of
// the two character arguments in the gfortran calling convention.
extern "C" void dsyevd_(const char* jobz, const char* uplo, const int* n, double* a, const int* lda,
                        double* w, double* work, const int* lwork, int* iwork, const int* liwork, int* info,
                        std::size_t jobz_len, std::size_t uplo_len);

namespace lockstep::metrics {
namespace {

constexpr std::int64_t kRowBlock = 512;

enum class Vectors { kNo, kYes };

// Eigenvalues (ascending) of the symmetric n x n matrix `a`; with Vectors::kYes `a` is overwritten by the
// eigenvectors (row i of the row-major array is eigenvector i, since LAPACK stores them column-major).
std::vector<double> symmetric_eigen(std::vector<double>& a, std::int64_t n, Vectors vectors) {
  LOCKSTEP_CHECK(n <= std::numeric_limits<int>::max(), ValueError,
                 "frechet_distance: expected a dimension that fits LAPACK's int, but got ", n);
  const char jobz = vectors == Vectors::kYes ? 'V' : 'N';
  const char uplo = 'L';
  const int ni = static_cast<int>(n);
  std::vector<double> w(static_cast<std::size_t>(n));
  int info = 0;
  int lwork = -1, liwork = -1;
  double work_query = 0.0;
  int iwork_query = 0;
  dsyevd_(&jobz, &uplo, &ni, a.data(), &ni, w.data(), &work_query, &lwork, &iwork_query, &liwork, &info, 1,
          1);
  LOCKSTEP_CHECK(info == 0, ValueError,
                 "frechet_distance: expected dsyevd's workspace query to succeed, but got info=", info);
  lwork = static_cast<int>(work_query);
  liwork = iwork_query;
  std::vector<double> work(static_cast<std::size_t>(std::max(lwork, 1)));
  std::vector<int> iwork(static_cast<std::size_t>(std::max(liwork, 1)));
  dsyevd_(&jobz, &uplo, &ni, a.data(), &ni, w.data(), work.data(), &lwork, iwork.data(), &liwork, &info, 1,
          1);
  LOCKSTEP_CHECK(info == 0, ValueError,
                 "frechet_distance: expected the symmetric eigen-solver to converge, but dsyevd ",
                 "returned info=", info, ". Check the covariances for NaN or Inf.");
  return w;
}

void check_gaussian(const Gaussian& g, const char* which) {
  LOCKSTEP_CHECK(g.dim > 0 && static_cast<std::int64_t>(g.mean.size()) == g.dim &&
                     static_cast<std::int64_t>(g.cov.size()) == g.dim * g.dim,
                 ValueError, "frechet_distance: expected ", which,
                 " to hold a mean of dim entries and a dim x dim ", "covariance, but got dim=", g.dim,
                 ", mean of ", g.mean.size(), " and covariance of ", g.cov.size(), " entries");
}

}  // namespace

Gaussian fit_gaussian(const Tensor& features) {
  LOCKSTEP_CHECK(features.dim() == 2 && features.size(0) >= 2, ValueError,
                 "fit_gaussian: expected features [N, D] with N >= 2, but got shape ",
                 shape_str(features.shape()));
  LOCKSTEP_CHECK(features.dtype() == DType::f32 || features.dtype() == DType::f64, TypeError,
                 "fit_gaussian: expected f32 or f64 features, but got ", dtype_name(features.dtype()));
  const Tensor x = features.detach().to(kCPU).to(DType::f64).contiguous();
  const std::int64_t n = x.size(0), d = x.size(1);
  const double* data = x.data<double>();

  Gaussian g;
  g.dim = d;
  g.mean.assign(static_cast<std::size_t>(d), 0.0);
  for (std::int64_t i = 0; i < n; ++i) {
    const double* row = data + i * d;
    for (std::int64_t j = 0; j < d; ++j) g.mean[static_cast<std::size_t>(j)] += row[j];
  }
  for (double& m : g.mean) m /= static_cast<double>(n);

  // Upper triangle of sum_i (x_i - mu)(x_i - mu)^T over blocks of centred rows, then mirrored.
  g.cov.assign(static_cast<std::size_t>(d * d), 0.0);
  std::vector<double> block(static_cast<std::size_t>(std::min(n, kRowBlock) * d));
  for (std::int64_t start = 0; start < n; start += kRowBlock) {
    const std::int64_t rows = std::min(kRowBlock, n - start);
#pragma omp parallel for if (rows * d > 65536)
    for (std::int64_t i = 0; i < rows; ++i) {
      const double* src = data + (start + i) * d;
      double* dst = block.data() + i * d;
      for (std::int64_t j = 0; j < d; ++j) dst[j] = src[j] - g.mean[static_cast<std::size_t>(j)];
    }
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, static_cast<int>(d), static_cast<int>(rows), 1.0,
                block.data(), static_cast<int>(d), 1.0, g.cov.data(), static_cast<int>(d));
  }
  const double scale = 1.0 / static_cast<double>(n - 1);
  for (std::int64_t i = 0; i < d; ++i) {
    for (std::int64_t j = i; j < d; ++j) {
      const double v = g.cov[static_cast<std::size_t>(i * d + j)] * scale;
      g.cov[static_cast<std::size_t>(i * d + j)] = v;
      g.cov[static_cast<std::size_t>(j * d + i)] = v;
    }
  }
  return g;
}

double frechet_distance(const Gaussian& a, const Gaussian& b) {
  check_gaussian(a, "the first Gaussian");
  check_gaussian(b, "the second Gaussian");
  LOCKSTEP_CHECK(a.dim == b.dim, ValueError,
                 "frechet_distance: expected Gaussians of one dimension, but got ", a.dim, " and ", b.dim);
  const std::int64_t d = a.dim;
  const int di = static_cast<int>(d);

  double mean_term = 0.0, trace_term = 0.0;
  for (std::int64_t i = 0; i < d; ++i) {
    const double diff = a.mean[static_cast<std::size_t>(i)] - b.mean[static_cast<std::size_t>(i)];
    mean_term += diff * diff;
    trace_term += a.cov[static_cast<std::size_t>(i * d + i)] + b.cov[static_cast<std::size_t>(i * d + i)];
  }

  // S1 = V diag(w) V^T; A = S1^{1/2} = V diag(sqrt w) V^T. Rows of `v` are the eigenvectors.
  std::vector<double> v = a.cov;
  const std::vector<double> w = symmetric_eigen(v, d, Vectors::kYes);
  std::vector<double> scaled(v.size());
  for (std::int64_t k = 0; k < d; ++k) {
    const double s = std::sqrt(std::max(w[static_cast<std::size_t>(k)], 0.0));
    for (std::int64_t j = 0; j < d; ++j)
      scaled[static_cast<std::size_t>(k * d + j)] = s * v[static_cast<std::size_t>(k * d + j)];
  }
  std::vector<double> sqrt_a(v.size());
  cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, di, di, di, 1.0, v.data(), di, scaled.data(), di, 0.0,
              sqrt_a.data(), di);

  // M = A S2 A, symmetric up to rounding; its eigenvalues are those of S1 S2.
  std::vector<double> tmp(v.size()), m(v.size());
  cblas_dsymm(CblasRowMajor, CblasLeft, CblasUpper, di, di, 1.0, b.cov.data(), di, sqrt_a.data(), di, 0.0,
              tmp.data(), di);
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, di, di, di, 1.0, sqrt_a.data(), di, tmp.data(), di,
              0.0, m.data(), di);
  for (std::int64_t i = 0; i < d; ++i) {
    for (std::int64_t j = i + 1; j < d; ++j) {
      const double avg =
          0.5 * (m[static_cast<std::size_t>(i * d + j)] + m[static_cast<std::size_t>(j * d + i)]);
      m[static_cast<std::size_t>(i * d + j)] = avg;
      m[static_cast<std::size_t>(j * d + i)] = avg;
    }
  }
  const std::vector<double> lambda = symmetric_eigen(m, d, Vectors::kNo);
  double sqrt_trace = 0.0;
  for (const double l : lambda) sqrt_trace += std::sqrt(std::max(l, 0.0));

  return std::max(mean_term + trace_term - 2.0 * sqrt_trace, 0.0);
}

}  // namespace lockstep::metrics
