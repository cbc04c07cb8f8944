// Embedding: a [num, dim] table initialised N(0, 1) and looked up with ops::embedding.
#include "src/nn/embedding.h"

#include "src/core/error.h"
#include "src/nn/init.h"
#include "src/ops/index.h"

namespace lockstep::nn {

Embedding::Embedding(std::int64_t num, std::int64_t dim) : Module("Embedding"), num_(num), dim_(dim) {
  LOCKSTEP_CHECK(num > 0 && dim > 0, ValueError,
                 "Embedding: expected positive num and dim, but got num=", num, ", dim=", dim);
  weight_ = register_parameter("weight", empty({num, dim}));
  nn::normal_(weight_, 0.0, 1.0);
}

Tensor Embedding::forward(const Tensor& input) { return embedding(weight_, input); }

std::string Embedding::describe() const { return str_cat("num=", num_, ", dim=", dim_); }

}  // namespace lockstep::nn
