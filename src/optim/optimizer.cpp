// optim::Optimizer: parameter checks, the step loop shared by all optimizers, and the state dict.
#include "src/optim/optimizer.h"

#include <algorithm>
#include <cmath>
#include <unordered_set>
#include <utility>

#include "src/autograd/grad_mode.h"
#include "src/ops/elementwise.h"
#include "src/ops/unary.h"
#include "src/tensor/factories.h"

namespace lockstep::optim {
namespace {

constexpr const char* kLrKey = "lr";
constexpr const char* kStepSlot = "step";

std::string describe(const Tensor& t) { return str_cat(dtype_name(t.dtype()), " ", shape_str(t.shape())); }

// grad + l1 * sign(param) as a fresh contiguous tensor (the parameter's .grad keeps the loss gradient), on
// the parameter's device.
Tensor with_l1(const Tensor& param, const Tensor& grad, double l1) {
  return grad + unary_op("sign", UnaryOp::kSign, param, SaveForBackward::kNone) * l1;
}

}  // namespace

Optimizer::Optimizer(std::string name, std::vector<nn::NamedTensor> params, double lr, DecayPolicy policy,
                     std::vector<Slot> slots)
    : name_(std::move(name)),
      params_(std::move(params)),
      lr_(0.0),
      policy_(policy),
      slots_(std::move(slots)) {
  set_lr(lr);
  LOCKSTEP_CHECK(!params_.empty(), ValueError, name_, ": expected at least one parameter, but got none");
  std::unordered_set<std::string> seen;
  for (const auto& [pname, param] : params_) {
    LOCKSTEP_CHECK(param.defined(), ValueError, name_, ": expected defined parameters, but '", pname,
                   "' is undefined");
    LOCKSTEP_CHECK(is_floating(param.dtype()), TypeError, name_,
                   ": expected floating-point parameters, but '", pname, "' is ", describe(param));
    LOCKSTEP_CHECK(seen.insert(pname).second, ValueError, name_, ": expected unique parameter names, but '",
                   pname, "' appears twice");
  }
  states_.resize(params_.size());
}

void Optimizer::set_lr(double lr) {
  LOCKSTEP_CHECK(lr >= 0.0 && std::isfinite(lr), ValueError, name_,
                 ": expected lr >= 0 and finite, but got lr=", lr);
  lr_ = lr;
}

void Optimizer::set_l1(double l1) {
  LOCKSTEP_CHECK(l1 >= 0.0 && std::isfinite(l1), ValueError, name_,
                 ": expected l1 >= 0 and finite, but got l1=", l1);
  l1_ = l1;
}

void Optimizer::check_option(bool ok, const char* option, const char* condition, double value) const {
  LOCKSTEP_CHECK(ok, ValueError, name_, ": expected ", option, " ", condition, ", but got ", option, "=",
                 value);
}

std::int64_t Optimizer::step_count(const std::string& param_name) const {
  for (std::size_t i = 0; i < params_.size(); ++i) {
    if (params_[i].first == param_name) return states_[i].step;
  }
  throw IndexError(str_cat(name_, "::step_count: expected the name of one of the ", params_.size(),
                           " parameters, but got '", param_name, "'"));
}

void Optimizer::step() {
  NoGradGuard no_grad;
  // Check every parameter first, so that a bad one leaves all of them untouched.
  std::vector<Tensor> grads(params_.size());
  for (std::size_t i = 0; i < params_.size(); ++i) {
    const auto& [pname, param] = params_[i];
    Tensor grad = param.grad();
    if (!grad.defined()) continue;
    LOCKSTEP_CHECK(param.device().is_cpu() || has_cuda_kernels(), NotImplementedError, name_,
                   "::step: expected CPU parameters, but '", pname, "' is on ", param.device().str(), ". ",
                   name_, " has no CUDA implementation yet (SGD, Adam and AdamW have)");
    LOCKSTEP_CHECK(param.dtype() == DType::f32 || param.dtype() == DType::f64, TypeError, name_,
                   "::step: expected f32 or f64 parameters, but '", pname, "' is ", describe(param));
    LOCKSTEP_CHECK(param.is_contiguous(), ValueError, name_, "::step: expected contiguous parameters, but '",
                   pname, "' ", describe(param), " has strides ", shape_str(param.strides()),
                   ". Make the parameter contiguous before building the optimizer");
    LOCKSTEP_CHECK(
        grad.shape() == param.shape() && grad.dtype() == param.dtype() && grad.device() == param.device(),
        ValueError, name_, "::step: expected the gradient of '", pname, "' to match its parameter ",
        describe(param), " on ", param.device().str(), ", but got ", describe(grad), " on ",
        grad.device().str());
    grads[i] = grad.is_contiguous() ? grad : grad.contiguous();
  }
  std::vector<Pending> pending;
  for (std::size_t i = 0; i < params_.size(); ++i) {
    if (!grads[i].defined()) continue;
    const Tensor& param = params_[i].second;
    ParamState& state = states_[i];
    if (state.slots.empty()) {
      for (const Slot& slot : slots_)
        state.slots.push_back(full(param.shape(), slot.initial, param.dtype(), param.device()));
    }
    ++state.step;
    const Decay decay = policy_ == DecayPolicy::kAll || param.dim() >= 2 ? Decay::kYes : Decay::kNo;
    pending.push_back({param, l1_ != 0.0 && decay == Decay::kYes ? with_l1(param, grads[i], l1_) : grads[i],
                       &state, decay});
  }
  update_all(pending);
  for (const Pending& p : pending) p.param.bump_version();
}

void Optimizer::update_all(const std::vector<Pending>& pending) {
  for (const Pending& p : pending) update(p.param, p.grad, *p.state, p.decay);
}

void Optimizer::update(const Tensor& /*param*/, const Tensor& /*grad*/, ParamState& /*state*/,
                       Decay /*decay*/) {
  LOCKSTEP_INTERNAL_ASSERT(false, name_, ": has neither update() nor update_all()");
}

std::vector<std::pair<Device, std::vector<ParamUpdate>>> Optimizer::updates_by_device(
    const std::vector<Pending>& pending) {
  std::vector<std::pair<Device, std::vector<ParamUpdate>>> out;
  for (const Pending& p : pending) {
    auto group =
        std::find_if(out.begin(), out.end(), [&](const auto& g) { return g.first == p.param.device(); });
    if (group == out.end()) group = out.insert(out.end(), {p.param.device(), {}});
    ParamUpdate& u = group->second.emplace_back();
    u.param = p.param;
    u.grad = p.grad;
    for (std::size_t k = 0; k < p.state->slots.size() && k < u.slots.size(); ++k)
      u.slots[k] = p.state->slots[k];
    u.decay = p.decay == Decay::kYes;
    u.step = p.state->step;
  }
  return out;
}

void Optimizer::zero_grad() {
  for (const auto& entry : params_) {
    if (entry.second.grad().defined()) entry.second.set_grad(Tensor());
  }
}

nn::StateDict Optimizer::state_dict() const {
  nn::StateDict out;
  out.insert(kLrKey, scalar_tensor(lr_, DType::f64));
  for (std::size_t i = 0; i < params_.size(); ++i) {
    const ParamState& state = states_[i];
    if (state.step == 0) continue;
    const std::string& pname = params_[i].first;
    out.insert(str_cat(pname, ".", kStepSlot), scalar_tensor(static_cast<double>(state.step), DType::i64));
    for (std::size_t k = 0; k < slots_.size(); ++k)
      out.insert(str_cat(pname, ".", slots_[k].name), state.slots[k]);
  }
  return out;
}

void Optimizer::load_state_dict(const nn::StateDict& state) {
  std::vector<std::string> problems;
  std::unordered_set<std::string> known{kLrKey};

  double lr = 0.0;
  if (const Tensor* t = state.find(kLrKey); t == nullptr) {
    problems.push_back(str_cat("missing key '", kLrKey, "'"));
  } else if (t->dim() != 0 || !is_floating(t->dtype())) {
    problems.push_back(str_cat("'", kLrKey, "' is ", describe(*t), ", expected a 0-dim floating tensor"));
  } else {
    lr = t->item();
    if (!(lr >= 0.0 && std::isfinite(lr)))
      problems.push_back(str_cat("'", kLrKey, "' is ", lr, ", expected >= 0"));
  }

  std::vector<const Tensor*> steps(params_.size(), nullptr);
  for (std::size_t i = 0; i < params_.size(); ++i) {
    const auto& [pname, param] = params_[i];
    const std::string step_key = str_cat(pname, ".", kStepSlot);
    known.insert(step_key);
    const Tensor* step = state.find(step_key);
    if (step != nullptr) {
      if (step->dim() != 0 || step->dtype() != DType::i64) {
        problems.push_back(str_cat("'", step_key, "' is ", describe(*step), ", expected a 0-dim i64 tensor"));
      } else if (step->item() < 1.0) {
        problems.push_back(str_cat("'", step_key, "' is ", step->item(), ", expected >= 1"));
      } else {
        steps[i] = step;
      }
    }
    for (const Slot& slot : slots_) {
      const std::string key = str_cat(pname, ".", slot.name);
      known.insert(key);
      const Tensor* t = state.find(key);
      if (t == nullptr) {
        if (step != nullptr) problems.push_back(str_cat("missing key '", key, "'"));
        continue;
      }
      if (step == nullptr) problems.push_back(str_cat("'", key, "' is present without '", step_key, "'"));
      if (t->shape() != param.shape() || t->dtype() != param.dtype()) {
        problems.push_back(str_cat("'", key, "' is ", describe(*t), ", expected ", describe(param)));
      }
    }
  }
  for (const auto& [key, tensor] : state) {
    if (!known.contains(key)) problems.push_back(str_cat("unexpected key '", key, "'"));
  }
  if (!problems.empty()) {
    std::string list;
    for (const std::string& p : problems) list += (list.empty() ? "" : "; ") + p;
    throw ValueError(str_cat(name_, "::load_state_dict: expected the state of this ", name_, " over ",
                             params_.size(), " parameters, but found ", problems.size(),
                             " problem(s): ", list));
  }

  NoGradGuard no_grad;
  lr_ = lr;
  for (std::size_t i = 0; i < params_.size(); ++i) {
    ParamState& own = states_[i];
    if (steps[i] == nullptr) {
      own = ParamState{};
      continue;
    }
    const auto& [pname, param] = params_[i];
    own.step = static_cast<std::int64_t>(steps[i]->item());
    if (own.slots.empty()) {
      for (std::size_t k = 0; k < slots_.size(); ++k)
        own.slots.push_back(empty(param.shape(), param.dtype(), param.device()));
    }
    for (std::size_t k = 0; k < slots_.size(); ++k) {
      const Tensor& saved = state.at(str_cat(pname, ".", slots_[k].name));
      own.slots[k].copy_(saved.to(param.device()));
    }
  }
}

}  // namespace lockstep::optim
