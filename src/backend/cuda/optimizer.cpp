// CUDA fused optimizer steps: validation and the calls to the launchers of optimizer_kernels.cu, one run of
// launches per dtype, on the parameters' device and the default stream.
#include "src/backend/cuda/device.h"
#include "src/backend/cuda/optimizer_launch.h"
#include "src/backend/cuda/register.h"
#include "src/ops/kernels.h"

namespace lockstep::cuda {
namespace {

// Checks that grad and the first `slots` slots of `u` are contiguous tensors of its parameter's shape, dtype
// and device, the parameter contiguous, f32 or f64, on `device`, and the other slots undefined.
void check_update(const char* where, const ParamUpdate& u, std::size_t slots, std::size_t optional_slots,
                  Device device) {
  const Tensor& p = u.param;
  LOCKSTEP_CHECK(
      p.device() == device && p.is_contiguous() && (p.dtype() == DType::f32 || p.dtype() == DType::f64),
      ValueError, where, ": expected contiguous f32 or f64 parameters on ", device.str(), ", but got ",
      dtype_name(p.dtype()), " ", shape_str(p.shape()), " on ", p.device().str());
  const auto check = [&](const Tensor& t, const char* what) {
    LOCKSTEP_CHECK(
        t.device() == device && t.dtype() == p.dtype() && t.shape() == p.shape() && t.is_contiguous(),
        ValueError, where, ": expected a contiguous ", what, " of the parameter's ", dtype_name(p.dtype()),
        " ", shape_str(p.shape()), " on ", device.str(), ", but got ", dtype_name(t.dtype()), " ",
        shape_str(t.shape()), " on ", t.device().str());
  };
  check(u.grad, "gradient");
  for (std::size_t k = 0; k < u.slots.size(); ++k) {
    if (k < slots || (k < slots + optional_slots && u.slots[k].defined())) {
      check(u.slots[k], "optimizer state");
    } else {
      LOCKSTEP_CHECK(!u.slots[k].defined(), ValueError, where, ": unexpected optimizer state slot ", k);
    }
  }
}

void sgd_update_kernel(const std::vector<ParamUpdate>& params, const optim::SgdHyper& h) {
  if (params.empty()) return;
  const Device device = params.front().param.device();
  std::vector<SgdTensors> by_dtype[2];
  for (const ParamUpdate& u : params) {
    check_update("sgd_update (CUDA)", u, 0, 1, device);
    by_dtype[u.param.dtype() == DType::f64].push_back({u.param.data(), u.grad.data(),
                                                       data_or_null(u.slots[0]), u.param.numel(),
                                                       u.decay && h.weight_decay != 0.0, u.step == 1});
  }
  DeviceGuard guard(device);
  launch_sgd_update(DType::f32, by_dtype[0], h);
  launch_sgd_update(DType::f64, by_dtype[1], h);
}

void adam_update_kernel(const std::vector<ParamUpdate>& params, const optim::AdamHyper& h) {
  if (params.empty()) return;
  const Device device = params.front().param.device();
  std::vector<AdamTensors> by_dtype[2];
  for (const ParamUpdate& u : params) {
    check_update("adam_update (CUDA)", u, 2, 1, device);
    by_dtype[u.param.dtype() == DType::f64].push_back(
        {u.param.data(), u.grad.data(), u.slots[0].data(), u.slots[1].data(), data_or_null(u.slots[2]),
         u.param.numel(), u.decay && h.weight_decay != 0.0, u.step});
  }
  DeviceGuard guard(device);
  launch_adam_update(DType::f32, by_dtype[0], h);
  launch_adam_update(DType::f64, by_dtype[1], h);
}

}  // namespace

void register_optimizer_kernels() {
  kernels::sgd_update.set(DeviceType::CUDA, sgd_update_kernel);
  kernels::adam_update.set(DeviceType::CUDA, adam_update_kernel);
}

}  // namespace lockstep::cuda
