// Registry of op cases and reproducible input generation for them.
#include "tests/support/op_case.h"

#include <algorithm>
#include <random>

#include "src/tensor/factories.h"

namespace lockstep::test {

namespace {
std::vector<OpCase>& registry() {
  static std::vector<OpCase> cases;
  return cases;
}

std::int64_t flat_index(const Shape& shape, std::initializer_list<std::int64_t> idx) {
  std::int64_t flat = 0;
  std::size_t d = 0;
  for (auto i : idx) flat = flat * shape[d++] + i;
  return flat;
}
}  // namespace

double& RefArray::at(std::initializer_list<std::int64_t> idx) { return data[static_cast<std::size_t>(flat_index(shape, idx))]; }
double RefArray::at(std::initializer_list<std::int64_t> idx) const {
  return data[static_cast<std::size_t>(flat_index(shape, idx))];
}

InputSpec uniform(Shape shape, double lo, double hi) { return {std::move(shape), InputSpec::Kind::kUniform, lo, hi}; }
InputSpec away_from_zero(Shape shape, double lo, double hi) {
  return {std::move(shape), InputSpec::Kind::kAwayFromZero, lo, hi};
}
InputSpec distinct(Shape shape, double lo, double hi) { return {std::move(shape), InputSpec::Kind::kDistinct, lo, hi}; }
InputSpec index(Shape shape, std::int64_t hi) {
  return {std::move(shape), InputSpec::Kind::kIndex, 0.0, static_cast<double>(hi), false};
}
InputSpec mask(Shape shape) { return {std::move(shape), InputSpec::Kind::kMask, 0.0, 2.0, false}; }
InputSpec constant_input(InputSpec spec) {
  spec.differentiable = false;
  return spec;
}

bool register_op_cases(std::vector<OpCase> cases) {
  for (auto& c : cases) registry().push_back(std::move(c));
  return true;
}

const std::vector<OpCase>& all_op_cases() { return registry(); }

void make_inputs(const OpCase& c, DType dtype, std::vector<Tensor>& tensors, std::vector<RefArray>& refs) {
  std::mt19937_64 rng(std::hash<std::string>{}(c.name));
  tensors.clear();
  refs.clear();
  for (const auto& spec : c.inputs) {
    RefArray r(spec.shape);
    std::uniform_real_distribution<double> u(spec.lo, spec.hi);
    switch (spec.kind) {
      case InputSpec::Kind::kUniform:
        for (auto& v : r.data) v = u(rng);
        break;
      case InputSpec::Kind::kAwayFromZero:
        for (auto& v : r.data) v = (rng() & 1 ? 1.0 : -1.0) * u(rng);
        break;
      case InputSpec::Kind::kDistinct: {
        const double n = static_cast<double>(std::max<std::int64_t>(r.numel(), 1));
        for (std::size_t i = 0; i < r.data.size(); ++i) r.data[i] = spec.lo + (spec.hi - spec.lo) * (static_cast<double>(i) + 0.5) / n;
        std::shuffle(r.data.begin(), r.data.end(), rng);
        break;
      }
      case InputSpec::Kind::kIndex: {
        std::uniform_int_distribution<std::int64_t> ui(static_cast<std::int64_t>(spec.lo),
                                                       static_cast<std::int64_t>(spec.hi) - 1);
        for (auto& v : r.data) v = static_cast<double>(ui(rng));
        break;
      }
      case InputSpec::Kind::kMask:
        for (auto& v : r.data) v = static_cast<double>(rng() & 1);
        break;
    }
    const DType t = spec.kind == InputSpec::Kind::kIndex ? DType::i64
                    : spec.kind == InputSpec::Kind::kMask ? DType::u8
                                                          : dtype;
    Tensor x = from_vector(r.data, spec.shape, t);
    // Round the reference to what the tensor holds (f32 inputs), so forward tests compare like with like.
    r.data = x.to_vector<double>();
    tensors.push_back(x);
    refs.push_back(std::move(r));
  }
}

RefArray to_ref(const Tensor& t) {
  RefArray r;
  r.shape = t.shape();
  r.data = t.to_vector<double>();
  return r;
}

}  // namespace lockstep::test
