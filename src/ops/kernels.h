// The one list of kernels. Each kernel has one slot per device type, filled by src/backend/cpu (always) and
// src/backend/cuda (when compiled with CUDA); calling an empty slot raises NotImplementedError naming the
// kernel and the device. Ops in src/ops validate inputs and allocate outputs; kernels only compute.
//
// Common contract unless a kernel says otherwise: tensors are on the device whose slot is called; outputs
// are contiguous, allocated by the caller, and do not alias inputs; inputs of reductions, norms, convs and
// pools are contiguous. Kernels run on the calling thread and may use the shared OpenMP pool.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "src/core/device.h"
#include "src/core/error.h"
#include "src/ops/binary_formulas.h"  // BinaryOp and its formulas
#include "src/ops/kernel_kinds.h"
#include "src/ops/random_formulas.h"  // RandomKind and its formulas
#include "src/ops/unary_formulas.h"   // UnaryOp and its formulas
#include "src/optim/update_formulas.h"  // SgdHyper, AdamHyper and their formulas
#include "src/tensor/tensor.h"

namespace lockstep {

enum class Transpose : std::uint8_t { kNo, kYes };
enum class PadMode : std::uint8_t { kConstant, kReflect };
enum class AlignCorners : std::uint8_t { kNo, kYes };
enum class CountIncludePad : std::uint8_t { kNo, kYes };

struct Conv2dParams {
  std::array<std::int64_t, 2> stride{1, 1};
  std::array<std::int64_t, 2> padding{0, 0};   // zero padding; reflection padding is a pad op before the conv
  std::array<std::int64_t, 2> dilation{1, 1};
  std::int64_t groups = 1;
};

struct Pool2dParams {
  std::array<std::int64_t, 2> kernel{2, 2};
  std::array<std::int64_t, 2> stride{2, 2};
  std::array<std::int64_t, 2> padding{0, 0};
  CountIncludePad count_include_pad = CountIncludePad::kYes;  // avg pooling only
};

// Pads of the last two dimensions: left, right, top, bottom.
using Pads2d = std::array<std::int64_t, 4>;

// One parameter of a fused optimizer step: param, grad and the optimizer's slots (SGD: momentum_buffer, if
// any; Adam: exp_avg, exp_avg_sq and with AMSGrad max_exp_avg_sq) contiguous, of one floating dtype and
// shape; whether weight decay applies to it, and its step count t (1 on its first update).
struct ParamUpdate {
  Tensor param, grad;
  std::array<Tensor, 3> slots;
  bool decay = false;
  std::int64_t step = 1;
};

// Fills every slot from the compiled backends, once, before any kernel runs.
void ensure_backends_registered();

// One kernel's per-device function table.
template <class Fn> class KernelSlot {
 public:
  constexpr explicit KernelSlot(const char* name) : name_(name) {}
  void set(DeviceType type, Fn* fn) { fns_[static_cast<int>(type)] = fn; }
  Fn* get(Device device) const {
    ensure_backends_registered();
    Fn* fn = fns_[static_cast<int>(device.type)];
    LOCKSTEP_CHECK(fn != nullptr, NotImplementedError, "kernel ", name_, ": not implemented for ",
                   device.is_cuda() ? "CUDA" : "CPU", " tensors",
                   device.is_cuda() ? " (this binary was built without CUDA, or the kernel has no CUDA version yet)" : "");
    return fn;
  }
  const char* name() const { return name_; }

 private:
  const char* name_;
  Fn* fns_[kNumDeviceTypes] = {};
};

// X(name, signature): the complete list. Shapes are given as [..] in each contract.
#define LOCKSTEP_KERNEL_LIST(X)                                                                              \
  /* src, dst: same shape, any strides, any dtypes (converting). dst may not overlap src. */                 \
  X(copy, void(const Tensor& src, const Tensor& dst))                                                        \
  /* src, dst: contiguous, same dtype and byte size, on different devices (slot of the non-CPU side). */     \
  X(transfer, void(const Tensor& src, const Tensor& dst))                                                    \
  /* dst: any strides. */                                                                                    \
  X(fill, void(const Tensor& dst, double value))                                                             \
  /* x: any strides; out: contiguous, same shape and dtype as x (may be x itself when x is contiguous). */   \
  X(unary, void(UnaryOp op, const Tensor& x, const Tensor& out, double a, double b))                         \
  /* dx = grad * f'(x) (unary_formulas.h) from x and/or y = f(x); all contiguous, same shape. */             \
  X(unary_backward, void(UnaryOp op, const Tensor& grad, const Tensor& x, const Tensor& y, const Tensor& dx, \
                         double a, double b))                                                                \
  /* a, b: views expanded to out's shape (stride 0 where broadcast); out any strides, may be a itself (in    \
   * place). */                                                                                              \
  X(binary, void(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out, double alpha))            \
  /* cond (u8), a, b: expanded to out's shape. */                                                            \
  X(where, void(const Tensor& cond, const Tensor& a, const Tensor& b, const Tensor& out))                    \
  /* out: contiguous floating; element i draws from Philox(seed, offset + i / 4, lane i % 4). */             \
  X(random,                                                                                                  \
    void(RandomKind kind, const Tensor& out, std::uint64_t seed, std::uint64_t offset, double a, double b))  \
  /* x [outer, size, inner] -> out [outer, inner] (i64 for argmax/argmin). */                                \
  X(reduce, void(ReduceOp op, const Tensor& x, const Tensor& out, std::int64_t outer, std::int64_t size,     \
                 std::int64_t inner))                                                                        \
  /* x, y [outer, size, inner], softmax over size, max-subtracted. */                                        \
  X(softmax, void(SoftmaxKind kind, const Tensor& x, const Tensor& y, std::int64_t outer, std::int64_t size, \
                  std::int64_t inner))                                                                       \
  X(softmax_backward, void(SoftmaxKind kind, const Tensor& dy, const Tensor& y, const Tensor& dx,            \
                           std::int64_t outer, std::int64_t size, std::int64_t inner))                       \
  /* c [B, M, N] = alpha * op(a) op(b) + beta * c; a [B|1, M, K] ([B|1, K, M] if ta), b [B|1, K, N] ([B|1,   \
   * N, K] if tb). */                                                                                        \
  X(gemm, void(const Tensor& a, const Tensor& b, const Tensor& c, Transpose ta, Transpose tb, double alpha,  \
               double beta))                                                                                 \
  /* x [outer, size, inner], index i64 [n] -> out [outer, n, inner]; raises IndexError when out of range. */ \
  X(index_select, void(const Tensor& x, const Tensor& index, const Tensor& out, std::int64_t outer,          \
                       std::int64_t size, std::int64_t inner))                                               \
  /* out [outer, size, inner] += src [outer, n, inner] at index [n] (out is accumulated into). */            \
  X(index_add, void(const Tensor& src, const Tensor& index, const Tensor& out, std::int64_t outer,           \
                    std::int64_t size, std::int64_t inner))                                                  \
  /* torch.gather along dim: out[..i..] = x[..index[..i..]..]; out has index's shape. */                     \
  X(gather, void(const Tensor& x, const Tensor& index, const Tensor& out, std::int64_t dim))                 \
  /* out[..index[..i..]..] += src[..i..] along dim (out accumulated into). */                                \
  X(scatter_add, void(const Tensor& src, const Tensor& index, const Tensor& out, std::int64_t dim))          \
  /* x [B, H, W] -> y [B, H + top + bottom, W + left + right]. */                                            \
  X(pad2d, void(PadMode mode, const Tensor& x, const Tensor& y, Pads2d pads, double value))                  \
  X(pad2d_backward, void(PadMode mode, const Tensor& dy, const Tensor& dx, Pads2d pads))                     \
  /* x [N, C, H, W], w [K, C/groups, R, S], bias [K] or undefined -> y [N, K, P, Q]. */                      \
  X(conv2d,                                                                                                  \
    void(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& y, const Conv2dParams& p))      \
  X(conv2d_backward_input, void(const Tensor& dy, const Tensor& w, const Tensor& dx, const Conv2dParams& p)) \
  /* dw overwritten; dbias [K] overwritten when defined. */                                                  \
  X(conv2d_backward_weight,                                                                                  \
    void(const Tensor& dy, const Tensor& x, const Tensor& dw, const Tensor& dbias, const Conv2dParams& p))   \
  /* Both: dx, dw and dbias (when defined) overwritten, the values of the two kernels above. CPU only (one   \
   * layout reorder of dy serves both passes there); elsewhere the op calls the two. */                      \
  X(conv2d_backward, void(const Tensor& dy, const Tensor& x, const Tensor& w, const Tensor& dx,              \
                          const Tensor& dw, const Tensor& dbias, const Conv2dParams& p))                     \
  /* x [N, C, H, W] -> y [N, C, P, Q], indices i64 [N, C, P, Q] into each H*W plane. */                      \
  X(max_pool2d, void(const Tensor& x, const Tensor& y, const Tensor& indices, const Pool2dParams& p))        \
  X(avg_pool2d, void(const Tensor& x, const Tensor& y, const Pool2dParams& p))                               \
  X(avg_pool2d_backward, void(const Tensor& dy, const Tensor& dx, const Pool2dParams& p))                    \
  /* src, indices [B, L] -> out [B, M] += src at indices (out accumulated into). */                          \
  X(plane_scatter_add, void(const Tensor& src, const Tensor& indices, const Tensor& out))                    \
  /* src [B, M], indices [B, L] -> out [B, L]. */                                                            \
  X(plane_gather, void(const Tensor& src, const Tensor& indices, const Tensor& out))                         \
  /* x [N, C, H, W] -> y [N, C, P, Q]; source index floor(dst * H / P). */                                   \
  X(upsample_nearest2d, void(const Tensor& x, const Tensor& y))                                              \
  X(upsample_nearest2d_backward, void(const Tensor& dy, const Tensor& dx))                                   \
  X(upsample_bilinear2d, void(const Tensor& x, const Tensor& y, AlignCorners align))                         \
  X(upsample_bilinear2d_backward, void(const Tensor& dy, const Tensor& dx, AlignCorners align))              \
  /* x [N, C, L] -> mean, var [C] (biased, over N and L). */                                                 \
  X(batch_norm_stats, void(const Tensor& x, const Tensor& mean, const Tensor& var))                          \
  /* y = (x - mean) * invstd * weight + bias; weight, bias [C] or undefined. */                              \
  X(batch_norm_apply, void(const Tensor& x, const Tensor& mean, const Tensor& invstd, const Tensor& weight,  \
                           const Tensor& bias, const Tensor& y))                                             \
  /* z = relu(y + residual) for y as batch_norm_apply's, each step optional: residual [N, C, L] or           \
   * undefined, relu or not (relu as unary_forward_formula's). CPU only: on other devices the op composes    \
   * its steps. */                                                                                           \
  X(batch_norm_apply_epilogue,                                                                               \
    void(const Tensor& x, const Tensor& mean, const Tensor& invstd, const Tensor& weight,                    \
         const Tensor& bias, const Tensor& residual, bool relu, const Tensor& z))                            \
  /* sum_dy = sum(dy), sum_dy_xmu = sum(dy * (x - mean)) per channel [C]. */                                 \
  X(batch_norm_backward_reduce, void(const Tensor& dy, const Tensor& x, const Tensor& mean,                  \
                                     const Tensor& sum_dy, const Tensor& sum_dy_xmu))                        \
  /* dx = w * invstd * (dy - sum_dy / count - (x - mean) * invstd^2 * sum_dy_xmu / count); weight may be     \
   * undefined. */                                                                                           \
  X(batch_norm_backward_apply,                                                                               \
    void(const Tensor& dy, const Tensor& x, const Tensor& mean, const Tensor& invstd, const Tensor& weight,  \
         const Tensor& sum_dy, const Tensor& sum_dy_xmu, double count, const Tensor& dx))                    \
  /* x, y [rows, cols]; weight, bias [cols] or undefined; mean, rstd [rows]. */                              \
  X(layer_norm, void(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps, const Tensor& y, \
                     const Tensor& mean, const Tensor& rstd))                                                \
  /* dweight, dbias [cols] overwritten when defined. */                                                      \
  X(layer_norm_backward,                                                                                     \
    void(const Tensor& dy, const Tensor& x, const Tensor& mean, const Tensor& rstd, const Tensor& weight,    \
         const Tensor& dx, const Tensor& dweight, const Tensor& dbias))                                      \
  /* Fused optimizer steps over many parameters at once (src/optim/update_formulas.h), all on the slot's     \
     device; dtypes may differ between parameters. */                                                        \
  X(sgd_update, void(const std::vector<ParamUpdate>& params, const optim::SgdHyper& h))                      \
  X(adam_update, void(const std::vector<ParamUpdate>& params, const optim::AdamHyper& h))                    \
  /* Recurrent cells (src/ops/recurrent.h) over B rows of H units: gi, gh [B, G H] are the input and         \
     recurrent projections in G gate blocks of H columns; every tensor [B, H] unless said. act: kTanh or     \
     kRelu. */                                                                                               \
  /* h = act(gi + gh). */                                                                                    \
  X(rnn_cell, void(UnaryOp act, const Tensor& gi, const Tensor& gh, const Tensor& h))                        \
  /* dpre = dh * act'(gi + gh), from h = act(gi + gh). */                                                    \
  X(rnn_cell_backward, void(UnaryOp act, const Tensor& dh, const Tensor& h, const Tensor& dpre))             \
  /* Gates [i, f, g, o] (G = 4): c_new = sigmoid(f) c + sigmoid(i) tanh(g), h = sigmoid(o) tanh(c_new). */   \
  X(lstm_cell,                                                                                               \
    void(const Tensor& gi, const Tensor& gh, const Tensor& c, const Tensor& h, const Tensor& c_new))         \
  /* From dh, dc (of h and c_new), the gates recomputed from gi + gh: dgates [B, 4H] (of gi, and of gh       \
     alike), dc_prev (of c; undefined: not computed). */                                                     \
  X(lstm_cell_backward,                                                                                      \
    void(const Tensor& dh, const Tensor& dc, const Tensor& gi, const Tensor& gh, const Tensor& c,            \
         const Tensor& c_new, const Tensor& dgates, const Tensor& dc_prev))                                  \
  /* Gates [r, z, n] (G = 3): r, z = sigmoid(gi + gh), n = tanh(gi_n + r gh_n), h_new = (1 - z) n + z h. */  \
  X(gru_cell, void(const Tensor& gi, const Tensor& gh, const Tensor& h, const Tensor& h_new))                \
  /* From dh (of h_new), the gates recomputed from gi, gh: dgi, dgh [B, 3H], dh_prev (of h; undefined: not   \
     computed). */                                                                                           \
  X(gru_cell_backward, void(const Tensor& dh, const Tensor& gi, const Tensor& gh, const Tensor& h,           \
                            const Tensor& dgi, const Tensor& dgh, const Tensor& dh_prev))

namespace kernels {
#define LOCKSTEP_DECLARE_KERNEL(name, signature) extern KernelSlot<signature> name;
LOCKSTEP_KERNEL_LIST(LOCKSTEP_DECLARE_KERNEL)
#undef LOCKSTEP_DECLARE_KERNEL
}  // namespace kernels

// The device all `tensors` live on; raises DeviceError naming `op` and every device when they differ
// (wrapped numbers and undefined tensors are ignored). No hidden copies between devices.
Device common_device(const char* op, std::initializer_list<Tensor> tensors);

}  // namespace lockstep
