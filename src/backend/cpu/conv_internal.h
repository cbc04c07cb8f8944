// Internals shared by the CPU convolution mechanisms (conv_im2col_gemm.cpp, conv_direct_avx512.cpp,
// conv_onednn.cpp) and their dispatch (conv_kernels.cpp): per-thread scratch, the batch chunking of the
// im2col path, and each mechanism's entry points. Not part of the public kernel API (conv_kernels.h).
#pragma once

#include <omp.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <mutex>

#include "src/backend/cpu/conv_kernels.h"
#include "src/core/error.h"

namespace lockstep::cpu::conv_internal {

// ---------------------------------------------------------------------------------------------------------
// Per-thread scratch: growable 64-byte-aligned buffers, one per slot, reused across calls and never shrunk.
// Owned by the thread (OpenMP workers are persistent), so no locking is needed.

enum Slot : int {
  kCol,
  kTmp,
  kAcc,
  kDnnlIn0,
  kDnnlIn1,
  kDnnlOut,
  kDnnlOutWeights,  // the weight gradient's chunk when both backward passes run together
  kDnnlWei,
  kDnnlWeiTail,
  kDnnlBias,
  kAccBias,
  kDnnlPad,
  kNumSlots
};

class ThreadScratch {
 public:
  void* get(Slot slot, size_t bytes) {
    Buffer& b = buffers_[slot];
    if (b.bytes < bytes) {
      const size_t want = std::max(bytes, b.bytes + b.bytes / 2);
      const size_t rounded = (want + 63) / 64 * 64;
      b.data.reset();
      b.bytes = 0;
      void* p = std::aligned_alloc(64, rounded);
      if (p == nullptr)
        throw Error(str_cat("conv2d: out of memory allocating ", rounded, " bytes of scratch"));
      b.data.reset(p);
      b.bytes = rounded;
    }
    return b.data.get();
  }

 private:
  struct FreeDeleter {
    void operator()(void* p) const { std::free(p); }
  };
  struct Buffer {
    std::unique_ptr<void, FreeDeleter> data;
    size_t bytes = 0;
  };
  std::array<Buffer, kNumSlots> buffers_;
};

// The calling thread's scratch (one per thread, shared by the three mechanisms).
ThreadScratch& thread_scratch();

template <class T>
inline T* scratch_of(Slot slot, int64_t elems) {
  return static_cast<T*>(thread_scratch().get(slot, static_cast<size_t>(elems) * sizeof(T)));
}

// ---------------------------------------------------------------------------------------------------------
// im2col path. Images are processed in chunks of nb; the columns of a chunk sit side by side:
// col [Cg*R*S, nb*P*Q], column i*P*Q + p*Q + q belongs to image i of the chunk.

struct GemmPlan {
  int64_t Cg, Kg, CRS, PQ, HW;
  bool direct;  // 1x1, stride 1, no padding: x itself is the column matrix
  int64_t nb;   // images per chunk
  int64_t nchunks;
  bool batch_parallel;  // chunks spread over threads with single-threaded GEMM; else threaded GEMM
};

// Chunking of the batch for the im2col path (also used by the direct kernel); throws NotImplementedError when
// a GEMM dimension exceeds the int range of BLAS.
GemmPlan make_gemm_plan(const Conv2dGeometry& g);

// The kernel covers the whole (unpadded) input, so x [N, C*H*W] and y [N, K] are plain matrices: one GEMM.
bool is_dense(const Conv2dGeometry& g);

// Valid output columns [q0, q1) for which iw = q*stride + off lies in [0, W).
inline void valid_range(int64_t off, int64_t stride, int64_t W, int64_t Q, int64_t& q0, int64_t& q1) {
  q0 = off >= 0 ? 0 : (-off + stride - 1) / stride;
  q1 = W - off <= 0 ? 0 : (W - off + stride - 1) / stride;
  q1 = std::min(q1, Q);
  q0 = std::min(q0, q1);
}

// Adds the columns back into the image: dx [Cg,H,W] += col2im(col), col [Cg*R*S, P*Q] with leading dimension
// ldc. Parallel over channels (race-free) when `parallel`. Instantiated for float and double.
template <class T>
void col2im_add(const Conv2dGeometry& g, int64_t Cg, const T* col, int64_t ldc, T* dx, bool parallel);

// Runs body(thread, chunk, threaded_inner) over all chunks: either chunks spread over the OpenMP team (each
// thread acquires its scratch first; a failed allocation is rethrown after the region), or serially on the
// calling thread with threaded GEMMs and im2col. setup(thread) acquires per-thread scratch and may throw.
template <class Setup, class Body>
void run_chunks(const GemmPlan& p, Setup&& setup, Body&& body) {
  if (!p.batch_parallel) {
    setup(0);
    for (int64_t i = 0; i < p.nchunks; ++i) body(0, i, true);
    return;
  }
  std::atomic<bool> failed{false};
  std::exception_ptr error;
  std::mutex error_mutex;
#pragma omp parallel
  {
    const int t = omp_get_thread_num();
    try {
      setup(t);
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex);
      if (!error) error = std::current_exception();
      failed = true;
    }
#pragma omp barrier
    if (!failed.load()) {
#pragma omp for schedule(static)
      for (int64_t i = 0; i < p.nchunks; ++i) body(t, i, false);
    }
  }
  if (error) std::rethrow_exception(error);
}

