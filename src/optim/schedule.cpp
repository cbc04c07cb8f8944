// Learning-rate schedules in closed form, the warm-up composition, and the scheduler's state dict.
#include "src/optim/schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <string>
#include <utility>

#include "src/tensor/factories.h"

namespace lockstep::optim {
namespace {

constexpr const char* kStepKey = "step";
constexpr const char* kBaseLrKey = "base_lr";

void check_arg(bool ok, const char* where, const char* name, const char* condition, double value) {
  LOCKSTEP_CHECK(ok, ValueError, where, ": expected ", name, " ", condition, ", but got ", name, "=", value);
}

}  // namespace

Schedule Schedule::constant() { return Schedule(Kind::kConstant); }

Schedule Schedule::step_decay(std::int64_t step_size, double gamma) {
  check_arg(step_size > 0, "Schedule::step_decay", "step_size", "> 0", static_cast<double>(step_size));
  check_arg(gamma > 0.0, "Schedule::step_decay", "gamma", "> 0", gamma);
  Schedule s(Kind::kStepDecay);
  s.steps_ = step_size;
  s.factor_ = gamma;
  return s;
}

Schedule Schedule::multi_step(std::vector<std::int64_t> milestones, double gamma) {
  for (std::size_t i = 0; i < milestones.size(); ++i) {
    const std::int64_t previous = i == 0 ? 0 : milestones[i - 1];
    LOCKSTEP_CHECK(
        milestones[i] > previous, ValueError,
        "Schedule::multi_step: expected positive, strictly increasing milestones, but got milestone ",
        milestones[i], " at index ", i, " after ", previous);
  }
  check_arg(gamma > 0.0, "Schedule::multi_step", "gamma", "> 0", gamma);
  Schedule s(Kind::kMultiStep);
  s.milestones_ = std::move(milestones);
  s.factor_ = gamma;
  return s;
}

Schedule Schedule::exponential(double gamma) {
  check_arg(gamma > 0.0, "Schedule::exponential", "gamma", "> 0", gamma);
  Schedule s(Kind::kExponential);
  s.factor_ = gamma;
  return s;
}

Schedule Schedule::linear_decay(std::int64_t total_steps, double end_factor) {
  check_arg(total_steps > 0, "Schedule::linear_decay", "total_steps", "> 0",
            static_cast<double>(total_steps));
  check_arg(end_factor >= 0.0, "Schedule::linear_decay", "end_factor", ">= 0", end_factor);
  Schedule s(Kind::kLinearDecay);
  s.steps_ = total_steps;
  s.factor_ = end_factor;
  return s;
}

Schedule Schedule::cosine(std::int64_t total_steps, double min_lr) {
  check_arg(total_steps > 0, "Schedule::cosine", "total_steps", "> 0", static_cast<double>(total_steps));
  check_arg(min_lr >= 0.0, "Schedule::cosine", "min_lr", ">= 0", min_lr);
  Schedule s(Kind::kCosine);
  s.steps_ = total_steps;
  s.factor_ = min_lr;
  return s;
}

Schedule Schedule::with_warmup(std::int64_t warmup_steps, double start_factor) const {
  check_arg(warmup_steps > 0, "Schedule::with_warmup", "warmup_steps", "> 0",
            static_cast<double>(warmup_steps));
  check_arg(start_factor >= 0.0 && start_factor <= 1.0, "Schedule::with_warmup", "start_factor", "in [0, 1]",
            start_factor);
  LOCKSTEP_CHECK(warmup_steps_ == 0, ValueError,
                 "Schedule::with_warmup: expected a schedule without warm-up, but it already has ",
                 warmup_steps_, " warm-up steps");
  Schedule s = *this;
  s.warmup_steps_ = warmup_steps;
  s.warmup_start_ = start_factor;
  return s;
}

double Schedule::lr(double base_lr, std::int64_t step) const {
  LOCKSTEP_CHECK(step >= 0, ValueError, "Schedule::lr: expected step >= 0, but got step=", step);
  if (step < warmup_steps_) {
    const double progress = static_cast<double>(step) / static_cast<double>(warmup_steps_);
    return base_lr * (warmup_start_ + (1.0 - warmup_start_) * progress);
  }
  const std::int64_t t = step - warmup_steps_;
  switch (kind_) {
    case Kind::kConstant:
      return base_lr;
    case Kind::kStepDecay:
      return base_lr * std::pow(factor_, static_cast<double>(t / steps_));
    case Kind::kMultiStep: {
      const auto passed = std::upper_bound(milestones_.begin(), milestones_.end(), t) - milestones_.begin();
      return base_lr * std::pow(factor_, static_cast<double>(passed));
    }
    case Kind::kExponential:
      return base_lr * std::pow(factor_, static_cast<double>(t));
    case Kind::kLinearDecay: {
      const double progress = static_cast<double>(std::min(t, steps_)) / static_cast<double>(steps_);
      return base_lr * (1.0 + (factor_ - 1.0) * progress);
    }
    case Kind::kCosine: {
      const double progress = static_cast<double>(std::min(t, steps_)) / static_cast<double>(steps_);
      return factor_ + (base_lr - factor_) * (1.0 + std::cos(std::numbers::pi * progress)) / 2.0;
    }
  }
  return base_lr;
}

LRScheduler::LRScheduler(Optimizer& optimizer, Schedule schedule)
    : optimizer_(&optimizer), schedule_(std::move(schedule)), base_lr_(optimizer.lr()) {
  optimizer_->set_lr(lr());
}

void LRScheduler::step() {
  ++step_;
  optimizer_->set_lr(lr());
}

nn::StateDict LRScheduler::state_dict() const {
  nn::StateDict out;
  out.insert(kStepKey, scalar_tensor(static_cast<double>(step_), DType::i64));
  out.insert(kBaseLrKey, scalar_tensor(base_lr_, DType::f64));
  return out;
}

void LRScheduler::load_state_dict(const nn::StateDict& state) {
  std::string problems;
  const auto add = [&problems](const std::string& p) { problems += (problems.empty() ? "" : "; ") + p; };
  double step = 0.0, base_lr = 0.0;
  if (const Tensor* t = state.find(kStepKey); t == nullptr) {
    add(str_cat("missing key '", kStepKey, "'"));
  } else if (t->dim() != 0 || t->dtype() != DType::i64 || t->item() < 0.0) {
    add(str_cat("'", kStepKey, "' is ", dtype_name(t->dtype()), " ", shape_str(t->shape()),
                ", expected a 0-dim i64 tensor >= 0"));
  } else {
    step = t->item();
  }
  if (const Tensor* t = state.find(kBaseLrKey); t == nullptr) {
    add(str_cat("missing key '", kBaseLrKey, "'"));
  } else if (t->dim() != 0 || !is_floating(t->dtype()) || !(t->item() >= 0.0 && std::isfinite(t->item()))) {
    add(str_cat("'", kBaseLrKey, "' is ", dtype_name(t->dtype()), " ", shape_str(t->shape()),
                ", expected a finite 0-dim floating tensor >= 0"));
  } else {
    base_lr = t->item();
  }
  for (const auto& [key, tensor] : state) {
    if (key != kStepKey && key != kBaseLrKey) add(str_cat("unexpected key '", key, "'"));
  }
  LOCKSTEP_CHECK(
      problems.empty(), ValueError,
      "LRScheduler::load_state_dict: expected the keys 'step' and 'base_lr', but found: ", problems);
  step_ = static_cast<std::int64_t>(step);
  base_lr_ = base_lr;
  optimizer_->set_lr(lr());
}

}  // namespace lockstep::optim
