// CUDA convolutions through cuDNN: the forward pass, the input gradient and the weight (and bias) gradient of
// conv2d (conv_transpose2d runs on the same three). One cuDNN handle per device on the default stream; FMA
// math only (no TF32 tensor cores), so f32 results match the CPU to rounding. Algorithms are chosen once per
// shape from cuDNN's heuristics and cached; the gradients take deterministic algorithms only, so a run gives
// the same bits every time. Workspaces come from the caching allocator.
// bf16 (run.precision, src/core/precision.h): cuDNN's pseudo-bf16 configuration (bf16 operands and result,
// f32 accumulation, tensor cores, each algorithm run with the math type cuDNN reports for it) on bf16 copies
// of the f32 operands, the result widened back to f32. Unlike the CPU's (f32), the GPU's convolution results
// are thus rounded to bf16 once more, as under PyTorch's autocast; biases are added in f32. Where cuDNN has
// no (deterministic) bf16 algorithm, the f32 algorithms run on operands rounded to bf16: the CPU's numbers.
#include <cudnn.h>

#include <array>
#include <climits>
#include <mutex>
#include <optional>
#include <unordered_map>

#include "src/backend/cuda/bf16.h"
#include "src/backend/cuda/check.h"
#include "src/backend/cuda/device.h"
#include "src/backend/cuda/register.h"
#include "src/core/precision.h"
#include "src/ops/kernels.h"

namespace lockstep::cuda {
namespace {

// Workspace cap per call: algorithms that need more are skipped.
constexpr std::size_t kMaxWorkspaceBytes = std::size_t{1} << 30;

cudnnHandle_t handle_for(Device device) {
  static std::mutex mutex;
  static std::unordered_map<int, cudnnHandle_t> handles;  // live until the process ends, as cuBLAS's
  std::lock_guard<std::mutex> lock(mutex);
  auto it = handles.find(device.index);
  if (it != handles.end()) return it->second;
  cudnnHandle_t handle = nullptr;
  LOCKSTEP_CUDNN_CHECK(cudnnCreate(&handle));
  LOCKSTEP_CUDNN_CHECK(cudnnSetStream(handle, nullptr));
  handles.emplace(device.index, handle);
  return handle;
}

int as_int(std::int64_t value) {
  LOCKSTEP_CHECK(value <= INT_MAX, NotImplementedError, "conv2d (CUDA): expected dimensions <= ", INT_MAX,
                 " for cuDNN, but got ", value);
  return static_cast<int>(value);
}

cudnnDataType_t data_type(DType dtype) {
  LOCKSTEP_CHECK(dtype == DType::f32 || dtype == DType::f64, TypeError,
                 "conv2d (CUDA): expected f32 or f64 tensors, but got ", dtype_name(dtype));
  return dtype == DType::f32 ? CUDNN_DATA_FLOAT : CUDNN_DATA_DOUBLE;
}

// Whether a convolution on f32 `t` runs in bf16 (the process-wide precision).
bool in_bf16(const Tensor& t) {
  return t.dtype() == DType::f32 && matmul_precision() == MatmulPrecision::kBf16;
}

// The descriptors of one convolution: x [N, C, H, W], w [K, C / groups, R, S], y [N, K, P, Q], in the
// tensors' dtype or (bf16) in the pseudo-bf16 configuration; destroyed with it.
class Descriptors {
 public:
  Descriptors(const Tensor& x, const Tensor& w, const Tensor& y, const Conv2dParams& p, bool bf16) {
    const cudnnDataType_t type = bf16 ? CUDNN_DATA_BFLOAT16 : data_type(x.dtype());
    const cudnnDataType_t compute = bf16 ? CUDNN_DATA_FLOAT : type;
    LOCKSTEP_CUDNN_CHECK(cudnnCreateTensorDescriptor(&x_));
    LOCKSTEP_CUDNN_CHECK(cudnnCreateTensorDescriptor(&y_));
    LOCKSTEP_CUDNN_CHECK(cudnnCreateFilterDescriptor(&w_));
    LOCKSTEP_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&conv_));
    LOCKSTEP_CUDNN_CHECK(cudnnSetTensor4dDescriptor(x_, CUDNN_TENSOR_NCHW, type, as_int(x.size(0)),
                                                    as_int(x.size(1)), as_int(x.size(2)), as_int(x.size(3))));
    LOCKSTEP_CUDNN_CHECK(cudnnSetTensor4dDescriptor(y_, CUDNN_TENSOR_NCHW, type, as_int(y.size(0)),
                                                    as_int(y.size(1)), as_int(y.size(2)), as_int(y.size(3))));
    LOCKSTEP_CUDNN_CHECK(cudnnSetFilter4dDescriptor(w_, type, CUDNN_TENSOR_NCHW, as_int(w.size(0)),
                                                    as_int(w.size(1)), as_int(w.size(2)), as_int(w.size(3))));
    LOCKSTEP_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(
        conv_, as_int(p.padding[0]), as_int(p.padding[1]), as_int(p.stride[0]), as_int(p.stride[1]),
        as_int(p.dilation[0]), as_int(p.dilation[1]), CUDNN_CROSS_CORRELATION, compute));
    LOCKSTEP_CUDNN_CHECK(cudnnSetConvolutionGroupCount(conv_, as_int(p.groups)));
    LOCKSTEP_CUDNN_CHECK(cudnnSetConvolutionMathType(conv_, bf16 ? CUDNN_TENSOR_OP_MATH : CUDNN_FMA_MATH));
  }
  ~Descriptors() {
    cudnnDestroyConvolutionDescriptor(conv_);
    cudnnDestroyFilterDescriptor(w_);
    cudnnDestroyTensorDescriptor(y_);
    cudnnDestroyTensorDescriptor(x_);
  }
  Descriptors(const Descriptors&) = delete;
  Descriptors& operator=(const Descriptors&) = delete;

  cudnnTensorDescriptor_t x_ = nullptr, y_ = nullptr;
  cudnnFilterDescriptor_t w_ = nullptr;
  cudnnConvolutionDescriptor_t conv_ = nullptr;
};

