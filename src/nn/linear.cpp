// Linear: parameter set-up with PyTorch's default initialisation and the forward on ops::linear.
#include "src/nn/linear.h"

#include <cmath>

#include "src/core/error.h"
#include "src/ops/linalg.h"

namespace lockstep::nn {

Linear::Linear(std::int64_t in, std::int64_t out, Bias bias) : Module("Linear"), in_(in), out_(out) {
  LOCKSTEP_CHECK(in > 0 && out > 0, ValueError,
                 "Linear: expected positive in and out features, but got in=", in, ", out=", out);
  const double bound = 1.0 / std::sqrt(static_cast<double>(in));
  weight_ = register_parameter("weight", empty({out, in}));
  nn::uniform_(weight_, -bound, bound);
  if (bias == Bias::kYes) {
    bias_ = register_parameter("bias", empty({out}));
    nn::uniform_(bias_, -bound, bound);
  }
}

Tensor Linear::forward(const Tensor& input) { return linear(input, weight_, bias_); }

std::string Linear::describe() const {
  return str_cat("in=", in_, ", out=", out_, bias_.defined() ? "" : ", bias=no");
}

}  // namespace lockstep::nn
