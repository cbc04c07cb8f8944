// The Embedding layer: a lookup table of learned vectors indexed by i64 ids.
#pragma once

#include <cstdint>
#include <string>

#include "src/nn/module.h"

namespace lockstep::nn {

// Owns weight [num, dim], N(0, 1) as in PyTorch. Not thread-safe.
class Embedding : public Module {
 public:
  Embedding(std::int64_t num, std::int64_t dim);

  // indices (i64, any shape) -> [..indices.shape, dim].
  Tensor forward(const Tensor& input) override;

  const Tensor& weight() const { return weight_; }

 protected:
  std::string describe() const override;

 private:
  std::int64_t num_;
  std::int64_t dim_;
  Tensor weight_;
};

}  // namespace lockstep::nn