enum class Pass : int { kForward, kBackwardData, kBackwardFilter };

// The cached choice for one pass and shape: the algorithm and the math type to run it with (as ints) and its
// workspace size.
struct Choice {
  int algo = 0;
  int math = 0;
  std::size_t workspace = 0;
};

using ShapeKey = std::array<std::int64_t, 20>;
struct ShapeKeyHash {
  std::size_t operator()(const ShapeKey& k) const {
    std::size_t h = 1469598103934665603ull;
    for (std::int64_t e : k) h = (h ^ static_cast<std::size_t>(e)) * 1099511628211ull;
    return h;
  }
};

ShapeKey key_of(Pass pass, const Tensor& x, const Tensor& w, const Conv2dParams& p, bool bf16) {
  return {static_cast<std::int64_t>(pass),
          static_cast<std::int64_t>(x.dtype()),
          x.device().index,
          x.size(0),
          x.size(1),
          x.size(2),
          x.size(3),
          w.size(0),
          w.size(1),
          w.size(2),
          w.size(3),
          p.stride[0],
          p.stride[1],
          p.padding[0],
          p.padding[1],
          p.dilation[0],
          p.dilation[1],
          p.groups,
          bf16 ? 1 : 0,
          0};
}

// The first of cuDNN's ranked candidates that succeeded, fits the workspace cap and (for the gradients) is
// deterministic, or none. `perf` is filled by one of cudnnGet*Algorithm_v7.
template <class Perf>
std::optional<Choice> pick(const Perf* perf, int count, bool deterministic) {
  for (int i = 0; i < count; ++i) {
    if (perf[i].status != CUDNN_STATUS_SUCCESS || perf[i].memory > kMaxWorkspaceBytes) continue;
    if (deterministic && perf[i].determinism != CUDNN_DETERMINISTIC) continue;
    return Choice{static_cast<int>(perf[i].algo), static_cast<int>(perf[i].mathType), perf[i].memory};
  }
  return std::nullopt;
}

