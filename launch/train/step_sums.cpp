#include "launch/train/step_sums.h"

#include <algorithm>

#include "src/core/error.h"
#include "src/ops/elementwise.h"
#include "src/tensor/factories.h"

namespace lockstep::launch {

void StepSums::add(std::size_t i, double value) {
  LOCKSTEP_CHECK(i < size(), ValueError, "StepSums::add: expected a figure below ", size(), ", but got ", i);
  if (pending_[i].defined()) {
    pending_[i] = pending_[i] + value;
  } else {
    values_[i] += value;
  }
}

void StepSums::add(std::size_t i, const Tensor& figure, double factor) {
  LOCKSTEP_CHECK(i < size(), ValueError, "StepSums::add: expected a figure below ", size(), ", but got ", i);
  LOCKSTEP_CHECK(figure.numel() == 1, ValueError, "StepSums::add: expected a figure of one element, but got ",
                 shape_str(figure.shape()));
  if (figure.device().is_cpu()) {
    add(i, figure.item() * factor);
    return;
  }
  // f64 products and sums, one operation each, as the host would make them.
  Tensor added = figure.detach().reshape({}).to(DType::f64);
  if (factor != 1.0) added = added * factor;
  if (pending_[i].defined() && pending_[i].device() != figure.device()) values();
  if (!pending_[i].defined()) pending_[i] = scalar_tensor(values_[i], DType::f64, figure.device());
  pending_[i] = pending_[i] + added;
}

bool StepSums::pending() const {
  return std::any_of(pending_.begin(), pending_.end(), [](const Tensor& t) { return t.defined(); });
}

std::span<const double> StepSums::values() {
  for (std::size_t i = 0; i < size(); ++i) {
    if (!pending_[i].defined()) continue;
    values_[i] = pending_[i].item();
    pending_[i] = Tensor();
  }
  return values_;
}

void StepSums::assign(std::span<const double> sums) {
  LOCKSTEP_CHECK(sums.size() == size(), ValueError, "StepSums::assign: expected ", size(), " sums, but got ",
                 sums.size());
  std::copy(sums.begin(), sums.end(), values_.begin());
  std::fill(pending_.begin(), pending_.end(), Tensor());
}

}  // namespace lockstep::launch
