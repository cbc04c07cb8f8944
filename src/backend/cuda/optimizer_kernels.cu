// CUDA fused optimizer kernels: multi-tensor launches (as PyTorch's foreach/fused optimizers and apex do)
// whose arguments carry up to kMaxTensors parameters' pointers, sizes and coefficients; block b finds its
// parameter from the running block counts and updates kBlockElements of it with the per-element formulas of
// src/optim/update_formulas.h, the same the CPU runs, so both give the same bits.
#include <cuda_runtime.h>

#include <algorithm>

#include "src/backend/cuda/check.h"
#include "src/backend/cuda/grid.cuh"
#include "src/backend/cuda/optimizer_launch.h"

namespace lockstep::cuda {
namespace {

// Parameters per launch: Adam's f64 arguments stay under the 4 KiB every CUDA version accepts.
constexpr int kMaxTensors = 24;
constexpr std::int64_t kBlockElements = 4 * kThreads;

// What every launch carries: per parameter its size and the end of its blocks (a running count).
struct Blocks {
  int count = 0;
  std::int64_t n[kMaxTensors];
  std::int64_t block_end[kMaxTensors];
};

// The parameter of this block and the element range [begin, end) it updates.
struct BlockRange {
  int k;
  std::int64_t begin, end;
};
__device__ inline BlockRange block_range(const Blocks& b) {
  const auto block = static_cast<std::int64_t>(blockIdx.x);
  int k = 0;
  while (block >= b.block_end[k]) ++k;
  const std::int64_t first = k == 0 ? 0 : b.block_end[k - 1];
  const std::int64_t begin = (block - first) * kBlockElements;
  const std::int64_t end = begin + kBlockElements;
  return {k, begin, end < b.n[k] ? end : b.n[k]};
}

template <class T>
struct SgdArgs {
  Blocks blocks;
  T* param[kMaxTensors];
  const T* grad[kMaxTensors];
  T* buf[kMaxTensors];
  bool decay[kMaxTensors];
  bool first[kMaxTensors];
  optim::SgdCoefficients<T> c;
  bool nesterov;
};

template <bool kDecay, class T>
__device__ void sgd_range(const SgdArgs<T>& a, const BlockRange& r) {
  T* p = a.param[r.k];
  const T* g = a.grad[r.k];
  T* buf = a.buf[r.k];
  const bool first = a.first[r.k];
  for (std::int64_t i = r.begin + threadIdx.x; i < r.end; i += blockDim.x) {
    if (buf == nullptr) {
      optim::sgd_element<kDecay>(p[i], g[i], a.c);
    } else if (a.nesterov) {
      optim::sgd_momentum_element<kDecay, true>(p[i], g[i], buf[i], first, a.c);
    } else {
      optim::sgd_momentum_element<kDecay, false>(p[i], g[i], buf[i], first, a.c);
    }
  }
}

template <class T>
__global__ void sgd_kernel(const SgdArgs<T> a) {
  const BlockRange r = block_range(a.blocks);
  if (a.decay[r.k]) {
    sgd_range<true>(a, r);
  } else {
    sgd_range<false>(a, r);
  }
}

template <class T>
struct AdamArgs {
  Blocks blocks;
  T* param[kMaxTensors];
  const T* grad[kMaxTensors];
  T* m[kMaxTensors];
  T* v[kMaxTensors];
  T* v_max[kMaxTensors];
  bool decay[kMaxTensors];
  optim::AdamCoefficients<T> c[kMaxTensors];
  optim::AdamDecay mode;
};

template <bool kL2, bool kDecoupled, bool kAmsGrad, class T>
__device__ void adam_range(const AdamArgs<T>& a, const BlockRange& r) {
  T* p = a.param[r.k];
  const T* g = a.grad[r.k];
  T* m = a.m[r.k];
  T* v = a.v[r.k];
  T* v_max = a.v_max[r.k];
  const optim::AdamCoefficients<T> c = a.c[r.k];
  for (std::int64_t i = r.begin + threadIdx.x; i < r.end; i += blockDim.x)
    optim::adam_element<kL2, kDecoupled, kAmsGrad>(p[i], g[i], m[i], v[i], kAmsGrad ? v_max + i : nullptr, c);
}

template <bool kL2, bool kDecoupled, class T>
__device__ void adam_range_ams(const AdamArgs<T>& a, const BlockRange& r) {
  if (a.v_max[r.k] != nullptr) {
    adam_range<kL2, kDecoupled, true>(a, r);
  } else {
    adam_range<kL2, kDecoupled, false>(a, r);
  }
}

template <class T>
__global__ void adam_kernel(const AdamArgs<T> a) {
  const BlockRange r = block_range(a.blocks);
  if (!a.decay[r.k] || a.mode == optim::AdamDecay::kNone) {
    adam_range_ams<false, false>(a, r);
  } else if (a.mode == optim::AdamDecay::kL2) {
    adam_range_ams<true, false>(a, r);
  } else {
    adam_range_ams<false, true>(a, r);
  }
}

// Calls launch(args, blocks) for each run of up to kMaxTensors parameters, after fill(args, slot, tensor)
// has put a parameter's pointers into the arguments and its blocks have been counted.
template <class Args, class Tensors, class Fill, class Launch>
void for_each_launch(const std::vector<Tensors>& tensors, Args args, Fill fill, Launch launch) {
  for (std::size_t start = 0; start < tensors.size(); start += kMaxTensors) {
    const std::size_t count = std::min<std::size_t>(kMaxTensors, tensors.size() - start);
    std::int64_t blocks = 0;
    args.blocks.count = static_cast<int>(count);
    for (std::size_t j = 0; j < count; ++j) {
      const Tensors& t = tensors[start + j];
      fill(args, static_cast<int>(j), t);
      args.blocks.n[j] = t.n;
      blocks += (t.n + kBlockElements - 1) / kBlockElements;
      args.blocks.block_end[j] = blocks;
    }
    if (blocks > 0) launch(args, blocks);
  }
}

}  // namespace

void launch_sgd_update(DType dtype, const std::vector<SgdTensors>& tensors, const optim::SgdHyper& hyper) {
  dispatch_floating("sgd_update (CUDA)", dtype, [&](auto tag) {
    using T = decltype(tag);
    SgdArgs<T> args{};
    args.c = optim::sgd_coefficients<T>(hyper);
    args.nesterov = hyper.nesterov;
    for_each_launch(
        tensors, args,
        [](SgdArgs<T>& a, int j, const SgdTensors& t) {
          a.param[j] = static_cast<T*>(t.param);
          a.grad[j] = static_cast<const T*>(t.grad);
          a.buf[j] = static_cast<T*>(t.momentum_buffer);
          a.decay[j] = t.decay;
          a.first[j] = t.first;
        },
        [](const SgdArgs<T>& a, std::int64_t blocks) {
          sgd_kernel<T><<<static_cast<unsigned>(blocks), kThreads>>>(a);
          check_cuda(cudaGetLastError(), "sgd_kernel<<<...>>>");
        });
  });
}

void launch_adam_update(DType dtype, const std::vector<AdamTensors>& tensors, const optim::AdamHyper& hyper) {
  dispatch_floating("adam_update (CUDA)", dtype, [&](auto tag) {
    using T = decltype(tag);
    static_assert(sizeof(AdamArgs<double>) <= 4096, "the kernel's arguments must fit in 4 KiB");
    AdamArgs<T> args{};
    args.mode = hyper.decay;
    for_each_launch(
        tensors, args,
        [&](AdamArgs<T>& a, int j, const AdamTensors& t) {
          a.param[j] = static_cast<T*>(t.param);
          a.grad[j] = static_cast<const T*>(t.grad);
          a.m[j] = static_cast<T*>(t.exp_avg);
          a.v[j] = static_cast<T*>(t.exp_avg_sq);
          a.v_max[j] = static_cast<T*>(t.max_exp_avg_sq);
          a.decay[j] = t.decay;
          a.c[j] = optim::adam_coefficients<T>(hyper, t.step);
        },
        [](const AdamArgs<T>& a, std::int64_t blocks) {
          adam_kernel<T><<<static_cast<unsigned>(blocks), kThreads>>>(a);
          check_cuda(cudaGetLastError(), "adam_kernel<<<...>>>");
        });
  });
}

}  // namespace lockstep::cuda