const char* pass_name(Pass pass) {
  return pass == Pass::kForward        ? "forward pass"
         : pass == Pass::kBackwardData ? "input gradient"
                                       : "weight gradient";
}

// The choice for `pass` on the shape `key`, or none (cached either way).
std::optional<Choice> choose(Pass pass, cudnnHandle_t handle, const Descriptors& d, const ShapeKey& key) {
  static std::mutex mutex;
  static std::unordered_map<ShapeKey, std::optional<Choice>, ShapeKeyHash> cache;
  {
    std::lock_guard<std::mutex> lock(mutex);
    auto it = cache.find(key);
    if (it != cache.end()) return it->second;
  }
  std::optional<Choice> choice;
  int found = 0;
  if (pass == Pass::kForward) {
    cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    LOCKSTEP_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(
        handle, d.x_, d.w_, d.conv_, d.y_, CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &found, perf));
    choice = pick(perf, found, false);
  } else if (pass == Pass::kBackwardData) {
    cudnnConvolutionBwdDataAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
    LOCKSTEP_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(
        handle, d.w_, d.y_, d.conv_, d.x_, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &found, perf));
    choice = pick(perf, found, true);
  } else {
    cudnnConvolutionBwdFilterAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
    LOCKSTEP_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(
        handle, d.x_, d.y_, d.conv_, d.w_, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &found, perf));
    choice = pick(perf, found, true);
  }
  std::lock_guard<std::mutex> lock(mutex);
  return cache.emplace(key, choice).first->second;
}

// The choice for an f32/f64 pass (NotImplementedError when cuDNN has none), or for a bf16 pass (none: the
// caller falls back to f32 on rounded operands). A bf16 choice's math type is set on the descriptor.
std::optional<Choice> choose_for(Pass pass, cudnnHandle_t handle, const Descriptors& d, const ShapeKey& key,
                                 bool bf16) {
  const std::optional<Choice> choice = choose(pass, handle, d, key);
  if (!choice && !bf16) {
    throw NotImplementedError(str_cat("conv2d (CUDA): cuDNN offers no ",
                                      pass == Pass::kForward ? "" : "deterministic ", "algorithm for the ",
                                      pass_name(pass), " of this convolution within ",
                                      kMaxWorkspaceBytes >> 20, " MiB of workspace"));
  }
  if (choice && bf16)
    LOCKSTEP_CUDNN_CHECK(cudnnSetConvolutionMathType(d.conv_, static_cast<cudnnMathType_t>(choice->math)));
  return choice;
}

// A workspace of `bytes` on `device` from the caching allocator (empty when none is needed).
Tensor workspace(std::size_t bytes, Device device) {
  return bytes == 0 ? Tensor() : empty({static_cast<std::int64_t>(bytes)}, DType::u8, device);
}

void check_operands(const char* where, std::initializer_list<const Tensor*> tensors) {
  const Tensor& first = **tensors.begin();
  for (const Tensor* t : tensors) {
    if (!t->defined()) continue;
    LOCKSTEP_CHECK(t->device() == first.device() && t->dtype() == first.dtype() && t->is_contiguous(),
                   ValueError, where, ": expected contiguous ", dtype_name(first.dtype()), " tensors on ",
                   first.device().str(), ", but got ", dtype_name(t->dtype()), " ", shape_str(t->shape()),
                   " on ", t->device().str());
  }
}

// alpha = 1, beta = 0 in the operands' precision (cuDNN reads doubles for f64 tensors, floats otherwise).
struct Scaling {
  explicit Scaling(DType dtype) : f64(dtype == DType::f64) {}
  const void* one() const {
    return f64 ? static_cast<const void*>(&one_d) : static_cast<const void*>(&one_f);
  }
  const void* zero() const {
    return f64 ? static_cast<const void*>(&zero_d) : static_cast<const void*>(&zero_f);
  }
  bool f64;
  float one_f = 1.0f, zero_f = 0.0f;
  double one_d = 1.0, zero_d = 0.0;
};

