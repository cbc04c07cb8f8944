// Definitions of the kernel slots, and the registration of every compiled backend before first use.
#include "src/ops/kernels.h"

#include "src/backend/cpu/register.h"
#ifdef LOCKSTEP_WITH_CUDA
#include "src/backend/cuda/register.h"
#endif

namespace lockstep {
namespace kernels {
#define LOCKSTEP_DEFINE_KERNEL(name, signature) KernelSlot<signature> name{#name};
LOCKSTEP_KERNEL_LIST(LOCKSTEP_DEFINE_KERNEL)
#undef LOCKSTEP_DEFINE_KERNEL
}  // namespace kernels

void ensure_backends_registered() {
  static const bool registered = [] {
    cpu::register_kernels();
#ifdef LOCKSTEP_WITH_CUDA
    cuda::register_kernels();
#endif
    return true;
  }();
  (void)registered;
}

Device common_device(const char* op, std::initializer_list<Tensor> tensors) {
  Device device = kCPU;
  bool found = false;
  for (const auto& t : tensors) {
    if (!t.defined() || t.impl()->wrapped_number) continue;
    if (!found) {
      device = t.device();
      found = true;
    } else if (!(t.device() == device)) {
      std::string all;
      for (const auto& u : tensors) {
        if (!u.defined() || u.impl()->wrapped_number) continue;
        all += (all.empty() ? "" : ", ") + u.device().str() + " " + shape_str(u.shape());
      }
      throw DeviceError(str_cat(op, ": expected all tensors on one device, but got ", all,
                            ". Move them with .to(device) first"));
    }
  }
  return device;
}

}  // namespace lockstep
