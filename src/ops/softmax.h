// Softmax and log-softmax along one dimension: max-subtracted (stable), with fused backward kernels.
#pragma once

#include <cstdint>

#include "src/tensor/tensor.h"

namespace lockstep {

// exp(x - max) / sum(exp(x - max)) along `dim`.
Tensor softmax(const Tensor& x, std::int64_t dim);
// x - max - log(sum(exp(x - max))) along `dim`.
Tensor log_softmax(const Tensor& x, std::int64_t dim);

}  // namespace lockstep