// A 4-d NCHW descriptor in the tensor's dtype: of the tensor's own shape, or (bias) [1, K, 1, 1] for a bias
// [K].
struct TensorDescriptor {
  explicit TensorDescriptor(const Tensor& t, bool bias = false) {
    LOCKSTEP_CUDNN_CHECK(cudnnCreateTensorDescriptor(&desc));
    if (bias) {
      LOCKSTEP_CUDNN_CHECK(cudnnSetTensor4dDescriptor(desc, CUDNN_TENSOR_NCHW, data_type(t.dtype()), 1,
                                                      as_int(t.numel()), 1, 1));
    } else {
      LOCKSTEP_CUDNN_CHECK(cudnnSetTensor4dDescriptor(desc, CUDNN_TENSOR_NCHW, data_type(t.dtype()),
                                                      as_int(t.size(0)), as_int(t.size(1)), as_int(t.size(2)),
                                                      as_int(t.size(3))));
    }
  }
  ~TensorDescriptor() { cudnnDestroyTensorDescriptor(desc); }
  TensorDescriptor(const TensorDescriptor&) = delete;
  TensorDescriptor& operator=(const TensorDescriptor&) = delete;
  cudnnTensorDescriptor_t desc = nullptr;
};

// The passes on checked, non-empty operands; bf16: see the top of this file.
void conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& y,
                    const Conv2dParams& p, bool bf16) {
  DeviceGuard guard(y.device());
  const cudnnHandle_t handle = handle_for(y.device());
  const Descriptors d(x, w, y, p, bf16);
  const std::optional<Choice> choice =
      choose_for(Pass::kForward, handle, d, key_of(Pass::kForward, x, w, p, bf16), bf16);
  if (!choice) return conv2d_forward(rounded_to_bf16(x), rounded_to_bf16(w), bias, y, p, false);
  const Tensor ws = workspace(choice->workspace, y.device());
  const Scaling s(y.dtype());
  const Tensor xc = bf16 ? to_bf16(x) : x, wc = bf16 ? to_bf16(w) : w, yc = bf16 ? bf16_like(y) : y;
  LOCKSTEP_CUDNN_CHECK(cudnnConvolutionForward(handle, s.one(), d.x_, xc.data(), d.w_, wc.data(), d.conv_,
                                               static_cast<cudnnConvolutionFwdAlgo_t>(choice->algo),
                                               data_or_null(ws), choice->workspace, s.zero(), d.y_,
                                               yc.data()));
  if (bf16) widen(yc, y);
  if (bias.defined()) {
    const TensorDescriptor b(bias, true), out(y);
    LOCKSTEP_CUDNN_CHECK(cudnnAddTensor(handle, s.one(), b.desc, bias.data(), s.one(), out.desc, y.data()));
  }
}

void conv2d_backward_data(const Tensor& dy, const Tensor& w, const Tensor& dx, const Conv2dParams& p,
                          bool bf16) {
  DeviceGuard guard(dx.device());
  const cudnnHandle_t handle = handle_for(dx.device());
  const Descriptors d(dx, w, dy, p, bf16);
  const std::optional<Choice> choice =
      choose_for(Pass::kBackwardData, handle, d, key_of(Pass::kBackwardData, dx, w, p, bf16), bf16);
  if (!choice) return conv2d_backward_data(rounded_to_bf16(dy), rounded_to_bf16(w), dx, p, false);
  const Tensor ws = workspace(choice->workspace, dx.device());
  const Scaling s(dx.dtype());
  const Tensor wc = bf16 ? to_bf16(w) : w, dyc = bf16 ? to_bf16(dy) : dy, dxc = bf16 ? bf16_like(dx) : dx;
  LOCKSTEP_CUDNN_CHECK(
      cudnnConvolutionBackwardData(handle, s.one(), d.w_, wc.data(), d.y_, dyc.data(), d.conv_,
                                   static_cast<cudnnConvolutionBwdDataAlgo_t>(choice->algo), data_or_null(ws),
                                   choice->workspace, s.zero(), d.x_, dxc.data()));
  if (bf16) widen(dxc, dx);
}

