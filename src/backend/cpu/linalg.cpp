// CPU GEMM through OpenBLAS (cblas), batched over the leading dimension. f32 at bf16 precision
// (src/core/precision.h) runs on oneDNN's matmul primitive over bf16 copies of the operands (AMX or
// AVX512-BF16 where the CPU has them; Debian's OpenBLAS has no sbgemm), or where oneDNN has no bf16
// implementation, sgemm on copies rounded to bf16: the products of bf16 numbers are exact in f32, so both
// compute bf16 GEMM's numbers up to summation order.
#include <cblas.h>
#include <omp.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <dnnl.hpp>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "src/backend/cpu/onednn.h"
#include "src/backend/cpu/register.h"
#include "src/core/error.h"
#include "src/core/precision.h"
#include "src/ops/kernels.h"

namespace lockstep::cpu {
namespace {

// bf16 GEMM primitives by shape: batch of a, b and c, m, n, k, transposes, alpha and beta (as bits), threads.
using MatmulKey = std::array<std::int64_t, 11>;
struct MatmulPlan {
  dnnl::matmul prim;
  dnnl::memory::desc a_md, b_md, c_md, scratchpad_md;
};

std::int64_t bits_of(double x) {
  std::int64_t b = 0;
  std::memcpy(&b, &x, sizeof(b));
  return b;
}

// The plan for c [batch, m, n] f32 = alpha * op(a) op(b) + beta * c with a [ba, m, k] (stored [ba, k, m] when
// transposed) and b [bb, k, n] (stored [bb, n, k]) in bf16, a batch of 1 broadcast; null when oneDNN has no
// implementation. Thread-safe.
std::shared_ptr<MatmulPlan> matmul_plan(std::int64_t ba, std::int64_t bb, std::int64_t batch, std::int64_t m,
                                        std::int64_t n, std::int64_t k, Transpose ta, Transpose tb,
                                        double alpha, double beta) {
  static std::mutex mutex;
  static std::unordered_map<MatmulKey, std::shared_ptr<MatmulPlan>, PrimitiveKeyHash> plans;
  const MatmulKey key{ba,
                      bb,
                      batch,
                      m,
                      n,
                      k,
                      static_cast<std::int64_t>(ta),
                      static_cast<std::int64_t>(tb),
                      bits_of(alpha),
                      bits_of(beta),
                      omp_get_max_threads()};
  {
    std::lock_guard<std::mutex> lock(mutex);
    const auto it = plans.find(key);
    if (it != plans.end()) return it->second;
  }
  using dnnl::memory;
  using dims = memory::dims;
  auto plan = std::make_shared<MatmulPlan>();
  plan->a_md = memory::desc({ba, m, k}, memory::data_type::bf16,
                            ta == Transpose::kNo ? dims{m * k, k, 1} : dims{m * k, 1, m});
  plan->b_md = memory::desc({bb, k, n}, memory::data_type::bf16,
                            tb == Transpose::kNo ? dims{k * n, n, 1} : dims{k * n, 1, k});
  plan->c_md = memory::desc({batch, m, n}, memory::data_type::f32, dims{m * n, n, 1});
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  if (alpha != 1.0) attr.set_output_scales(0, {static_cast<float>(alpha)});
  if (beta != 0.0) {
    dnnl::post_ops sum;
    sum.append_sum(static_cast<float>(beta));
    attr.set_post_ops(sum);
  }
  try {
    const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(plan->a_md, plan->b_md, plan->c_md), attr,
                                          onednn_engine());
    plan->prim = dnnl::matmul(pd);
    plan->scratchpad_md = pd.scratchpad_desc();
  } catch (const dnnl::error& e) {
    LOCKSTEP_INTERNAL_ASSERT(e.status == dnnl_unimplemented, "gemm: oneDNN's bf16 matmul failed with status ",
                             static_cast<int>(e.status), ": ", e.what());
    plan.reset();
  }
  std::lock_guard<std::mutex> lock(mutex);
  if (plans.size() >= 1024) plans.clear();
  return plans.emplace(key, plan).first->second;
}

// The bf16 GEMM on oneDNN; false (nothing written) where it has no implementation.
bool onednn_gemm_bf16(const Tensor& a, const Tensor& b, const Tensor& c, Transpose ta, Transpose tb,
                      double alpha, double beta) {
  const std::int64_t m = c.size(1), n = c.size(2), k = ta == Transpose::kNo ? a.size(2) : a.size(1);
  if (m == 0 || n == 0 || k == 0) return false;  // sgemm's conventions for empty products
  const std::shared_ptr<MatmulPlan> plan =
      matmul_plan(a.size(0), b.size(0), c.size(0), m, n, k, ta, tb, alpha, beta);
  if (!plan) return false;
  std::vector<std::uint16_t> ha = bf16_bits_copy(a.data<float>(), a.numel()),
                             hb = bf16_bits_copy(b.data<float>(), b.numel());
  thread_local std::vector<std::uint8_t> scratchpad;
  scratchpad.resize(plan->scratchpad_md.get_size() + 64);
  void* aligned = scratchpad.data() + (64 - reinterpret_cast<std::uintptr_t>(scratchpad.data()) % 64) % 64;
  dnnl::engine& eng = onednn_engine();
  try {
    plan->prim.execute(onednn_stream(),
                       {{DNNL_ARG_SRC, dnnl::memory(plan->a_md, eng, ha.data())},
                        {DNNL_ARG_WEIGHTS, dnnl::memory(plan->b_md, eng, hb.data())},
                        {DNNL_ARG_DST, dnnl::memory(plan->c_md, eng, c.data<float>())},
                        {DNNL_ARG_SCRATCHPAD, dnnl::memory(plan->scratchpad_md, eng, aligned)}});
    onednn_stream().wait();
  } catch (const dnnl::error& e) {
    LOCKSTEP_CHECK(e.status != dnnl_out_of_memory, Error, "gemm: oneDNN ran out of memory");
    LOCKSTEP_INTERNAL_ASSERT(false, "gemm: oneDNN's bf16 matmul failed with status ",
                             static_cast<int>(e.status), ": ", e.what());
  }
  return true;
}

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
        if (onednn_gemm_bf16(a, b, c, ta, tb, alpha, beta)) return;
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