// ---------------------------------------------------------------------------------------------------------
// 16-float vectors for the AVX-512F kernels (GCC vector extensions), for use in functions compiled for
// avx512f (under #pragma GCC target("avx512f")) on a CPU that has it.

using v16f = float __attribute__((vector_size(64)));
inline constexpr int64_t kLanes = 16;

[[gnu::target("avx512f"), gnu::always_inline]] inline v16f load16(const float* p) {
  v16f v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
[[gnu::target("avx512f"), gnu::always_inline]] inline void store16(float* p, v16f v) {
  std::memcpy(p, &v, sizeof v);
}
// s - (+0) == s for every s: folds to a broadcast.
[[gnu::target("avx512f"), gnu::always_inline]] inline v16f splat16(float s) { return s - v16f{}; }

// ---------------------------------------------------------------------------------------------------------
// Mechanisms. Each assumes a validated geometry (validate_conv2d_geometry) and is picked by the dispatch in
// conv_kernels.cpp.

// The three passes of a convolution (named after oneDNN's primitives).
enum class Pass : int { kForward, kBackwardData, kBackwardWeights };

// im2col + OpenBLAS GEMM (conv_im2col_gemm.cpp), f32 and f64: the contracts of conv2d_forward,
// conv2d_backward_input and conv2d_backward_weight in conv_kernels.h.
template <class T>
void forward_gemm(const Conv2dGeometry& g, const T* x, const T* w, const T* bias, T* y);
template <class T>
void backward_input_gemm(const Conv2dGeometry& g, const T* dy, const T* w, T* dx);
template <class T>
void backward_weight_gemm(const Conv2dGeometry& g, const T* dy, const T* x, T* dw, T* dbias);

// Direct AVX-512 f32 input gradient (conv_direct_avx512.cpp): ungrouped convolutions only, on a CPU with
// AVX-512F.
void direct_backward_input(const Conv2dGeometry& g, const float* dy, const float* w, float* dx);

// Direct f32 convolutions with few output channels (conv_direct_narrow.cpp): where narrow_applies (a CPU
// with AVX-512F, K <= kNarrowK, stride 1, no dilation, no groups, padding below the kernel size, Q >= 8,
// C*R*S >= 16), the
// contracts of conv2d_forward, conv2d_backward_input and conv2d_backward_weight; results independent of the
// thread count.
inline constexpr int64_t kNarrowK = 4;
bool narrow_applies(const Conv2dGeometry& g);
void narrow_forward(const Conv2dGeometry& g, const float* x, const float* w, const float* bias, float* y);
void narrow_backward_input(const Conv2dGeometry& g, const float* dy, const float* w, float* dx);
void narrow_backward_weight(const Conv2dGeometry& g, const float* dy, const float* x, float* dw,
                            float* dbias);

// The NCHW -> NHWC transpose into oneDNN's bf16 convolutions (conv_layout.cpp): src [N, C, HW] f32 -> dst
// [N, HW, C] as bf16 bits (bf16_bits' rounding).
void nchw_to_nhwc_bf16(const float* src, std::uint16_t* dst, int64_t N, int64_t C, int64_t HW);

// oneDNN (conv_onednn.cpp), f32 operands in the caller's plain layouts: forward a=x, b=w, out=y, bias=bias
// (input, nullable); backward data a=dy, b=w, out=dx, bias=null; backward weights a=x, b=dy, out=dw,
// bias=dbias (output, nullable). With `bf16`, a and b are converted to bfloat16 on their way into the
// primitive (the reorders to its layouts round them) and out and bias stay f32. Returns false, having written
// nothing, when oneDNN has no implementation for the geometry, unless `required`: then throws
// NotImplementedError.
bool onednn_conv2d(Pass pass, const Conv2dGeometry& g, const float* a, const float* b, float* out,
                   float* bias, bool required, bool bf16);

// Both f32 backward passes on oneDNN in one walk over the batch: dx = backward data (dy, w) and dw, dbias
// (nullable) = backward weights (x, dy), each chunk of dy reordered once into the layout both primitives
// read (and then still in cache for the second). Returns false, having written nothing, when oneDNN lacks
// either pass for the geometry or the two read dy in different layouts; run the passes apart then.
bool onednn_conv2d_backward(const Conv2dGeometry& g, const float* dy, const float* x, const float* w,
                            float* dx, float* dw, float* dbias);

}  // namespace lockstep::cpu::conv_internal
