// Parameter initialisers with PyTorch's formulas (torch.nn.init), filling in place outside autograd.
#include "src/nn/init.h"

#include <cmath>
#include <vector>

#include "src/autograd/grad_mode.h"
#include "src/core/error.h"

namespace lockstep::nn {

namespace {

std::int64_t receptive_field(const char* where, const Tensor& t) {
  LOCKSTEP_CHECK(t.dim() >= 2, ValueError, where,
                 ": expected a tensor with at least 2 dimensions, but got shape ", shape_str(t.shape()),
                 ". Fans are defined for weights [out, in, ...]");
  std::int64_t field = 1;
  for (std::int64_t d = 2; d < t.dim(); ++d) field *= t.size(d);
  return field;
}

double kaiming_std(const char* where, const Tensor& t, double a, FanMode mode) {
  const std::int64_t fan = mode == FanMode::kFanIn ? fan_in(t) : fan_out(t);
  LOCKSTEP_CHECK(fan > 0, ValueError, where, ": expected a tensor with a positive fan, but got shape ",
                 shape_str(t.shape()));
  return std::sqrt(2.0 / (1.0 + a * a)) / std::sqrt(static_cast<double>(fan));
}

double xavier_std(const char* where, const Tensor& t, double gain) {
  const std::int64_t fans = fan_in(t) + fan_out(t);
  LOCKSTEP_CHECK(fans > 0, ValueError, where, ": expected a tensor with positive fans, but got shape ",
                 shape_str(t.shape()));
  return gain * std::sqrt(2.0 / static_cast<double>(fans));
}

}  // namespace

std::int64_t fan_in(const Tensor& t) {
  const std::int64_t field = receptive_field("nn::fan_in", t);
  return t.size(1) * field;
}

std::int64_t fan_out(const Tensor& t) {
  const std::int64_t field = receptive_field("nn::fan_out", t);
  return t.size(0) * field;
}

void constant_(const Tensor& t, double value) {
  NoGradGuard no_grad;
  Tensor(t).fill_(value);
}

void zeros_(const Tensor& t) { constant_(t, 0.0); }

void ones_(const Tensor& t) { constant_(t, 1.0); }

void xavier_uniform_(const Tensor& t, double gain, Generator* gen) {
  const double bound = std::sqrt(3.0) * xavier_std("nn::xavier_uniform_", t, gain);
  nn::uniform_(t, -bound, bound, gen);
}

void xavier_normal_(const Tensor& t, double gain, Generator* gen) {
  nn::normal_(t, 0.0, xavier_std("nn::xavier_normal_", t, gain), gen);
}

void kaiming_uniform_(const Tensor& t, double a, FanMode mode, Generator* gen) {
  const double bound = std::sqrt(3.0) * kaiming_std("nn::kaiming_uniform_", t, a, mode);
  nn::uniform_(t, -bound, bound, gen);
}

void orthogonal_(const Tensor& t, Generator* gen) {
  LOCKSTEP_CHECK(t.dim() == 2 && t.numel() > 0, ValueError,
                 "nn::orthogonal_: expected a non-empty 2-d tensor, but got ", shape_str(t.shape()));
  // Orthonormalise the shorter dimension's vectors (each of length n), in f64.
  const bool by_rows = t.size(0) <= t.size(1);
  const std::int64_t count = by_rows ? t.size(0) : t.size(1), n = by_rows ? t.size(1) : t.size(0);
  std::vector<double> v = randn({count, n}, 0.0, 1.0, DType::f64, kCPU, gen).to_vector<double>();
  for (std::int64_t i = 0; i < count; ++i) {
    double* vi = v.data() + i * n;
    for (std::int64_t j = 0; j < i; ++j) {
      const double* vj = v.data() + j * n;
      double dot = 0.0;
      for (std::int64_t k = 0; k < n; ++k) dot += vi[k] * vj[k];
      for (std::int64_t k = 0; k < n; ++k) vi[k] -= dot * vj[k];
    }
    double norm = 0.0;
    for (std::int64_t k = 0; k < n; ++k) norm += vi[k] * vi[k];
    norm = std::sqrt(norm);
    for (std::int64_t k = 0; k < n; ++k) vi[k] /= norm;
  }
  Tensor q = from_vector(v, {count, n});
  if (!by_rows) q = q.transpose(0, 1).contiguous();
  NoGradGuard no_grad;
  Tensor(t).copy_(q.to(t.dtype()));
}

void kaiming_normal_(const Tensor& t, double a, FanMode mode, Generator* gen) {
  nn::normal_(t, 0.0, kaiming_std("nn::kaiming_normal_", t, a, mode), gen);
}

}  // namespace lockstep::nn
