// Learning-rate schedules as pure functions of the step (resuming = restoring the step), an optional linear
// warm-up in front of any of them, and LRScheduler, which applies one to an optimizer step by step.
#pragma once

#include <cstdint>
#include <vector>

#include "src/nn/state_dict.h"
#include "src/optim/optimizer.h"

namespace lockstep::optim {

// The learning rate at step t (t = 0 before the first scheduler step) for a base learning rate. A value
// type; thread-safe for concurrent reads. Factories raise ValueError naming the bad argument.
class Schedule {
 public:
  // base at every step.
  static Schedule constant();
  // base * gamma^floor(t / step_size) (torch StepLR). step_size > 0, gamma > 0.
  static Schedule step_decay(std::int64_t step_size, double gamma);
  // base * gamma^(number of milestones <= t) (torch MultiStepLR). Milestones > 0, increasing; gamma > 0.
  static Schedule multi_step(std::vector<std::int64_t> milestones, double gamma);
  // base * gamma^t (torch ExponentialLR). gamma > 0.
  static Schedule exponential(double gamma);
  // base * (1 + (end_factor - 1) * min(t, T) / T): linear from base to base * end_factor over T steps, then
  // constant. total_steps T > 0, end_factor >= 0.
  static Schedule linear_decay(std::int64_t total_steps, double end_factor);
  // min_lr + (base - min_lr) * (1 + cos(pi * min(t, T) / T)) / 2: half a cosine from base to min_lr over T
  // steps, then min_lr (torch CosineAnnealingLR without restarts). total_steps T > 0, min_lr >= 0.
  static Schedule cosine(std::int64_t total_steps, double min_lr);

  // This schedule behind a linear warm-up of W steps (Goyal et al.'s large-batch rule): for t < W the lr is
  // base * (s + (1 - s) * t / W); from t = W on it is this schedule at step t - W, so a decay's total_steps
  // count the steps after the warm-up. warmup_steps W > 0, start_factor s in [0, 1]; one warm-up only.
  Schedule with_warmup(std::int64_t warmup_steps, double start_factor) const;

  double lr(double base_lr, std::int64_t step) const;

 private:
  enum class Kind { kConstant, kStepDecay, kMultiStep, kExponential, kLinearDecay, kCosine };
  explicit Schedule(Kind kind) : kind_(kind) {}

  Kind kind_;
  std::int64_t steps_ = 0;  // step_size or total_steps
  double factor_ = 1.0;     // gamma, end_factor or min_lr
  std::vector<std::int64_t> milestones_;
  std::int64_t warmup_steps_ = 0;
  double warmup_start_ = 1.0;
};

// Sets an optimizer's learning rate from a Schedule. The base lr is the optimizer's lr at construction, and
// the constructor already applies the lr of step 0. Refers to the optimizer, which must outlive it; not
// thread-safe.
//
// State dict: `step` (i64, 0-dim) and `base_lr` (f64, 0-dim).
class LRScheduler {
 public:
  LRScheduler(Optimizer& optimizer, Schedule schedule);

  // Advances one step and sets the optimizer's lr to the schedule's value there.
  void step();
  // Steps taken (0 after construction).
  std::int64_t last_step() const { return step_; }
  double base_lr() const { return base_lr_; }
  // The lr at last_step().
  double lr() const { return schedule_.lr(base_lr_, step_); }
  const Schedule& schedule() const { return schedule_; }

  nn::StateDict state_dict() const;
  // Restores the step and base lr and sets the optimizer's lr accordingly. Missing, unexpected or malformed
  // entries are listed in one ValueError before anything changes.
  void load_state_dict(const nn::StateDict& state);

 private:
  Optimizer* optimizer_;
  Schedule schedule_;
  double base_lr_;
  std::int64_t step_ = 0;
};

}  // namespace lockstep::optim
