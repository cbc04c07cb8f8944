// Gradient clipping (by global norm, by value) and parameter clipping (WGAN weight clipping), applied in
// place to a model's parameters between backward and the optimizer step.
#pragma once

#include <vector>

#include "src/tensor/tensor.h"

namespace lockstep::optim {

// Scales all gradients of `params` together by max_norm / (norm + 1e-6) when that is below 1, where norm is
// the L2 norm of all gradients concatenated (as torch.nn.utils.clip_grad_norm_). Parameters without a
// gradient are skipped. Returns the norm before clipping (f64, 0-d, on the gradients' device: on a GPU
// nothing is read back); when it is not finite the gradients are left as they are (the caller can skip the
// step). On the CPU the norm is summed in f64 over fixed blocks, so it does not depend on the thread count.
// ValueError unless max_norm >= 0 and every gradient is on one device.
Tensor clip_grad_norm_(const std::vector<Tensor>& params, double max_norm);

// Clamps every gradient of `params` to [-value, value]. ValueError unless value >= 0.
void clip_grad_value_(const std::vector<Tensor>& params, double value);

// Clamps every parameter to [-c, c] without recording autograd history. ValueError unless c >= 0.
void clip_parameters_(const std::vector<Tensor>& params, double c);

}  // namespace lockstep::optim
