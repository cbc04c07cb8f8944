// CPU GEMM through OpenBLAS (cblas), batched over the leading dimension. f32 at bf16 precision
// (src/core/precision.h) runs sgemm on copies of the operands rounded to bf16: the products of bf16 numbers
// are exact in f32, so these are bf16 GEMM's numbers, at f32 speed (Debian's OpenBLAS has no sbgemm).
#include <cblas.h>

#include <vector>

#include "src/backend/cpu/register.h"
#include "src/core/precision.h"
#include "src/ops/kernels.h"

namespace lockstep::cpu {
namespace {

void gemm_kernel(const Tensor& a, const Tensor& b, const Tensor& c, Transpose ta, Transpose tb, double alpha,
                 double beta) {
  const std::int64_t batch = c.size(0), m = c.size(1), n = c.size(2);
  const std::int64_t k = ta == Transpose::kNo ? a.size(2) : a.size(1);
  const CBLAS_TRANSPOSE op_a = ta == Transpose::kNo ? CblasNoTrans : CblasTrans;
  const CBLAS_TRANSPOSE op_b = tb == Transpose::kNo ? CblasNoTrans : CblasTrans;
  const blasint lda = static_cast<blasint>(a.size(2)), ldb = static_cast<blasint>(b.size(2));
  const std::int64_t sa = a.size(1) * a.size(2), sb = b.size(1) * b.size(2), sc = m * n;
  dispatch_floating("gemm", c.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* pa = a.data<T>();
    const T* pb = b.data<T>();
    T* pc = c.data<T>();
    std::vector<float> rounded_a, rounded_b;
    if constexpr (std::is_same_v<T, float>) {
      if (matmul_precision() == MatmulPrecision::kBf16) {
        rounded_a = rounded_to_bf16(pa, a.numel());
        rounded_b = rounded_to_bf16(pb, b.numel());
        pa = rounded_a.data();
        pb = rounded_b.data();
      }
    }
    for (std::int64_t i = 0; i < batch; ++i) {
      // A batch dimension of 1 in a or b is broadcast (stride 0).
      const T* ai = pa + (a.size(0) == 1 ? 0 : i * sa);
      const T* bi = pb + (b.size(0) == 1 ? 0 : i * sb);
      if constexpr (std::is_same_v<T, float>) {
        cblas_sgemm(CblasRowMajor, op_a, op_b, static_cast<blasint>(m), static_cast<blasint>(n), static_cast<blasint>(k),
                    static_cast<float>(alpha), ai, lda, bi, ldb, static_cast<float>(beta), pc + i * sc,
                    static_cast<blasint>(n));
      } else {
        cblas_dgemm(CblasRowMajor, op_a, op_b, static_cast<blasint>(m), static_cast<blasint>(n), static_cast<blasint>(k),
                    alpha, ai, lda, bi, ldb, beta, pc + i * sc, static_cast<blasint>(n));
      }
    }
  });
}

}  // namespace

void register_linalg_kernels() { kernels::gemm.set(DeviceType::CPU, gemm_kernel); }

}  // namespace lockstep::cpu
