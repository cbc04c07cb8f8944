// Parameter initialisers with PyTorch's formulas (torch.nn.init), filling in place outside autograd.
#include "src/nn/init.h"

#include <cmath>

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

void kaiming_normal_(const Tensor& t, double a, FanMode mode, Generator* gen) {
  nn::normal_(t, 0.0, kaiming_std("nn::kaiming_normal_", t, a, mode), gen);
}

}  // namespace lockstep::nn
