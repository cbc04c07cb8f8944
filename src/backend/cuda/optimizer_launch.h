// Launchers of the CUDA fused optimizer kernels (defined in optimizer_kernels.cu): one launch updates up to
// a few dozen parameters (their pointers travel in the kernel's arguments), so a model's whole step is a
// handful of launches. They run on the current device and the default stream, return without waiting, and
// raise DeviceError when a launch fails. Every tensor is contiguous, of `dtype` (f32, f64), n elements.
#pragma once

#include <cstdint>
#include <vector>

#include "src/core/dtype.h"
#include "src/optim/update_formulas.h"

namespace lockstep::cuda {

struct SgdTensors {
  void* param;
  const void* grad;
  void* momentum_buffer;  // null without momentum
  std::int64_t n;
  bool decay;  // weight decay applies (and is not 0)
  bool first;  // the parameter's first step (the buffer starts as the gradient)
};
void launch_sgd_update(DType dtype, const std::vector<SgdTensors>& tensors, const optim::SgdHyper& hyper);

struct AdamTensors {
  void* param;
  const void* grad;
  void* exp_avg;
  void* exp_avg_sq;
  void* max_exp_avg_sq;  // null without AMSGrad
  std::int64_t n;
  bool decay;  // weight decay applies (and is not 0)
  std::int64_t step;
};
void launch_adam_update(DType dtype, const std::vector<AdamTensors>& tensors, const optim::AdamHyper& hyper);

}  // namespace lockstep::cuda
