// Turns failed CUDA runtime, cuBLAS and cuDNN calls into lockstep::DeviceError naming the call and the error.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>

namespace lockstep::cuda {

// Throw DeviceError("<call> failed: <error name>: <error string>") when the status is not success.
void check_cuda(cudaError_t status, const char* call);
void check_cublas(cublasStatus_t status, const char* call);
void check_cudnn(cudnnStatus_t status, const char* call);

}  // namespace lockstep::cuda

#define LOCKSTEP_CUDA_CHECK(call) ::lockstep::cuda::check_cuda((call), #call)
#define LOCKSTEP_CUBLAS_CHECK(call) ::lockstep::cuda::check_cublas((call), #call)
#define LOCKSTEP_CUDNN_CHECK(call) ::lockstep::cuda::check_cudnn((call), #call)
