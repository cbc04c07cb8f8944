// Activation layers, thin modules over src/ops/activation.h: ReLU, LeakyReLU, PReLU (learned slope), ELU,
// Sigmoid, Tanh, Hardtanh, Softplus.
#pragma once

#include <cstdint>
#include <string>

#include "src/nn/module.h"

namespace lockstep::nn {

// The parameter-free activations own only their constants. None is thread-safe.
class ReLU : public Module {
 public:
  ReLU();
  Tensor forward(const Tensor& input) override;
};

class LeakyReLU : public Module {
 public:
  explicit LeakyReLU(double slope = 0.01);
  Tensor forward(const Tensor& input) override;

 protected:
  std::string describe() const override;

 private:
  double slope_;
};

// Owns weight [num_parameters] filled with `init`: one slope shared by all channels, or one per channel
// (dimension 1 of the input).
class PReLU : public Module {
 public:
  explicit PReLU(std::int64_t num_parameters = 1, double init = 0.25);
  Tensor forward(const Tensor& input) override;

  const Tensor& weight() const { return weight_; }

 protected:
  std::string describe() const override;

 private:
  Tensor weight_;
};

class ELU : public Module {
 public:
  explicit ELU(double alpha = 1.0);
  Tensor forward(const Tensor& input) override;

 protected:
  std::string describe() const override;

 private:
  double alpha_;
};

class Sigmoid : public Module {
 public:
  Sigmoid();
  Tensor forward(const Tensor& input) override;
};

class Tanh : public Module {
 public:
  Tanh();
  Tensor forward(const Tensor& input) override;
};

class Hardtanh : public Module {
 public:
  explicit Hardtanh(double lo = -1.0, double hi = 1.0);
  Tensor forward(const Tensor& input) override;

 protected:
  std::string describe() const override;

 private:
  double lo_;
  double hi_;
};

// log(1 + exp(beta * x)) / beta, linear above `threshold`.
class Softplus : public Module {
 public:
  explicit Softplus(double beta = 1.0, double threshold = 20.0);
  Tensor forward(const Tensor& input) override;

 protected:
  std::string describe() const override;

 private:
  double beta_;
  double threshold_;
};

}  // namespace lockstep::nn
