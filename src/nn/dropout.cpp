// Dropout: the training flag picks between ops::dropout's training and evaluation modes.
#include "src/nn/dropout.h"

#include "src/core/error.h"
#include "src/ops/dropout.h"

namespace lockstep::nn {

Dropout::Dropout(double p) : Module("Dropout"), p_(p) {
  LOCKSTEP_CHECK(p >= 0.0 && p <= 1.0, ValueError, "Dropout: expected a probability p in [0, 1], but got ",
                 p);
}

Tensor Dropout::forward(const Tensor& input) {
  return dropout(input, p_, is_training() ? DropoutMode::kTrain : DropoutMode::kEval);
}

std::string Dropout::describe() const { return str_cat("p=", p_); }

}  // namespace lockstep::nn