void conv2d_backward_filter(const Tensor& dy, const Tensor& x, const Tensor& dw, const Conv2dParams& p,
                            bool bf16) {
  DeviceGuard guard(dw.device());
  const cudnnHandle_t handle = handle_for(dw.device());
  const Descriptors d(x, dw, dy, p, bf16);
  const std::optional<Choice> choice =
      choose_for(Pass::kBackwardFilter, handle, d, key_of(Pass::kBackwardFilter, x, dw, p, bf16), bf16);
  if (!choice) return conv2d_backward_filter(rounded_to_bf16(dy), rounded_to_bf16(x), dw, p, false);
  const Tensor ws = workspace(choice->workspace, dw.device());
  const Scaling s(dw.dtype());
  const Tensor xc = bf16 ? to_bf16(x) : x, dyc = bf16 ? to_bf16(dy) : dy, dwc = bf16 ? bf16_like(dw) : dw;
  LOCKSTEP_CUDNN_CHECK(
      cudnnConvolutionBackwardFilter(handle, s.one(), d.x_, xc.data(), d.y_, dyc.data(), d.conv_,
                                     static_cast<cudnnConvolutionBwdFilterAlgo_t>(choice->algo),
                                     data_or_null(ws), choice->workspace, s.zero(), d.w_, dwc.data()));
  if (bf16) widen(dwc, dw);
}

void conv2d_kernel(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& y,
                   const Conv2dParams& p) {
  check_operands("conv2d (CUDA)", {&x, &w, &bias, &y});
  if (y.numel() == 0) return;
  conv2d_forward(x, w, bias, y, p, in_bf16(y));
}

void conv2d_backward_input_kernel(const Tensor& dy, const Tensor& w, const Tensor& dx,
                                  const Conv2dParams& p) {
  check_operands("conv2d_backward_input (CUDA)", {&dy, &w, &dx});
  if (dx.numel() == 0) return;
  conv2d_backward_data(dy, w, dx, p, in_bf16(dx));
}

void conv2d_backward_weight_kernel(const Tensor& dy, const Tensor& x, const Tensor& dw, const Tensor& dbias,
                                   const Conv2dParams& p) {
  check_operands("conv2d_backward_weight (CUDA)", {&dy, &x, &dw, &dbias});
  DeviceGuard guard(dw.device());
  if (x.numel() == 0 || dy.numel() == 0) {  // an empty batch: zero gradients
    LOCKSTEP_CUDA_CHECK(cudaMemsetAsync(
        dw.data(), 0, static_cast<std::size_t>(dw.numel()) * element_size(dw.dtype()), nullptr));
    if (dbias.defined()) {
      LOCKSTEP_CUDA_CHECK(cudaMemsetAsync(
          dbias.data(), 0, static_cast<std::size_t>(dbias.numel()) * element_size(dbias.dtype()), nullptr));
    }
    return;
  }
  conv2d_backward_filter(dy, x, dw, p, in_bf16(dw));
  if (dbias.defined()) {
    const Scaling s(dbias.dtype());
    const TensorDescriptor b(dbias, true), g(dy);
    LOCKSTEP_CUDNN_CHECK(cudnnConvolutionBackwardBias(handle_for(dw.device()), s.one(), g.desc, dy.data(),
                                                      s.zero(), b.desc, dbias.data()));
  }
}

}  // namespace

void register_conv_kernels() {
  kernels::conv2d.set(DeviceType::CUDA, conv2d_kernel);
  kernels::conv2d_backward_input.set(DeviceType::CUDA, conv2d_backward_input_kernel);
  kernels::conv2d_backward_weight.set(DeviceType::CUDA, conv2d_backward_weight_kernel);
}

}  // namespace lockstep::cuda
