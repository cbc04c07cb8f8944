// Activation layers: each forward is one call into src/ops/activation.h.
#include "src/nn/activation.h"

#include "src/core/error.h"
#include "src/ops/activation.h"
#include "src/tensor/factories.h"

namespace lockstep::nn {

ReLU::ReLU() : Module("ReLU") {}
Tensor ReLU::forward(const Tensor& input) { return relu(input); }

LeakyReLU::LeakyReLU(double slope) : Module("LeakyReLU"), slope_(slope) {}
Tensor LeakyReLU::forward(const Tensor& input) { return leaky_relu(input, slope_); }
std::string LeakyReLU::describe() const { return str_cat("slope=", slope_); }

PReLU::PReLU(std::int64_t num_parameters, double init) : Module("PReLU") {
  LOCKSTEP_CHECK(num_parameters > 0, ValueError, "PReLU: expected a positive number of parameters, but got ",
                 num_parameters);
  weight_ = register_parameter("weight", full({num_parameters}, init));
}
Tensor PReLU::forward(const Tensor& input) { return prelu(input, weight_); }
std::string PReLU::describe() const { return str_cat("num_parameters=", weight_.numel()); }

ELU::ELU(double alpha) : Module("ELU"), alpha_(alpha) {}
Tensor ELU::forward(const Tensor& input) { return elu(input, alpha_); }
std::string ELU::describe() const { return str_cat("alpha=", alpha_); }

Sigmoid::Sigmoid() : Module("Sigmoid") {}
Tensor Sigmoid::forward(const Tensor& input) { return sigmoid(input); }

Tanh::Tanh() : Module("Tanh") {}
Tensor Tanh::forward(const Tensor& input) { return tanh(input); }

Hardtanh::Hardtanh(double lo, double hi) : Module("Hardtanh"), lo_(lo), hi_(hi) {
  LOCKSTEP_CHECK(lo < hi, ValueError, "Hardtanh: expected lo < hi, but got lo=", lo, ", hi=", hi);
}
Tensor Hardtanh::forward(const Tensor& input) { return hardtanh(input, lo_, hi_); }
std::string Hardtanh::describe() const { return str_cat("lo=", lo_, ", hi=", hi_); }

Softplus::Softplus(double beta, double threshold) : Module("Softplus"), beta_(beta), threshold_(threshold) {
  LOCKSTEP_CHECK(beta > 0, ValueError, "Softplus: expected beta > 0, but got ", beta);
}
Tensor Softplus::forward(const Tensor& input) { return softplus(input, beta_, threshold_); }
std::string Softplus::describe() const { return str_cat("beta=", beta_, ", threshold=", threshold_); }

}  // namespace lockstep::nn
