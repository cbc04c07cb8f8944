// optim::Optimizer: the base of every optimizer. Holds the parameters by name, the learning rate and the
// per-parameter state (step count and slot tensors such as `exp_avg`), and exchanges it as a StateDict.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "src/core/threading.h"
#include "src/nn/module.h"
#include "src/nn/state_dict.h"
#include "src/ops/kernels.h"
#include "src/tensor/tensor.h"

namespace lockstep::optim {

// Which parameters weight decay applies to: by default only tensors with dim >= 2 (weights of linear and
// convolution layers), never biases or normalisation parameters; kAll decays every parameter.
enum class DecayPolicy { kWeightsOnly, kAll };

// Whether weight decay applies to one parameter (decided by the DecayPolicy and the parameter's rank).
enum class Decay { kNo, kYes };

// Owns the parameter handles (sharing storage with the model), the learning rate and the state of every
// parameter. Not thread-safe: step(), zero_grad() and the state-dict calls must not run concurrently.
//
// State dict layout: `lr` (f64, 0-dim), and for every parameter that has been updated at least once
// `<name>.step` (i64, 0-dim) and `<name>.<slot>` (the parameter's shape and dtype) for each slot.
class Optimizer {
 public:
  // A kind of state tensor (`exp_avg`, ...): one per parameter, of its shape and dtype, allocated on the
  // parameter's first update and filled with `initial`.
  struct Slot {
    std::string name;
    double initial = 0.0;
  };
  // The state of one parameter.
  struct ParamState {
    std::int64_t step = 0;      // updates done, including the one in progress during update()
    std::vector<Tensor> slots;  // in the order of the optimizer's slots; empty until the first update
  };

  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  // Updates every parameter that has a gradient (parameters whose grad is undefined are skipped and keep
  // their state). Runs without recording autograd history. Parameters must be contiguous f32 or f64 tensors,
  // on the CPU, or on a CUDA device for the optimizers with CUDA kernels (SGD, Adam, AdamW: one fused kernel
  // over all parameters); the others raise NotImplementedError naming the optimizer.
  virtual void step();
  // Drops every parameter's gradient (the next backward writes a fresh one).
  void zero_grad();

  double lr() const { return lr_; }
  // ValueError unless lr >= 0 (and finite).
  void set_lr(double lr);
  // The L1 penalty l1 * sum |p| over the parameters weight decay applies to (its DecayPolicy): step() adds
  // its subgradient l1 * sign(p) (0 at p = 0) to their gradients before every optimizer's update, as
  // coupled L2 weight decay is added. ValueError unless l1 >= 0 and finite. 0 (the default): none.
  void set_l1(double l1);
  double l1() const { return l1_; }
  const std::vector<nn::NamedTensor>& params() const { return params_; }
  // "SGD", "Adam", ...: the name used in error messages.
  const std::string& name() const { return name_; }
  // Times `param_name` has been updated (0 before its first gradient); IndexError for an unknown name.
  std::int64_t step_count(const std::string& param_name) const;

  // The slot tensors share storage with the optimizer; the scalars are fresh tensors.
  nn::StateDict state_dict() const;
  // Copies `state` in. Every unexpected key, missing key, shape, dtype or value problem is listed in one
  // ValueError before anything changes. A parameter without entries in `state` loses its state (as if it
  // had never been updated).
  void load_state_dict(const nn::StateDict& state);

 protected:
  // `params` must be defined floating-point tensors with unique names; `policy` picks the parameters that
  // update() is told to decay.
  Optimizer(std::string name, std::vector<nn::NamedTensor> params, double lr, DecayPolicy policy,
            std::vector<Slot> slots);

  // One parameter's update in this step: checked by step(), `state->step` already incremented and
  // `state->slots` allocated; `grad` is contiguous (and includes the L1 subgradient).
  struct Pending {
    Tensor param, grad;
    ParamState* state;
    Decay decay;
  };
  // Applies this step's updates. The default calls update() for each; SGD, Adam and AdamW override it with
  // their fused kernels (src/optim/update_formulas.h), on any device, and say so with has_cuda_kernels().
  virtual void update_all(const std::vector<Pending>& pending);
  // Applies one update to a CPU parameter (optimizers without fused kernels).
  virtual void update(const Tensor& param, const Tensor& grad, ParamState& state, Decay decay);
  virtual bool has_cuda_kernels() const { return false; }
  // The fused kernels' view of `pending` (the state's slots in order, the decay flag and the step), grouped
  // by device in order of first appearance: one kernel call per device.
  static std::vector<std::pair<Device, std::vector<ParamUpdate>>> updates_by_device(
      const std::vector<Pending>& pending);

  // Throws ValueError "<optimizer>: expected <option> <condition>, but got <option>=<value>" unless `ok`.
  void check_option(bool ok, const char* option, const char* condition, double value) const;

 private:
  std::string name_;
  std::vector<nn::NamedTensor> params_;
  double lr_;
  double l1_ = 0.0;
  DecayPolicy policy_;
  std::vector<Slot> slots_;
  std::vector<ParamState> states_;  // parallel to params_
};

}  // namespace lockstep::optim
