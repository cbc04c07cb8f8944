// Error translation for the CUDA runtime, cuBLAS and cuDNN.
#include "src/backend/cuda/check.h"

#include "src/core/error.h"

namespace lockstep::cuda {

void check_cuda(cudaError_t status, const char* call) {
  if (status == cudaSuccess) return;
  // Clears a non-sticky error so that it is not reported again by the next unrelated call.
  cudaGetLastError();
  throw DeviceError(str_cat(call, " failed: ", cudaGetErrorName(status), ": ", cudaGetErrorString(status)));
}

void check_cublas(cublasStatus_t status, const char* call) {
  if (status == CUBLAS_STATUS_SUCCESS) return;
  throw DeviceError(str_cat(call, " failed: ", cublasGetStatusName(status), ": ", cublasGetStatusString(status)));
}

void check_cudnn(cudnnStatus_t status, const char* call) {
  if (status == CUDNN_STATUS_SUCCESS) return;
  throw DeviceError(str_cat(call, " failed: ", cudnnGetErrorString(status)));
}

}  // namespace lockstep::cuda
