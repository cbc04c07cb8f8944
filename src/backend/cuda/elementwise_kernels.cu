// CUDA element-wise kernels: fill, converting copy and the arithmetic binary ops, over strided layouts of up
// to kMaxDims dimensions, with a linear fast path when every operand is contiguous. Grid-stride loops.
#include <cuda_runtime.h>

#include <algorithm>

#include "src/backend/cuda/check.h"
#include "src/backend/cuda/elementwise_launch.h"

namespace lockstep::cuda {
namespace {

constexpr int kThreads = 256;
constexpr std::int64_t kMaxBlocks = 65536;

unsigned blocks_for(std::int64_t n) {
  return static_cast<unsigned>(std::min<std::int64_t>((n + kThreads - 1) / kThreads, kMaxBlocks));
}

__device__ inline std::int64_t first_index() {
  return static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ inline std::int64_t grid_stride() { return static_cast<std::int64_t>(blockDim.x) * gridDim.x; }

template <class T, bool kContiguous>
__global__ void fill_kernel(T* dst, Layout<1> layout, std::int64_t n, T value) {
  for (std::int64_t i = first_index(); i < n; i += grid_stride()) {
    if constexpr (kContiguous) {
      dst[i] = value;
    } else {
      std::int64_t off[1];
      element_offsets(layout, i, off);
      dst[off[0]] = value;
    }
  }
}

template <class Dst, class Src, bool kContiguous>
__global__ void copy_kernel(Dst* dst, const Src* src, Layout<2> layout, std::int64_t n) {
  for (std::int64_t i = first_index(); i < n; i += grid_stride()) {
    if constexpr (kContiguous) {
      dst[i] = static_cast<Dst>(src[i]);
    } else {
      std::int64_t off[2];
      element_offsets(layout, i, off);
      dst[off[0]] = static_cast<Dst>(src[off[1]]);
    }
  }
}

// Products rounded on their own (never contracted into an FMA), so a + alpha * b matches the CPU bit for bit.
__device__ inline float mul_rn(float x, float y) { return __fmul_rn(x, y); }
__device__ inline double mul_rn(double x, double y) { return __dmul_rn(x, y); }

template <class T> struct AddFn {
  T alpha;
  __device__ T operator()(T x, T y) const { return x + mul_rn(alpha, y); }
};
template <class T> struct SubFn {
  T alpha;
  __device__ T operator()(T x, T y) const { return x - mul_rn(alpha, y); }
};
template <class T> struct MulFn {
  __device__ T operator()(T x, T y) const { return x * y; }
};
template <class T> struct DivFn {
  __device__ T operator()(T x, T y) const { return x / y; }
};

// out may alias a: each thread reads its own element before writing it.
template <class T, class F, bool kContiguous>
__global__ void binary_kernel(T* out, const T* a, const T* b, Layout<3> layout, std::int64_t n, F f) {
  for (std::int64_t i = first_index(); i < n; i += grid_stride()) {
    if constexpr (kContiguous) {
      out[i] = f(a[i], b[i]);
    } else {
      std::int64_t off[3];
      element_offsets(layout, i, off);
      out[off[0]] = f(a[off[1]], b[off[2]]);
    }
  }
}

template <class T> void fill_typed(void* dst, const Layout<1>& layout, std::int64_t n, double value) {
  const T v = static_cast<T>(value);
  T* d = static_cast<T*>(dst);
  if (layout.contiguous()) {
    fill_kernel<T, true><<<blocks_for(n), kThreads>>>(d, layout, n, v);
  } else {
    fill_kernel<T, false><<<blocks_for(n), kThreads>>>(d, layout, n, v);
  }
  check_cuda(cudaGetLastError(), "fill_kernel<<<...>>>");
}

template <class Dst, class Src> void copy_typed(void* dst, const void* src, const Layout<2>& layout, std::int64_t n) {
  Dst* d = static_cast<Dst*>(dst);
  const Src* s = static_cast<const Src*>(src);
  if (layout.contiguous()) {
    copy_kernel<Dst, Src, true><<<blocks_for(n), kThreads>>>(d, s, layout, n);
  } else {
    copy_kernel<Dst, Src, false><<<blocks_for(n), kThreads>>>(d, s, layout, n);
  }
  check_cuda(cudaGetLastError(), "copy_kernel<<<...>>>");
}

template <class T, class F>
void binary_typed(void* out, const void* a, const void* b, const Layout<3>& layout, std::int64_t n, F f) {
  T* o = static_cast<T*>(out);
  const T* x = static_cast<const T*>(a);
  const T* y = static_cast<const T*>(b);
  if (layout.contiguous()) {
    binary_kernel<T, F, true><<<blocks_for(n), kThreads>>>(o, x, y, layout, n, f);
  } else {
    binary_kernel<T, F, false><<<blocks_for(n), kThreads>>>(o, x, y, layout, n, f);
  }
  check_cuda(cudaGetLastError(), "binary_kernel<<<...>>>");
}

template <class T>
void binary_dispatch(ArithOp op, void* out, const void* a, const void* b, const Layout<3>& layout, std::int64_t n,
                     double alpha) {
  const T al = static_cast<T>(alpha);
  switch (op) {
    case ArithOp::kAdd: return binary_typed<T>(out, a, b, layout, n, AddFn<T>{al});
    case ArithOp::kSub: return binary_typed<T>(out, a, b, layout, n, SubFn<T>{al});
    case ArithOp::kMul: return binary_typed<T>(out, a, b, layout, n, MulFn<T>{});
    case ArithOp::kDiv: return binary_typed<T>(out, a, b, layout, n, DivFn<T>{});
  }
}

}  // namespace

void launch_fill(DType dtype, void* dst, const Layout<1>& layout, std::int64_t n, double value) {
  if (n == 0) return;
  dispatch_all("fill (CUDA)", dtype, [&](auto tag) { fill_typed<decltype(tag)>(dst, layout, n, value); });
}

void launch_copy(DType dst_dtype, void* dst, DType src_dtype, const void* src, const Layout<2>& layout,
                 std::int64_t n) {
  if (n == 0) return;
  dispatch_all("copy (CUDA)", dst_dtype, [&](auto d) {
    dispatch_all("copy (CUDA)", src_dtype, [&](auto s) { copy_typed<decltype(d), decltype(s)>(dst, src, layout, n); });
  });
}

void launch_binary(ArithOp op, DType dtype, void* out, const void* a, const void* b, const Layout<3>& layout,
                   std::int64_t n, double alpha) {
  if (n == 0) return;
  dispatch_floating("binary (CUDA)", dtype,
                    [&](auto tag) { binary_dispatch<decltype(tag)>(op, out, a, b, layout, n, alpha); });
}

}  // namespace lockstep::cuda
