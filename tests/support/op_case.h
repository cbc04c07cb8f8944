// The op test table: every differentiable op registers cases here (one file per op family), and one driver
// turns each case into a forward test against a naive double-precision reference (f64 and f32), a
// central-difference gradient check in f64, a second-order gradient check in f64 (OpGradGrad), and (with
// CUDA) a CUDA-versus-CPU test.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "src/tensor/tensor.h"

namespace lockstep::test {

// A dense row-major array of doubles: the currency of reference implementations.
struct RefArray {
  Shape shape;
  std::vector<double> data;

  RefArray() = default;
  explicit RefArray(Shape s, double fill = 0.0) : shape(std::move(s)), data(static_cast<std::size_t>(numel_of(shape)), fill) {}
  std::int64_t numel() const { return static_cast<std::int64_t>(data.size()); }
  std::int64_t size(std::int64_t d) const { return shape[static_cast<std::size_t>(d)]; }
  // Element at a multi-index (row-major).
  double& at(std::initializer_list<std::int64_t> idx);
  double at(std::initializer_list<std::int64_t> idx) const;
  double& operator[](std::int64_t i) { return data[static_cast<std::size_t>(i)]; }
  double operator[](std::int64_t i) const { return data[static_cast<std::size_t>(i)]; }
};

// How to draw one input. Floating inputs are differentiable unless `differentiable` is false.
struct InputSpec {
  enum class Kind {
    kUniform,       // uniform in [lo, hi)
    kAwayFromZero,  // |x| uniform in [lo, hi) with a random sign (avoids the kinks of abs, relu, ...)
    kDistinct,      // a shuffled grid of well-separated values in [lo, hi) (no ties for max, sort, ...)
    kIndex,         // i64 uniform integers in [lo, hi)
    kMask,          // u8 0/1
  };
  Shape shape;
  Kind kind = Kind::kUniform;
  double lo = -1.0;
  double hi = 1.0;
  bool differentiable = true;
};

InputSpec uniform(Shape shape, double lo = -1.0, double hi = 1.0);
InputSpec away_from_zero(Shape shape, double lo = 0.2, double hi = 1.0);
InputSpec distinct(Shape shape, double lo = -1.0, double hi = 1.0);
InputSpec index(Shape shape, std::int64_t hi);  // in [0, hi)
InputSpec mask(Shape shape);
InputSpec constant_input(InputSpec spec);       // the same spec, not differentiated

struct OpCase {
  std::string name;  // unique, "family.op/variant" (letters, digits, '_', '.', '/')
  std::vector<InputSpec> inputs;
  std::function<Tensor(const std::vector<Tensor>&)> fn;
  std::function<RefArray(const std::vector<RefArray>&)> reference;
  double rtol_f32 = 1e-4;
  double atol_f32 = 1e-5;
  bool check_grad = true;    // false for non-differentiable outputs (argmax, comparisons)
  double grad_rtol = 1e-5;   // of the central difference, in f64
  double grad_atol = 1e-6;
  // Why the case has no second-order gradient check (OpGradGrad); empty when it has one. Only for cases where
  // the check is impossible, not merely where the second derivative is zero.
  std::string no_gradgrad = {};
};

// Registers cases at static-initialisation time; returns a dummy so it can initialise a variable.
bool register_op_cases(std::vector<OpCase> cases);
const std::vector<OpCase>& all_op_cases();

// Makes the inputs of `c` as tensors of `dtype` (floating inputs) and as reference arrays, reproducibly.
void make_inputs(const OpCase& c, DType dtype, std::vector<Tensor>& tensors, std::vector<RefArray>& refs);
RefArray to_ref(const Tensor& t);

}  // namespace lockstep::test

#define LOCKSTEP_OP_CASES_CONCAT_(a, b) a##b
#define LOCKSTEP_OP_CASES_CONCAT(a, b) LOCKSTEP_OP_CASES_CONCAT_(a, b)
// LOCKSTEP_OP_CASES(family) { return std::vector<OpCase>{...}; }
#define LOCKSTEP_OP_CASES(family)                                                                  \
  static std::vector<::lockstep::test::OpCase> lockstep_op_cases_##family();                       \
  [[maybe_unused]] static const bool LOCKSTEP_OP_CASES_CONCAT(lockstep_op_cases_registered_, family) = \
      ::lockstep::test::register_op_cases(lockstep_op_cases_##family());                           \
  static std::vector<::lockstep::test::OpCase> lockstep_op_cases_##family()
