// CUDA convolutions through cuDNN: the forward pass, the input gradient and the weight (and bias) gradient of
// conv2d (conv_transpose2d runs on the same three). One cuDNN handle per device on the default stream; FMA
// math only (no TF32 tensor cores), so f32 results match the CPU to rounding. Algorithms are chosen once per
// shape from cuDNN's heuristics and cached; the gradients take deterministic algorithms only, so a run gives
// the same bits every time. Workspaces come from the caching allocator.
#include <cudnn.h>

#include <array>
#include <climits>
#include <mutex>
#include <unordered_map>

#include "src/backend/cuda/check.h"
#include "src/backend/cuda/device.h"
#include "src/backend/cuda/register.h"
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

// The descriptors of one convolution: x [N, C, H, W], w [K, C / groups, R, S], y [N, K, P, Q]; destroyed with
// it.
class Descriptors {
 public:
  Descriptors(const Tensor& x, const Tensor& w, const Tensor& y, const Conv2dParams& p) {
    const cudnnDataType_t type = data_type(x.dtype());
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
        as_int(p.dilation[0]), as_int(p.dilation[1]), CUDNN_CROSS_CORRELATION, type));
    LOCKSTEP_CUDNN_CHECK(cudnnSetConvolutionGroupCount(conv_, as_int(p.groups)));
    LOCKSTEP_CUDNN_CHECK(cudnnSetConvolutionMathType(conv_, CUDNN_FMA_MATH));
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

// The cached choice for one pass and shape: the algorithm (as int) and its workspace size.
struct Choice {
  int algo = 0;
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

ShapeKey key_of(Pass pass, const Tensor& x, const Tensor& w, const Conv2dParams& p) {
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
          0,
          0};
}

// The first of cuDNN's ranked candidates that succeeded, fits the workspace cap and (for the gradients) is
// deterministic. `perf` is filled by one of cudnnGet*Algorithm_v7.
template <class Perf>
Choice pick(const Perf* perf, int count, bool deterministic, const char* pass) {
  for (int i = 0; i < count; ++i) {
    if (perf[i].status != CUDNN_STATUS_SUCCESS || perf[i].memory > kMaxWorkspaceBytes) continue;
    if (deterministic && perf[i].determinism != CUDNN_DETERMINISTIC) continue;
    return {static_cast<int>(perf[i].algo), perf[i].memory};
  }
  throw NotImplementedError(str_cat("conv2d (CUDA): cuDNN offers no ", deterministic ? "deterministic " : "",
                                    "algorithm for the ", pass, " of this convolution within ",
                                    kMaxWorkspaceBytes >> 20, " MiB of workspace"));
}

Choice choose(Pass pass, cudnnHandle_t handle, const Descriptors& d, const ShapeKey& key) {
  static std::mutex mutex;
  static std::unordered_map<ShapeKey, Choice, ShapeKeyHash> cache;
  {
    std::lock_guard<std::mutex> lock(mutex);
    auto it = cache.find(key);
    if (it != cache.end()) return it->second;
  }
  Choice choice;
  int found = 0;
  if (pass == Pass::kForward) {
    cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    LOCKSTEP_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(
        handle, d.x_, d.w_, d.conv_, d.y_, CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &found, perf));
    choice = pick(perf, found, false, "forward pass");
  } else if (pass == Pass::kBackwardData) {
    cudnnConvolutionBwdDataAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
    LOCKSTEP_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(
        handle, d.w_, d.y_, d.conv_, d.x_, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &found, perf));
    choice = pick(perf, found, true, "input gradient");
  } else {
    cudnnConvolutionBwdFilterAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
    LOCKSTEP_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(
        handle, d.x_, d.y_, d.conv_, d.w_, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &found, perf));
    choice = pick(perf, found, true, "weight gradient");
  }
  std::lock_guard<std::mutex> lock(mutex);
  return cache.emplace(key, choice).first->second;
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

// A [1, K, 1, 1] descriptor of the bias.
struct BiasDescriptor {
  explicit BiasDescriptor(const Tensor& bias) {
    LOCKSTEP_CUDNN_CHECK(cudnnCreateTensorDescriptor(&desc));
    LOCKSTEP_CUDNN_CHECK(cudnnSetTensor4dDescriptor(desc, CUDNN_TENSOR_NCHW, data_type(bias.dtype()), 1,
                                                    as_int(bias.numel()), 1, 1));
  }
  ~BiasDescriptor() { cudnnDestroyTensorDescriptor(desc); }
  BiasDescriptor(const BiasDescriptor&) = delete;
  BiasDescriptor& operator=(const BiasDescriptor&) = delete;
  cudnnTensorDescriptor_t desc = nullptr;
};

