// CUDA GEMM through cuBLAS (strided-batched), one cuBLAS handle per device created on first use.
// cuBLAS is column-major: a row-major C [M, N] is a column-major C^T, so we compute C^T = op(B)^T op(A)^T.
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <climits>
#include <mutex>
#include <unordered_map>

#include "src/backend/cuda/bf16.h"
#include "src/backend/cuda/check.h"
#include "src/backend/cuda/device.h"
#include "src/backend/cuda/register.h"
#include "src/core/precision.h"
#include "src/ops/kernels.h"

namespace lockstep::cuda {
namespace {

// The handle of the current device, bound to the default stream. Handles live until the process ends
// (destroying them during static destruction could run after the CUDA runtime has shut down).
cublasHandle_t handle_for(Device device) {
  static std::mutex mutex;
  static std::unordered_map<int, cublasHandle_t> handles;
  std::lock_guard<std::mutex> lock(mutex);
  auto it = handles.find(device.index);
  if (it != handles.end()) return it->second;
  cublasHandle_t handle = nullptr;
  LOCKSTEP_CUBLAS_CHECK(cublasCreate(&handle));
  LOCKSTEP_CUBLAS_CHECK(cublasSetStream(handle, nullptr));
  // Full-precision FP32 (no TF32 tensor cores), so results match the CPU within rounding; bf16 asks for its
  // compute type per call.
  LOCKSTEP_CUBLAS_CHECK(cublasSetMathMode(handle, CUBLAS_DEFAULT_MATH));
  handles.emplace(device.index, handle);
  return handle;
}

int as_int(const char* what, std::int64_t value) {
  LOCKSTEP_CHECK(value <= INT_MAX, NotImplementedError, "gemm (CUDA): expected ", what, " <= ", INT_MAX,
                 " for cuBLAS, but got ", value);
  return static_cast<int>(value);
}

// c *= beta for a contiguous c on the current device (beta = 0 writes zeros, ignoring NaNs already in c).
void scale_output(cublasHandle_t handle, const Tensor& c, double beta) {
  if (beta == 1.0) return;
  if (beta == 0.0) {
    LOCKSTEP_CUDA_CHECK(cudaMemsetAsync(c.data(), 0, static_cast<std::size_t>(c.numel()) * element_size(c.dtype()),
                                        nullptr));
    return;
  }
  const int count = as_int("c's element count", c.numel());
  if (c.dtype() == DType::f32) {
    const float b = static_cast<float>(beta);
    LOCKSTEP_CUBLAS_CHECK(cublasSscal(handle, count, &b, c.data<float>(), 1));
  } else {
    LOCKSTEP_CUBLAS_CHECK(cublasDscal(handle, count, &beta, c.data<double>(), 1));
  }
}

void gemm_kernel(const Tensor& a, const Tensor& b, const Tensor& c, Transpose ta, Transpose tb, double alpha,
                 double beta) {
  LOCKSTEP_CHECK(a.dim() == 3 && b.dim() == 3 && c.dim() == 3 && a.is_contiguous() && b.is_contiguous() &&
                     c.is_contiguous(),
                 ValueError, "gemm (CUDA): expected contiguous 3-d operands, but got a ", shape_str(a.shape()),
                 ", b ", shape_str(b.shape()), ", c ", shape_str(c.shape()));
  LOCKSTEP_CHECK(a.device() == c.device() && b.device() == c.device(), DeviceError,
                 "gemm (CUDA): expected operands on one device, but got ", a.device().str(), ", ", b.device().str(),
                 ", ", c.device().str());
  LOCKSTEP_CHECK(a.dtype() == c.dtype() && b.dtype() == c.dtype() && (c.dtype() == DType::f32 || c.dtype() == DType::f64),
                 TypeError, "gemm (CUDA): expected f32 or f64 operands of one dtype, but got ", dtype_name(a.dtype()),
                 ", ", dtype_name(b.dtype()), ", ", dtype_name(c.dtype()));
  const std::int64_t batch = c.size(0), m = c.size(1), n = c.size(2);
  const std::int64_t k = ta == Transpose::kNo ? a.size(2) : a.size(1);
  const std::int64_t a_rows = ta == Transpose::kNo ? a.size(1) : a.size(2);
  const std::int64_t b_rows = tb == Transpose::kNo ? b.size(1) : b.size(2);
  const std::int64_t b_cols = tb == Transpose::kNo ? b.size(2) : b.size(1);
  LOCKSTEP_CHECK((a.size(0) == 1 || a.size(0) == batch) && (b.size(0) == 1 || b.size(0) == batch) && a_rows == m &&
                     b_rows == k && b_cols == n,
                 ValueError, "gemm (CUDA): expected op(a) [", batch, "|1, ", m, ", ", k, "] and op(b) [", batch, "|1, ", k,
                 ", ", n, "] for c ", shape_str(c.shape()), ", but got a ", shape_str(a.shape()),
                 ta == Transpose::kYes ? " (transposed)" : "", " and b ", shape_str(b.shape()),
                 tb == Transpose::kYes ? " (transposed)" : "");
  if (batch == 0 || m == 0 || n == 0) return;
  // Leading dimensions are the row lengths of the row-major operands (at least 1, as cuBLAS requires).
  const int lda = as_int("a row length", std::max<std::int64_t>(1, a.size(2)));
  const int ldb = as_int("b row length", std::max<std::int64_t>(1, b.size(2)));
  const int ldc = as_int("n", n);
  // A batch dimension of 1 in a or b is broadcast (stride 0).
  const long long stride_a = a.size(0) == 1 ? 0 : a.size(1) * a.size(2);
  const long long stride_b = b.size(0) == 1 ? 0 : b.size(1) * b.size(2);
  const long long stride_c = m * n;
  const cublasOperation_t op_a = ta == Transpose::kNo ? CUBLAS_OP_N : CUBLAS_OP_T;
  const cublasOperation_t op_b = tb == Transpose::kNo ? CUBLAS_OP_N : CUBLAS_OP_T;
  const int cm = as_int("n", n), cn = as_int("m", m), ck = as_int("k", k), count = as_int("batch", batch);
  DeviceGuard guard(c.device());
  cublasHandle_t handle = handle_for(c.device());
  if (k == 0) {
    // An empty product: c = beta * c, without asking cuBLAS about zero-sized operands.
    scale_output(handle, c, beta);
    return;
  }
  dispatch_floating("gemm (CUDA)", c.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* pa = a.data<T>();
    const T* pb = b.data<T>();
    T* pc = c.data<T>();
    if constexpr (std::is_same_v<T, float>) {
      const float al = static_cast<float>(alpha), be = static_cast<float>(beta);
      if (matmul_precision() == MatmulPrecision::kBf16) {
        // bf16 (run.precision): bf16 copies of the operands, rounded as on the CPU (cuBLAS's FAST_16BF
        // compute type may round to TF32 instead, and in no stated way), products accumulated in f32, the
        // result f32.
        const Tensor ab = to_bf16(a), bb = to_bf16(b);
        LOCKSTEP_CUBLAS_CHECK(cublasGemmStridedBatchedEx(handle, op_b, op_a, cm, cn, ck, &al, bb.data(),
                                                         CUDA_R_16BF, ldb, stride_b, ab.data(), CUDA_R_16BF,
                                                         lda, stride_a, &be, pc, CUDA_R_32F, ldc, stride_c,
                                                         count, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
      } else {
        LOCKSTEP_CUBLAS_CHECK(cublasSgemmStridedBatched(handle, op_b, op_a, cm, cn, ck, &al, pb, ldb,
                                                        stride_b, pa, lda, stride_a, &be, pc, ldc, stride_c,
                                                        count));
      }
    } else {
      LOCKSTEP_CUBLAS_CHECK(cublasDgemmStridedBatched(handle, op_b, op_a, cm, cn, ck, &alpha, pb, ldb, stride_b, pa,
                                                      lda, stride_a, &beta, pc, ldc, stride_c, count));
    }
  });
}

}  // namespace

void register_linalg_kernels() { kernels::gemm.set(DeviceType::CUDA, gemm_kernel); }

}  // namespace lockstep::cuda
