// The fully connected layer y = x W^T + b.
#pragma once

#include <cstdint>
#include <string>

#include "src/nn/init.h"
#include "src/nn/module.h"

namespace lockstep::nn {

// Owns weight [out, in] and bias [out] (undefined with Bias::kNo), both U(-1/sqrt(in), 1/sqrt(in)) as in
// PyTorch. Not thread-safe.
class Linear : public Module {
 public:
  Linear(std::int64_t in, std::int64_t out, Bias bias = Bias::kYes);

  // x [..., in] -> [..., out].
  Tensor forward(const Tensor& input) override;

  const Tensor& weight() const { return weight_; }
  const Tensor& bias() const { return bias_; }
  std::int64_t in_features() const { return in_; }
  std::int64_t out_features() const { return out_; }

 protected:
  std::string describe() const override;

 private:
  std::int64_t in_;
  std::int64_t out_;
  Tensor weight_;
  Tensor bias_;
};

}  // namespace lockstep::nn