void conv2d_kernel(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& y,
                   const Conv2dParams& p) {
  check_operands("conv2d (CUDA)", {&x, &w, &bias, &y});
  if (y.numel() == 0) return;
  DeviceGuard guard(y.device());
  const cudnnHandle_t handle = handle_for(y.device());
  const Descriptors d(x, w, y, p);
  const Choice choice = choose(Pass::kForward, handle, d, key_of(Pass::kForward, x, w, p));
  const Tensor ws = workspace(choice.workspace, y.device());
  const Scaling s(y.dtype());
  LOCKSTEP_CUDNN_CHECK(cudnnConvolutionForward(handle, s.one(), d.x_, x.data(), d.w_, w.data(), d.conv_,
                                               static_cast<cudnnConvolutionFwdAlgo_t>(choice.algo),
                                               data_or_null(ws), choice.workspace, s.zero(), d.y_, y.data()));
  if (bias.defined()) {
    const BiasDescriptor b(bias);
    LOCKSTEP_CUDNN_CHECK(cudnnAddTensor(handle, s.one(), b.desc, bias.data(), s.one(), d.y_, y.data()));
  }
}

void conv2d_backward_input_kernel(const Tensor& dy, const Tensor& w, const Tensor& dx,
                                  const Conv2dParams& p) {
  check_operands("conv2d_backward_input (CUDA)", {&dy, &w, &dx});
  if (dx.numel() == 0) return;
  DeviceGuard guard(dx.device());
  const cudnnHandle_t handle = handle_for(dx.device());
  const Descriptors d(dx, w, dy, p);
  const Choice choice = choose(Pass::kBackwardData, handle, d, key_of(Pass::kBackwardData, dx, w, p));
  const Tensor ws = workspace(choice.workspace, dx.device());
  const Scaling s(dx.dtype());
  LOCKSTEP_CUDNN_CHECK(cudnnConvolutionBackwardData(handle, s.one(), d.w_, w.data(), d.y_, dy.data(), d.conv_,
                                                    static_cast<cudnnConvolutionBwdDataAlgo_t>(choice.algo),
                                                    data_or_null(ws), choice.workspace, s.zero(), d.x_,
                                                    dx.data()));
}

void conv2d_backward_weight_kernel(const Tensor& dy, const Tensor& x, const Tensor& dw, const Tensor& dbias,
                                   const Conv2dParams& p) {
  check_operands("conv2d_backward_weight (CUDA)", {&dy, &x, &dw, &dbias});
  DeviceGuard guard(dw.device());
  const cudnnHandle_t handle = handle_for(dw.device());
  const Scaling s(dw.dtype());
  if (x.numel() == 0 || dy.numel() == 0) {  // an empty batch: zero gradients
    LOCKSTEP_CUDA_CHECK(cudaMemsetAsync(
        dw.data(), 0, static_cast<std::size_t>(dw.numel()) * element_size(dw.dtype()), nullptr));
    if (dbias.defined()) {
      LOCKSTEP_CUDA_CHECK(cudaMemsetAsync(
          dbias.data(), 0, static_cast<std::size_t>(dbias.numel()) * element_size(dbias.dtype()), nullptr));
    }
    return;
  }
  const Descriptors d(x, dw, dy, p);
  const Choice choice = choose(Pass::kBackwardFilter, handle, d, key_of(Pass::kBackwardFilter, x, dw, p));
  const Tensor ws = workspace(choice.workspace, dw.device());
  LOCKSTEP_CUDNN_CHECK(
      cudnnConvolutionBackwardFilter(handle, s.one(), d.x_, x.data(), d.y_, dy.data(), d.conv_,
                                     static_cast<cudnnConvolutionBwdFilterAlgo_t>(choice.algo),
                                     data_or_null(ws), choice.workspace, s.zero(), d.w_, dw.data()));
  if (dbias.defined()) {
    const BiasDescriptor b(dbias);
    LOCKSTEP_CUDNN_CHECK(
        cudnnConvolutionBackwardBias(handle, s.one(), d.y_, dy.data(), s.zero(), b.desc, dbias.data()));
  }
}

}  // namespace

void register_conv_kernels() {
  kernels::conv2d.set(DeviceType::CUDA, conv2d_kernel);
  kernels::conv2d_backward_input.set(DeviceType::CUDA, conv2d_backward_input_kernel);
  kernels::conv2d_backward_weight.set(DeviceType::CUDA, conv2d_backward_weight_kernel);
}

}  // namespace lockstep::cuda
