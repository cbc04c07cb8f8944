// CPU convolution kernels: oneDNN primitives (cached, run on L2-sized batch chunks) for f32, an im2col +
// OpenBLAS GEMM path for f64 and for the f32 cases where it is faster or oneDNN has no kernel, and a direct
// AVX-512 f32 input gradient for tiny C*R*S.
#include "src/backend/cpu/conv_kernels.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <dnnl.hpp>
#include <exception>
#include <memory>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <vector>

namespace lockstep::cpu {

namespace {

std::atomic<Conv2dPath> g_path{Conv2dPath::kAuto};

int64_t out_size(int64_t in, int64_t pad, int64_t dil, int64_t k, int64_t stride) {
  const int64_t span = in + 2 * pad - dil * (k - 1) - 1;
  return span < 0 || stride <= 0 ? 0 : span / stride + 1;
}

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
      if (p == nullptr) throw std::bad_alloc();
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

ThreadScratch& thread_scratch() {
  thread_local ThreadScratch scratch;
  return scratch;
}

template <class T>
T* scratch_of(Slot slot, int64_t elems) {
  return static_cast<T*>(thread_scratch().get(slot, static_cast<size_t>(elems) * sizeof(T)));
}

// ---------------------------------------------------------------------------------------------------------
// BLAS wrappers. OpenBLAS (OpenMP build) runs single-threaded when called inside a parallel region.

int blas_int(int64_t v) {
  if (v > INT_MAX)
    throw std::runtime_error("conv2d: GEMM dimension " + std::to_string(v) + " exceeds int range");
  return static_cast<int>(v);
}

void gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int64_t m, int64_t n, int64_t k, float alpha,
          const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, ta, tb, static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), alpha, a,
              static_cast<int>(lda), b, static_cast<int>(ldb), beta, c, static_cast<int>(ldc));
}

void gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int64_t m, int64_t n, int64_t k, double alpha,
          const double* a, int64_t lda, const double* b, int64_t ldb, double beta, double* c, int64_t ldc) {
  cblas_dgemm(CblasRowMajor, ta, tb, static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), alpha, a,
              static_cast<int>(lda), b, static_cast<int>(ldb), beta, c, static_cast<int>(ldc));
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

GemmPlan make_gemm_plan(const Conv2dGeometry& g) {
  GemmPlan p{};
  p.Cg = g.C / g.groups;
  p.Kg = g.K / g.groups;
  p.CRS = p.Cg * g.R * g.S;
  p.PQ = g.P() * g.Q();
  p.HW = g.H * g.W;
  p.direct = g.R == 1 && g.S == 1 && g.stride_h == 1 && g.stride_w == 1 && g.pad_h == 0 && g.pad_w == 0;
  const int64_t nthr = omp_in_parallel() ? 1 : omp_get_max_threads();
  // Enough columns per GEMM to amortise packing, while one chunk's columns stay within ~4 MiB.
  constexpr int64_t kTargetCols = 1024;
  constexpr int64_t kMaxColElems = int64_t{1} << 20;
  int64_t nb = std::max<int64_t>(1, kTargetCols / p.PQ);
  nb = std::min(nb, std::max<int64_t>(1, kMaxColElems / std::max<int64_t>(1, p.CRS * p.PQ)));
  p.batch_parallel = nthr > 1 && g.N >= nthr;
  if (p.batch_parallel) nb = std::min(nb, (g.N + nthr - 1) / nthr);
  p.nb = std::min(nb, g.N);
  p.nchunks = (g.N + p.nb - 1) / p.nb;
  blas_int(p.nb * std::max(p.PQ, p.HW));
  blas_int(p.CRS);
  return p;
}

// The kernel covers the whole (unpadded) input, so x [N, C*H*W] and y [N, K] are plain matrices: one GEMM.
bool is_dense(const Conv2dGeometry& g) {
  return g.groups == 1 && g.R == g.H && g.S == g.W && g.pad_h == 0 && g.pad_w == 0 && g.P() == 1 &&
         g.Q() == 1;
}

// Valid output columns [q0, q1) for which iw = q*stride + off lies in [0, W).
inline void valid_range(int64_t off, int64_t stride, int64_t W, int64_t Q, int64_t& q0, int64_t& q1) {
  q0 = off >= 0 ? 0 : (-off + stride - 1) / stride;
  q1 = W - off <= 0 ? 0 : (W - off + stride - 1) / stride;
  q1 = std::min(q1, Q);
  q0 = std::min(q0, q1);
}

// x: Cg channels of one image [Cg,H,W]; col: rows of length >= P*Q with leading dimension ldc.
template <class T>
void im2col(const Conv2dGeometry& g, int64_t Cg, const T* x, T* col, int64_t ldc, bool parallel) {
  const int64_t P = g.P(), Q = g.Q(), H = g.H, W = g.W, R = g.R, S = g.S;
  const int64_t rows = Cg * R * S;
#pragma omp parallel for schedule(static) if (parallel && rows * P * Q > 65536)
  for (int64_t row = 0; row < rows; ++row) {
    const int64_t c = row / (R * S), r = (row / S) % R, s = row % S;
    const T* xc = x + c * H * W;
    T* dst = col + row * ldc;
    const int64_t woff = s * g.dil_w - g.pad_w;
    int64_t q0, q1;
    valid_range(woff, g.stride_w, W, Q, q0, q1);
    for (int64_t p = 0; p < P; ++p) {
      T* d = dst + p * Q;
      const int64_t ih = p * g.stride_h - g.pad_h + r * g.dil_h;
      if (ih < 0 || ih >= H) {
        std::fill(d, d + Q, T(0));
        continue;
      }
      std::fill(d, d + q0, T(0));
      const T* src = xc + ih * W;
      if (g.stride_w == 1) {
        std::memcpy(d + q0, src + q0 + woff, static_cast<size_t>(q1 - q0) * sizeof(T));
      } else {
        for (int64_t q = q0; q < q1; ++q) d[q] = src[q * g.stride_w + woff];
      }
      std::fill(d + q1, d + Q, T(0));
    }
  }
}

// Adds the columns back into the image: dx [Cg,H,W] += col2im(col). Parallel over channels (race-free).
template <class T>
void col2im_add(const Conv2dGeometry& g, int64_t Cg, const T* col, int64_t ldc, T* dx, bool parallel) {
  const int64_t P = g.P(), Q = g.Q(), H = g.H, W = g.W, R = g.R, S = g.S;
#pragma omp parallel for schedule(static) if (parallel && Cg * R * S * P * Q > 65536)
  for (int64_t c = 0; c < Cg; ++c) {
    T* xc = dx + c * H * W;
    for (int64_t r = 0; r < R; ++r) {
      for (int64_t s = 0; s < S; ++s) {
        const T* src = col + ((c * R + r) * S + s) * ldc;
        const int64_t woff = s * g.dil_w - g.pad_w;
        int64_t q0, q1;
        valid_range(woff, g.stride_w, W, Q, q0, q1);
        for (int64_t p = 0; p < P; ++p) {
          const int64_t ih = p * g.stride_h - g.pad_h + r * g.dil_h;
          if (ih < 0 || ih >= H) continue;
          T* d = xc + ih * W;
          const T* sp = src + p * Q;
          if (g.stride_w == 1) {
            for (int64_t q = q0; q < q1; ++q) d[q + woff] += sp[q];
          } else {
            for (int64_t q = q0; q < q1; ++q) d[q * g.stride_w + woff] += sp[q];
          }
        }
      }
    }
  }
}

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

template <class T>
void forward_gemm(const Conv2dGeometry& g, const T* x, const T* w, const T* bias, T* y) {
  const GemmPlan p = make_gemm_plan(g);
  if (is_dense(g)) {  // y [N,K] = x [N,CRS] * w [K,CRS]^T + bias
    T beta = T(0);
    if (bias != nullptr) {
      for (int64_t n = 0; n < g.N; ++n) std::copy(bias, bias + g.K, y + n * g.K);
      beta = T(1);
    }
    gemm(CblasNoTrans, CblasTrans, g.N, g.K, p.CRS, T(1), x, p.CRS, w, p.CRS, beta, y, g.K);
    return;
  }
  const int64_t ld = p.nb * p.PQ;
  const int64_t col_elems = p.direct && p.nb == 1 ? 0 : p.CRS * ld;
  const int64_t tmp_elems = p.nb == 1 ? 0 : p.Kg * ld;
  const int nthr = p.batch_parallel ? omp_get_max_threads() : 1;
  std::vector<T*> cols(nthr, nullptr), tmps(nthr, nullptr);
  auto setup = [&](int t) {
    if (col_elems) cols[t] = scratch_of<T>(kCol, col_elems);
    if (tmp_elems) tmps[t] = scratch_of<T>(kTmp, tmp_elems);
  };
  auto body = [&](int t, int64_t chunk, bool par) {
    const int64_t n0 = chunk * p.nb, nb = std::min(p.nb, g.N - n0);
    T* col = cols[t];
    T* tmp = tmps[t];
    for (int64_t grp = 0; grp < g.groups; ++grp) {
      const T* wg = w + grp * p.Kg * p.CRS;
      if (p.nb == 1) {
        const T* xg = x + (n0 * g.C + grp * p.Cg) * p.HW;
        T* yg = y + (n0 * g.K + grp * p.Kg) * p.PQ;
        const T* b = xg;
        if (!p.direct) {
          im2col(g, p.Cg, xg, col, p.PQ, par);
          b = col;
        }
        T beta = T(0);
        if (bias != nullptr) {
          for (int64_t k = 0; k < p.Kg; ++k)
            std::fill(yg + k * p.PQ, yg + (k + 1) * p.PQ, bias[grp * p.Kg + k]);
          beta = T(1);
        }
        gemm(CblasNoTrans, CblasNoTrans, p.Kg, p.PQ, p.CRS, T(1), wg, p.CRS, b, p.PQ, beta, yg, p.PQ);
        continue;
      }
      for (int64_t i = 0; i < nb; ++i) {
        const T* xg = x + ((n0 + i) * g.C + grp * p.Cg) * p.HW;
        if (p.direct) {
          for (int64_t c = 0; c < p.Cg; ++c)
            std::memcpy(col + c * ld + i * p.PQ, xg + c * p.HW, p.PQ * sizeof(T));
        } else {
          im2col(g, p.Cg, xg, col + i * p.PQ, ld, par);
        }
      }
      gemm(CblasNoTrans, CblasNoTrans, p.Kg, nb * p.PQ, p.CRS, T(1), wg, p.CRS, col, ld, T(0), tmp, ld);
      for (int64_t i = 0; i < nb; ++i) {
        for (int64_t k = 0; k < p.Kg; ++k) {
          const T* src = tmp + k * ld + i * p.PQ;
          T* dst = y + ((n0 + i) * g.K + grp * p.Kg + k) * p.PQ;
          const T b = bias != nullptr ? bias[grp * p.Kg + k] : T(0);
          for (int64_t j = 0; j < p.PQ; ++j) dst[j] = src[j] + b;
        }
      }
    }
  };
  run_chunks(p, setup, body);
}

template <class T>
void backward_input_gemm(const Conv2dGeometry& g, const T* dy, const T* w, T* dx) {
  const GemmPlan p = make_gemm_plan(g);
  if (is_dense(g)) {  // dx [N,CRS] = dy [N,K] * w [K,CRS]
    gemm(CblasNoTrans, CblasNoTrans, g.N, p.CRS, g.K, T(1), dy, g.K, w, p.CRS, T(0), dx, p.CRS);
    return;
  }
  const int64_t ld = p.nb * p.PQ;
  const int64_t col_elems = p.direct && p.nb == 1 ? 0 : p.CRS * ld;
  const int64_t tmp_elems = p.nb == 1 ? 0 : p.Kg * ld;
  const int nthr = p.batch_parallel ? omp_get_max_threads() : 1;
  std::vector<T*> cols(nthr, nullptr), tmps(nthr, nullptr);
  auto setup = [&](int t) {
    if (col_elems) cols[t] = scratch_of<T>(kCol, col_elems);
    if (tmp_elems) tmps[t] = scratch_of<T>(kTmp, tmp_elems);
  };
  auto body = [&](int t, int64_t chunk, bool par) {
    const int64_t n0 = chunk * p.nb, nb = std::min(p.nb, g.N - n0);
    T* col = cols[t];
    T* tmp = tmps[t];
    for (int64_t grp = 0; grp < g.groups; ++grp) {
      const T* wg = w + grp * p.Kg * p.CRS;
      if (p.nb == 1) {
        const T* dyg = dy + (n0 * g.K + grp * p.Kg) * p.PQ;
        T* dxg = dx + (n0 * g.C + grp * p.Cg) * p.HW;
        if (p.direct) {
          gemm(CblasTrans, CblasNoTrans, p.CRS, p.PQ, p.Kg, T(1), wg, p.CRS, dyg, p.PQ, T(0), dxg, p.PQ);
        } else {
          gemm(CblasTrans, CblasNoTrans, p.CRS, p.PQ, p.Kg, T(1), wg, p.CRS, dyg, p.PQ, T(0), col, p.PQ);
          std::fill(dxg, dxg + p.Cg * p.HW, T(0));
          col2im_add(g, p.Cg, col, p.PQ, dxg, par);
        }
        continue;
      }
      for (int64_t i = 0; i < nb; ++i) {
        const T* dyg = dy + ((n0 + i) * g.K + grp * p.Kg) * p.PQ;
        for (int64_t k = 0; k < p.Kg; ++k)
          std::memcpy(tmp + k * ld + i * p.PQ, dyg + k * p.PQ, p.PQ * sizeof(T));
      }
      gemm(CblasTrans, CblasNoTrans, p.CRS, nb * p.PQ, p.Kg, T(1), wg, p.CRS, tmp, ld, T(0), col, ld);
      for (int64_t i = 0; i < nb; ++i) {
        T* dxg = dx + ((n0 + i) * g.C + grp * p.Cg) * p.HW;
        if (p.direct) {
          for (int64_t c = 0; c < p.Cg; ++c)
            std::memcpy(dxg + c * p.HW, col + c * ld + i * p.PQ, p.PQ * sizeof(T));
        } else {
          std::fill(dxg, dxg + p.Cg * p.HW, T(0));
          col2im_add(g, p.Cg, col + i * p.PQ, ld, dxg, par);
        }
      }
    }
  };
  run_chunks(p, setup, body);
}

template <class T>
void backward_bias(const Conv2dGeometry& g, const T* dy, T* dbias) {
  const int64_t PQ = g.P() * g.Q();
#pragma omp parallel for schedule(static) if (g.N * g.K * PQ > 65536)
  for (int64_t k = 0; k < g.K; ++k) {
    double acc = 0;
    for (int64_t n = 0; n < g.N; ++n) {
      const T* row = dy + (n * g.K + k) * PQ;
      T part = T(0);
      for (int64_t j = 0; j < PQ; ++j) part += row[j];
      acc += static_cast<double>(part);
    }
    dbias[k] = static_cast<T>(acc);
  }
}

template <class T>
void backward_weight_gemm(const Conv2dGeometry& g, const T* dy, const T* x, T* dw, T* dbias) {
  const GemmPlan p = make_gemm_plan(g);
  if (is_dense(g)) {  // dw [K,CRS] = dy [N,K]^T * x [N,CRS]
    gemm(CblasTrans, CblasNoTrans, g.K, p.CRS, g.N, T(1), dy, g.K, x, p.CRS, T(0), dw, p.CRS);
    if (dbias != nullptr) backward_bias(g, dy, dbias);
    return;
  }
  const int64_t ld = p.nb * p.PQ;
  const int64_t col_elems = p.direct && p.nb == 1 ? 0 : p.CRS * ld;
  const int64_t tmp_elems = p.nb == 1 ? 0 : p.Kg * ld;
  const int64_t dw_elems = g.K * p.CRS;
  const int nthr = p.batch_parallel ? omp_get_max_threads() : 1;
  std::vector<T*> cols(nthr, nullptr), tmps(nthr, nullptr), accs(nthr, nullptr);
  auto setup = [&](int t) {
    if (col_elems) cols[t] = scratch_of<T>(kCol, col_elems);
    if (tmp_elems) tmps[t] = scratch_of<T>(kTmp, tmp_elems);
    accs[t] = t == 0 ? dw : scratch_of<T>(kAcc, dw_elems);
    std::fill(accs[t], accs[t] + dw_elems, T(0));
  };
  auto body = [&](int t, int64_t chunk, bool par) {
    const int64_t n0 = chunk * p.nb, nb = std::min(p.nb, g.N - n0);
    T* col = cols[t];
    T* tmp = tmps[t];
    T* acc = accs[t];
    for (int64_t grp = 0; grp < g.groups; ++grp) {
      T* accg = acc + grp * p.Kg * p.CRS;
      if (p.nb == 1) {
        const T* xg = x + (n0 * g.C + grp * p.Cg) * p.HW;
        const T* dyg = dy + (n0 * g.K + grp * p.Kg) * p.PQ;
        const T* b = xg;
        if (!p.direct) {
          im2col(g, p.Cg, xg, col, p.PQ, par);
          b = col;
        }
        gemm(CblasNoTrans, CblasTrans, p.Kg, p.CRS, p.PQ, T(1), dyg, p.PQ, b, p.PQ, T(1), accg, p.CRS);
        continue;
      }
      for (int64_t i = 0; i < nb; ++i) {
        const T* xg = x + ((n0 + i) * g.C + grp * p.Cg) * p.HW;
        const T* dyg = dy + ((n0 + i) * g.K + grp * p.Kg) * p.PQ;
        for (int64_t k = 0; k < p.Kg; ++k)
          std::memcpy(tmp + k * ld + i * p.PQ, dyg + k * p.PQ, p.PQ * sizeof(T));
        if (p.direct) {
          for (int64_t c = 0; c < p.Cg; ++c)
            std::memcpy(col + c * ld + i * p.PQ, xg + c * p.HW, p.PQ * sizeof(T));
        } else {
          im2col(g, p.Cg, xg, col + i * p.PQ, ld, par);
        }
      }
      gemm(CblasNoTrans, CblasTrans, p.Kg, p.CRS, nb * p.PQ, T(1), tmp, ld, col, ld, T(1), accg, p.CRS);
    }
  };
  run_chunks(p, setup, body);
  if (nthr > 1) {
#pragma omp parallel for schedule(static) if (dw_elems > 16384)
    for (int64_t e = 0; e < dw_elems; ++e) {
      T s = dw[e];
      for (int t = 1; t < nthr; ++t) {
        if (accs[t] != nullptr) s += accs[t][e];
      }
      dw[e] = s;
    }
  }
  if (dbias != nullptr) backward_bias(g, dy, dbias);
}

// ---------------------------------------------------------------------------------------------------------
// Direct f32 input gradient for convolutions with a tiny C*R*S (transposed convolutions down to 1-2
// channels, 1x1 shortcuts): per image, col [C*R*S, P*Q] = w^T dy by a register-blocked AVX-512 FMA
// micro-kernel (no packing: the operands are small and cache-resident), then col2im. Images are spread
// statically over the OpenMP team (deterministic for a given thread count).

#pragma GCC push_options
#pragma GCC target("avx512f")

using v16f = float __attribute__((vector_size(64)));
constexpr int64_t kLanes = 16;
constexpr int64_t kPanel = 3 * kLanes;  // output columns per micro-kernel call
constexpr int kMaxRows = 8;             // output rows per micro-kernel call

inline v16f load16(const float* p) {
  v16f v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void store16(float* p, v16f v) { std::memcpy(p, &v, sizeof v); }
inline v16f splat16(float s) { return s - v16f{}; }  // s - (+0) == s for every s: folds to a broadcast

// c[m, 0:ncols] = sum_i a[m*lda + i] * b[i*ldb + 0:kPanel] for MB rows m; b holds kPanel readable columns
// (ncols <= kPanel of them are stored).
template <int MB>
void panel_kernel(int64_t kin, const float* a, int64_t lda, const float* b, int64_t ldb, float* c,
                  int64_t ldc, int64_t ncols) {
  v16f acc[MB][3] = {};
  for (int64_t i = 0; i < kin; ++i) {
    const float* bi = b + i * ldb;
    const v16f b0 = load16(bi), b1 = load16(bi + kLanes), b2 = load16(bi + 2 * kLanes);
    for (int m = 0; m < MB; ++m) {
      const v16f av = splat16(a[m * lda + i]);
      acc[m][0] += av * b0;
      acc[m][1] += av * b1;
      acc[m][2] += av * b2;
    }
  }
  for (int m = 0; m < MB; ++m) {
    float* cm = c + m * ldc;
    if (ncols == kPanel) {
      store16(cm, acc[m][0]);
      store16(cm + kLanes, acc[m][1]);
      store16(cm + 2 * kLanes, acc[m][2]);
    } else {
      float tmp[kPanel];
      store16(tmp, acc[m][0]);
      store16(tmp + kLanes, acc[m][1]);
      store16(tmp + 2 * kLanes, acc[m][2]);
      std::memcpy(cm, tmp, static_cast<size_t>(ncols) * sizeof(float));
    }
  }
}

// panel_kernel for the last rows < kMaxRows rows of a panel.
template <int MB = kMaxRows - 1>
void panel_rows(int rows, int64_t kin, const float* a, int64_t lda, const float* b, int64_t ldb, float* c,
                int64_t ldc, int64_t ncols) {
  if constexpr (MB > 0) {
    if (rows == MB) return panel_kernel<MB>(kin, a, lda, b, ldb, c, ldc, ncols);
    panel_rows<MB - 1>(rows, kin, a, lda, b, ldb, c, ldc, ncols);
  }
}

// c [M, N] (ldc) = a [M, kin] (lda) * b [kin, N] (ldb). panel: scratch of kin * kPanel floats for a packed
// copy of a column panel of b (the last, partial one, zero-padded, and those prone to L1 set conflicts).
void small_gemm(int64_t M, int64_t N, int64_t kin, const float* a, int64_t lda, const float* b, int64_t ldb,
                float* c, int64_t ldc, float* panel) {
  for (int64_t j0 = 0; j0 < N; j0 += kPanel) {
    const int64_t ncols = std::min(kPanel, N - j0);
    const float* bp = b + j0;
    int64_t ldp = ldb;
    if (ncols < kPanel) {
      for (int64_t i = 0; i < kin; ++i) {
        std::memcpy(panel + i * kPanel, b + i * ldb + j0, static_cast<size_t>(ncols) * sizeof(float));
        std::fill(panel + i * kPanel + ncols, panel + (i + 1) * kPanel, 0.0f);
      }
      bp = panel;
      ldp = kPanel;
    } else if (M > kMaxRows && ldb % 1024 == 0) {
      // Several row blocks reuse the panel, whose rows are a multiple of 4 KiB apart and would all map to the
      // same L1 sets: copy it to contiguous scratch first.
      for (int64_t i = 0; i < kin; ++i) {
        for (int64_t v = 0; v < kPanel; v += kLanes)
          store16(panel + i * kPanel + v, load16(b + i * ldb + j0 + v));
      }
      bp = panel;
      ldp = kPanel;
    }
    int64_t m0 = 0;
    for (; m0 + kMaxRows <= M; m0 += kMaxRows) {
      panel_kernel<kMaxRows>(kin, a + m0 * lda, lda, bp, ldp, c + m0 * ldc + j0, ldc, ncols);
    }
    if (m0 < M) {
      panel_rows(static_cast<int>(M - m0), kin, a + m0 * lda, lda, bp, ldp, c + m0 * ldc + j0, ldc, ncols);
    }
  }
}

#pragma GCC pop_options

// The direct path takes the input gradient of ungrouped convolutions with C*R*S <= 32 and K >= 32 (the
// transposed convolution down to 1-2 channels, 1x1 shortcuts), over at least one image per thread, on CPUs
// with AVX-512F. Measured on Zen 5 (1 thread): 1.2-1.4x faster than im2col + OpenBLAS and 1.5-10x faster
// than oneDNN; at C*R*S = 48 (3 channels, 4x4) it only tied OpenBLAS. Forward and weight gradient at these
// shapes stay on oneDNN, which was faster than both.
bool use_direct_backward_input(const Conv2dGeometry& g) {
  static const bool has_avx512 = __builtin_cpu_supports("avx512f");
  const int64_t nthr = omp_in_parallel() ? 1 : omp_get_max_threads();
  return has_avx512 && g.groups == 1 && g.C * g.R * g.S <= 32 && g.K >= 32 && g.N >= nthr &&
         g_path.load(std::memory_order_relaxed) == Conv2dPath::kAuto;
}

// One chunk per image, spread over the team when there are at least as many images as threads.
GemmPlan direct_plan(const Conv2dGeometry& g) {
  GemmPlan p = make_gemm_plan(g);
  p.nb = 1;
  p.nchunks = g.N;
  p.batch_parallel = !omp_in_parallel() && omp_get_max_threads() > 1 && g.N >= omp_get_max_threads();
  return p;
}

void direct_backward_input(const Conv2dGeometry& g, const float* dy, const float* w, float* dx) {
  const GemmPlan p = direct_plan(g);
  // wt [CRS, K] = w^T, shared read-only by the team.
  float* wt = scratch_of<float>(kDnnlWei, p.CRS * g.K);
  for (int64_t k = 0; k < g.K; ++k) {
    for (int64_t i = 0; i < p.CRS; ++i) wt[i * g.K + k] = w[k * p.CRS + i];
  }
  const int nthr = p.batch_parallel ? omp_get_max_threads() : 1;
  std::vector<float*> cols(nthr, nullptr), panels(nthr, nullptr);
  auto setup = [&](int t) {
    if (!p.direct) cols[t] = scratch_of<float>(kCol, p.CRS * p.PQ);
    panels[t] = scratch_of<float>(kTmp, g.K * kPanel);
  };
  auto body = [&](int t, int64_t n, bool) {
    float* dxn = dx + n * g.C * p.HW;
    float* col = p.direct ? dxn : cols[t];
    small_gemm(p.CRS, p.PQ, g.K, wt, g.K, dy + n * g.K * p.PQ, p.PQ, col, p.PQ, panels[t]);
    if (!p.direct) {
      std::fill(dxn, dxn + g.C * p.HW, 0.0f);
      col2im_add(g, g.C, col, p.PQ, dxn, false);
    }
  };
  run_chunks(p, setup, body);
}

// ---------------------------------------------------------------------------------------------------------
// oneDNN path (f32). DRAM bandwidth, not FMA throughput, limits these convolutions once the activations are
// reordered to oneDNN's blocked layouts, so the batch is cut into chunks whose activations fit in L2: each
// chunk is reordered in, convolved and reordered out while it is still in cache. A Plan holds the primitive
// for one chunk size (blocked "any" layouts) and the reorders between the caller's plain layouts and the
// primitive's. Plans are cached by pass, geometry, chunk size, bias and thread count behind a mutex;
// executing one is thread-safe (user-mode scratchpad, buffers from thread scratch).

enum class Pass : int { kForward, kBackwardData, kBackwardWeights };

// Activation bytes (input + output) per chunk and thread: the L2 of one Zen 5 core.
constexpr int64_t kChunkBytes = int64_t{1} << 20;

struct PlanKey {
  std::array<int64_t, 17> v;
  bool operator==(const PlanKey& o) const { return v == o.v; }
};

struct PlanKeyHash {
  size_t operator()(const PlanKey& k) const {
    size_t h = 1469598103934665603ull;
    for (int64_t e : k.v) h = (h ^ static_cast<size_t>(e)) * 1099511628211ull;
    return h;
  }
};

// One primitive operand that the caller holds in a plain layout: its plain and its primitive descriptors and
// the reorder between them (plain -> primitive for inputs, primitive -> plain for outputs; empty when equal).
struct Operand {
  int arg = 0;
  dnnl::memory::desc user_md, prim_md;
  dnnl::reorder reorder;
  bool needs_reorder = false;
};

struct Plan {
  dnnl::primitive prim;
  // Activations: forward x -> y; backward data dy -> dx; backward weights x and dy (act_out unused).
  Operand act_in0, act_in1, act_out;
  // Weights: forward and backward data read them; backward weights writes them, and wei_accumulate adds a
  // chunk's blocked diff weights into the caller's plain dw.
  Operand wei;
  dnnl::reorder wei_accumulate;
  dnnl::memory::desc bias_md;
  int bias_arg = 0;
  dnnl::memory::desc scratchpad_md;
};

dnnl::engine& dnnl_engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

dnnl::stream& dnnl_stream() {
  thread_local dnnl::stream stream(dnnl_engine());
  return stream;
}

Operand make_operand(int arg, const dnnl::memory::desc& user_md, const dnnl::memory::desc& prim_md,
                     bool input) {
  Operand op;
  op.arg = arg;
  op.user_md = user_md;
  op.prim_md = prim_md;
  op.needs_reorder = user_md != prim_md;
  if (op.needs_reorder) {
    auto& eng = dnnl_engine();
    op.reorder = input ? dnnl::reorder(dnnl::reorder::primitive_desc(eng, user_md, eng, prim_md))
                       : dnnl::reorder(dnnl::reorder::primitive_desc(eng, prim_md, eng, user_md));
  }
  return op;
}

// Builds the plan for g (g.N is the chunk size). Throws dnnl::error when oneDNN has no implementation.
std::shared_ptr<Plan> build_plan(Pass pass, const Conv2dGeometry& g, bool with_bias) {
  using dnnl::memory;
  using tag = memory::format_tag;
  const auto f32 = memory::data_type::f32;
  auto& eng = dnnl_engine();
  const memory::dims x_dims{g.N, g.C, g.H, g.W}, y_dims{g.N, g.K, g.P(), g.Q()};
  const memory::dims w_dims = g.groups == 1
                                  ? memory::dims{g.K, g.C, g.R, g.S}
                                  : memory::dims{g.groups, g.K / g.groups, g.C / g.groups, g.R, g.S};
  const tag w_tag = g.groups == 1 ? tag::oihw : tag::goihw;
  const memory::dims strides{g.stride_h, g.stride_w}, dilates{g.dil_h - 1, g.dil_w - 1};
  const memory::dims pad_l{g.pad_h, g.pad_w}, pad_r{g.pad_h, g.pad_w};
  const memory::desc x_user(x_dims, f32, tag::nchw), y_user(y_dims, f32, tag::nchw),
      w_user(w_dims, f32, w_tag);
  const memory::desc x_any(x_dims, f32, tag::any), y_any(y_dims, f32, tag::any), w_any(w_dims, f32, tag::any);
  const memory::desc b_md({g.K}, f32, tag::x);
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  const auto algo = dnnl::algorithm::convolution_direct;
  const auto training = dnnl::prop_kind::forward_training;

  auto fwd_desc = with_bias && pass == Pass::kForward
                      ? dnnl::convolution_forward::desc(training, algo, x_any, w_any, b_md, y_any, strides,
                                                        dilates, pad_l, pad_r)
                      : dnnl::convolution_forward::desc(training, algo, x_any, w_any, y_any, strides, dilates,
                                                        pad_l, pad_r);
  auto plan = std::make_shared<Plan>();
  if (pass == Pass::kForward) {
    dnnl::convolution_forward::primitive_desc pd(fwd_desc, attr, eng);
    plan->prim = dnnl::convolution_forward(pd);
    plan->act_in0 = make_operand(DNNL_ARG_SRC, x_user, pd.src_desc(), true);
    plan->act_out = make_operand(DNNL_ARG_DST, y_user, pd.dst_desc(), false);
    plan->wei = make_operand(DNNL_ARG_WEIGHTS, w_user, pd.weights_desc(), true);
    if (with_bias) {
      plan->bias_md = pd.bias_desc();
      plan->bias_arg = DNNL_ARG_BIAS;
    }
    plan->scratchpad_md = pd.scratchpad_desc();
  } else if (pass == Pass::kBackwardData) {
    dnnl::convolution_forward::primitive_desc hint(fwd_desc, eng);
    dnnl::convolution_backward_data::desc desc(algo, x_any, w_any, y_any, strides, dilates, pad_l, pad_r);
    dnnl::convolution_backward_data::primitive_desc pd(desc, attr, eng, hint);
    plan->prim = dnnl::convolution_backward_data(pd);
    plan->act_in0 = make_operand(DNNL_ARG_DIFF_DST, y_user, pd.diff_dst_desc(), true);
    plan->act_out = make_operand(DNNL_ARG_DIFF_SRC, x_user, pd.diff_src_desc(), false);
    plan->wei = make_operand(DNNL_ARG_WEIGHTS, w_user, pd.weights_desc(), true);
    plan->scratchpad_md = pd.scratchpad_desc();
  } else {
    dnnl::convolution_forward::primitive_desc hint(fwd_desc, eng);
    auto desc = with_bias ? dnnl::convolution_backward_weights::desc(algo, x_any, w_any, b_md, y_any, strides,
                                                                     dilates, pad_l, pad_r)
                          : dnnl::convolution_backward_weights::desc(algo, x_any, w_any, y_any, strides,
                                                                     dilates, pad_l, pad_r);
    dnnl::convolution_backward_weights::primitive_desc pd(desc, attr, eng, hint);
    plan->prim = dnnl::convolution_backward_weights(pd);
    plan->act_in0 = make_operand(DNNL_ARG_SRC, x_user, pd.src_desc(), true);
    plan->act_in1 = make_operand(DNNL_ARG_DIFF_DST, y_user, pd.diff_dst_desc(), true);
    plan->wei = make_operand(DNNL_ARG_DIFF_WEIGHTS, w_user, pd.diff_weights_desc(), false);
    dnnl::post_ops sum;
    sum.append_sum(1.0f);
    dnnl::primitive_attr sum_attr;
    sum_attr.set_post_ops(sum);
    plan->wei_accumulate =
        dnnl::reorder(dnnl::reorder::primitive_desc(eng, pd.diff_weights_desc(), eng, w_user, sum_attr));
    if (with_bias) {
      plan->bias_md = pd.diff_bias_desc();
      plan->bias_arg = DNNL_ARG_DIFF_BIAS;
    }
    plan->scratchpad_md = pd.scratchpad_desc();
  }
  return plan;
}

// Sets the calling thread's OpenMP thread count while alive: oneDNN sizes a primitive's work split by the
// thread count at creation, and a plan must run with the count it was made for.
class ThreadCountGuard {
 public:
  explicit ThreadCountGuard(int n) : saved_(omp_get_max_threads()) {
    if (n != saved_) omp_set_num_threads(n);
  }
  ~ThreadCountGuard() {
    if (omp_get_max_threads() != saved_) omp_set_num_threads(saved_);
  }
  ThreadCountGuard(const ThreadCountGuard&) = delete;
  ThreadCountGuard& operator=(const ThreadCountGuard&) = delete;

 private:
  int saved_;
};

// Plans by pass, chunk geometry, bias and thread count. Thread-safe (a mutex guards the map; plans are built
// outside it, so two threads may build the same plan once each and the first one stored wins).
class PlanCache {
 public:
  // The plan for g (g.N is the chunk size) run by `threads` threads, built on first use; null when oneDNN has
  // no implementation for it.
  std::shared_ptr<Plan> get(Pass pass, const Conv2dGeometry& g, bool with_bias, int threads) {
    const PlanKey key{{static_cast<int64_t>(pass), with_bias ? 1 : 0, threads, g.N, g.C, g.H, g.W, g.K, g.R,
                       g.S, g.stride_h, g.stride_w, g.pad_h, g.pad_w, g.dil_h, g.dil_w, g.groups}};
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = plans_.find(key);
      if (it != plans_.end()) return it->second;
    }
    std::shared_ptr<Plan> plan;
    try {
      ThreadCountGuard guard(threads);
      plan = build_plan(pass, g, with_bias);
    } catch (const dnnl::error& e) {
      if (e.status != dnnl_unimplemented) {
        throw std::runtime_error(std::string("conv2d: oneDNN failed to create a primitive: ") + e.what());
      }
    }
    std::lock_guard<std::mutex> lock(mutex_);
    if (plans_.size() >= kMaxPlans) plans_.clear();
    return plans_.emplace(key, plan).first->second;
  }

 private:
  static constexpr size_t kMaxPlans = 1024;
  std::mutex mutex_;
  std::unordered_map<PlanKey, std::shared_ptr<Plan>, PlanKeyHash> plans_;
};

PlanCache& plan_cache() {
  static PlanCache cache;
  return cache;
}

// How a pass over the batch is cut: nchunks chunks of nb images (the last may be shorter). Parallel: the
// chunks are split statically over the OpenMP team and each thread runs single-threaded primitives on its own
// chunks (one fork per call, each thread's chunk in its own L2; 1.1-1.4x faster, and far more robust when
// the cores are shared). Serial (one thread, fewer images than threads, or weights over 2 MiB, which each
// thread would have to stream on its own): the calling thread walks the chunks with primitives threaded over
// the team.
struct ChunkLayout {
  int64_t nb = 0, nchunks = 0;
  bool parallel = false;
  int plan_threads = 1;  // thread count the primitives are created for
};

// Chunks hold about kChunkBytes of activations per thread. Large weights are re-read (and, for the weight
// gradient, re-accumulated) once per chunk, so a chunk also holds at least twice the weight bytes.
ChunkLayout chunk_layout(const Conv2dGeometry& g) {
  const int64_t f = static_cast<int64_t>(sizeof(float));
  const int64_t per_image = f * (g.C * g.H * g.W + g.K * g.P() * g.Q());
  const int64_t weight_bytes = f * g.K * (g.C / g.groups) * g.R * g.S;
  const int nthr = omp_in_parallel() ? 1 : omp_get_max_threads();
  ChunkLayout layout;
  layout.parallel = nthr > 1 && g.N >= nthr && weight_bytes <= 2 * kChunkBytes;
  layout.plan_threads = layout.parallel ? 1 : nthr;
  const int64_t budget = std::max(kChunkBytes * (layout.parallel ? 1 : nthr), 2 * weight_bytes);
  const int64_t target = std::max<int64_t>(1, budget / per_image);
  int64_t chunks = (g.N + target - 1) / target;
  if (layout.parallel) chunks = (std::max<int64_t>(chunks, nthr) + nthr - 1) / nthr * nthr;
  layout.nb = (g.N + chunks - 1) / chunks;
  layout.nchunks = (g.N + layout.nb - 1) / layout.nb;
  return layout;
}

// Reorders the caller's plain weights b into the plan's layout on the calling thread (or wraps b when the
// layouts agree). The result is read-only and may be shared by threads running the same plan.
dnnl::memory prepare_weights(const Plan& plan, const float* b, Slot slot) {
  auto& eng = dnnl_engine();
  dnnl::memory user(plan.wei.user_md, eng, const_cast<float*>(b));
  if (!plan.wei.needs_reorder) return user;
  dnnl::memory blocked(plan.wei.prim_md, eng, thread_scratch().get(slot, plan.wei.prim_md.get_size()));
  plan.wei.reorder.execute(dnnl_stream(), user, blocked);
  dnnl_stream().wait();
  return blocked;
}

// Operands of one pass, in the caller's plain layouts: forward a=x, b=w, out=y, bias=bias (input);
// backward data a=dy, b=w, out=dx; backward weights a=x, b=dy, out=dw, bias=dbias (outputs, bias nullable).
struct PassData {
  Pass pass;
  const Conv2dGeometry& g;
  const Plan& main;
  const Plan* tail;             // plan of the shorter last chunk, if any
  const dnnl::memory* weights;  // forward / backward data: prepared weights of main and tail
  int64_t nb;
  const float* a;
  const float* b;
  float* out;
  float* bias;
};

// Runs chunks [c0, c1) on the calling thread's stream and scratch. Backward weights: dw and dbias are written
// to out and bias, overwritten by the first chunk and accumulated over the rest.
void run_chunk_range(const PassData& d, int64_t c0, int64_t c1) {
  const Conv2dGeometry& g = d.g;
  auto& eng = dnnl_engine();
  auto& strm = dnnl_stream();
  ThreadScratch& ts = thread_scratch();
  const int64_t x_img = g.C * g.H * g.W, y_img = g.K * g.P() * g.Q();
  const int64_t a_img = d.pass == Pass::kBackwardData ? y_img : x_img;
  const int64_t out_img = d.pass == Pass::kForward ? y_img : x_img;
  const bool weights_out = d.pass == Pass::kBackwardWeights;
  auto bind_input = [&](std::unordered_map<int, dnnl::memory>& args, const Operand& op, const float* ptr,
                        Slot slot) {
    dnnl::memory user(op.user_md, eng, const_cast<float*>(ptr));
    if (!op.needs_reorder) {
      args.emplace(op.arg, user);
      return;
    }
    dnnl::memory prim(op.prim_md, eng, ts.get(slot, op.prim_md.get_size()));
    op.reorder.execute(strm, user, prim);
    args.emplace(op.arg, prim);
  };
  float* bias_chunk = weights_out && d.bias != nullptr && c1 - c0 > 1
                          ? static_cast<float*>(ts.get(kDnnlBias, g.K * sizeof(float)))
                          : nullptr;
  for (int64_t c = c0; c < c1; ++c) {
    const int64_t n0 = c * d.nb;
    const bool is_tail = n0 + d.nb > g.N;
    const Plan& plan = is_tail ? *d.tail : d.main;
    const bool first = c == c0;
    std::unordered_map<int, dnnl::memory> args;
    bind_input(args, plan.act_in0, d.a + n0 * a_img, kDnnlIn0);
    dnnl::memory out_user, out_prim;
    if (weights_out) {
      bind_input(args, plan.act_in1, d.b + n0 * y_img, kDnnlIn1);
      out_user = dnnl::memory(plan.wei.user_md, eng, d.out);
      out_prim = first && !plan.wei.needs_reorder
                     ? out_user
                     : dnnl::memory(plan.wei.prim_md, eng, ts.get(kDnnlOut, plan.wei.prim_md.get_size()));
      args.emplace(plan.wei.arg, out_prim);
      if (d.bias != nullptr) {
        args.emplace(plan.bias_arg, dnnl::memory(plan.bias_md, eng, first ? d.bias : bias_chunk));
      }
    } else {
      args.emplace(plan.wei.arg, d.weights[is_tail ? 1 : 0]);
      out_user = dnnl::memory(plan.act_out.user_md, eng, d.out + n0 * out_img);
      out_prim = plan.act_out.needs_reorder ? dnnl::memory(plan.act_out.prim_md, eng,
                                                           ts.get(kDnnlOut, plan.act_out.prim_md.get_size()))
                                            : out_user;
      args.emplace(plan.act_out.arg, out_prim);
      if (d.bias != nullptr) args.emplace(plan.bias_arg, dnnl::memory(plan.bias_md, eng, d.bias));
    }
    if (plan.scratchpad_md.get_size() > 0) {
      args.emplace(DNNL_ARG_SCRATCHPAD,
                   dnnl::memory(plan.scratchpad_md, eng, ts.get(kDnnlPad, plan.scratchpad_md.get_size())));
    }
    plan.prim.execute(strm, args);
    if (!weights_out) {
      if (plan.act_out.needs_reorder) plan.act_out.reorder.execute(strm, out_prim, out_user);
    } else if (!first) {
      plan.wei_accumulate.execute(strm, out_prim, out_user);
    } else if (plan.wei.needs_reorder) {
      plan.wei.reorder.execute(strm, out_prim, out_user);
    }
    if (weights_out && d.bias != nullptr && !first) {
      strm.wait();
      for (int64_t k = 0; k < g.K; ++k) d.bias[k] += bias_chunk[k];
    }
  }
  strm.wait();
}

// Runs the chunks spread over the OpenMP team. Backward weights: thread 0 accumulates into the caller's dw
// and dbias, the others into their scratch, summed in thread order at the end (deterministic).
void run_chunks_parallel(const PassData& d, int64_t nchunks) {
  const bool weights_out = d.pass == Pass::kBackwardWeights;
  const int64_t dw_elems = d.g.K * (d.g.C / d.g.groups) * d.g.R * d.g.S;
  const int nthr = omp_get_max_threads();
  std::vector<float*> dw_parts(nthr, nullptr), db_parts(nthr, nullptr);
  std::exception_ptr error;
  std::mutex error_mutex;
#pragma omp parallel num_threads(nthr)
  {
    const int t = omp_get_thread_num(), nt = omp_get_num_threads();
    const int64_t c0 = nchunks * t / nt, c1 = nchunks * (t + 1) / nt;
    try {
      if (c0 < c1) {
        PassData mine = d;
        if (weights_out && t != 0) {
          mine.out = static_cast<float*>(thread_scratch().get(kAcc, dw_elems * sizeof(float)));
          if (d.bias != nullptr) {
            mine.bias = static_cast<float*>(thread_scratch().get(kAccBias, d.g.K * sizeof(float)));
          }
        }
        run_chunk_range(mine, c0, c1);
        dw_parts[t] = mine.out;
        db_parts[t] = mine.bias;
      }
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex);
      if (!error) error = std::current_exception();
    }
  }
  if (error) std::rethrow_exception(error);
  if (!weights_out) return;
#pragma omp parallel for schedule(static) if (dw_elems > 16384)
  for (int64_t e = 0; e < dw_elems; ++e) {
    float s = d.out[e];
    for (int t = 1; t < nthr; ++t) {
      if (dw_parts[t] != nullptr) s += dw_parts[t][e];
    }
    d.out[e] = s;
  }
  if (d.bias != nullptr) {
    for (int t = 1; t < nthr; ++t) {
      if (db_parts[t] == nullptr) continue;
      for (int64_t k = 0; k < d.g.K; ++k) d.bias[k] += db_parts[t][k];
    }
  }
}

// Cases where im2col + GEMM beats oneDNN 2-4x (measured on Zen 5): convolutions whose kernel covers the whole
// input (one GEMM), and the input gradient with fewer than 16 input channels (oneDNN pads them to 16).
bool prefer_gemm(Pass pass, const Conv2dGeometry& g) {
  if (g.groups != 1) return false;
  return is_dense(g) || (pass == Pass::kBackwardData && g.C < 16);
}

// Runs the pass on oneDNN; false when the GEMM path should take it (oneDNN has no implementation or is
// slower).
bool try_onednn(Pass pass, const Conv2dGeometry& g, const float* a, const float* b, float* out, float* bias) {
  const Conv2dPath path = g_path.load(std::memory_order_relaxed);
  if (path == Conv2dPath::kGemm || (path == Conv2dPath::kAuto && prefer_gemm(pass, g))) return false;
  const ChunkLayout layout = chunk_layout(g);
  Conv2dGeometry chunk = g;
  chunk.N = layout.nb;
  std::shared_ptr<Plan> main = plan_cache().get(pass, chunk, bias != nullptr, layout.plan_threads);
  std::shared_ptr<Plan> tail;
  const int64_t rest = g.N % layout.nb;
  if (main && rest != 0) {
    chunk.N = rest;
    tail = plan_cache().get(pass, chunk, bias != nullptr, layout.plan_threads);
  }
  if (!main || (rest != 0 && !tail)) {
    if (path == Conv2dPath::kOneDnn) {
      throw std::runtime_error("conv2d: oneDNN has no implementation for this geometry");
    }
    return false;
  }
  try {
    dnnl::memory weights[2];
    if (pass != Pass::kBackwardWeights) {
      weights[0] = prepare_weights(*main, b, kDnnlWei);
      if (tail) weights[1] = prepare_weights(*tail, b, kDnnlWeiTail);
    }
    const PassData data{pass, g, *main, tail.get(), weights, layout.nb, a, b, out, bias};
    if (layout.parallel) {
      run_chunks_parallel(data, layout.nchunks);
    } else {
      run_chunk_range(data, 0, layout.nchunks);
    }
  } catch (const dnnl::error& e) {
    throw std::runtime_error(std::string("conv2d: oneDNN execution failed: ") + e.what());
  }
  return true;
}

}  // namespace

int64_t Conv2dGeometry::P() const { return out_size(H, pad_h, dil_h, R, stride_h); }
int64_t Conv2dGeometry::Q() const { return out_size(W, pad_w, dil_w, S, stride_w); }

void set_conv2d_path(Conv2dPath path) { g_path.store(path, std::memory_order_relaxed); }

void validate_conv2d_geometry(const Conv2dGeometry& g) {
  const bool positive = g.N > 0 && g.C > 0 && g.H > 0 && g.W > 0 && g.K > 0 && g.R > 0 && g.S > 0 &&
                        g.stride_h > 0 && g.stride_w > 0 && g.dil_h > 0 && g.dil_w > 0 && g.groups > 0;
  if (!positive || g.pad_h < 0 || g.pad_w < 0 || g.C % g.groups != 0 || g.K % g.groups != 0 || g.P() < 1 ||
      g.Q() < 1) {
    throw std::invalid_argument(
        "conv2d: expected positive sizes, non-negative padding, groups dividing C and K and a non-empty "
        "output, "
        "but got N=" +
        std::to_string(g.N) + " C=" + std::to_string(g.C) + " H=" + std::to_string(g.H) +
        " W=" + std::to_string(g.W) + " K=" + std::to_string(g.K) + " R=" + std::to_string(g.R) +
        " S=" + std::to_string(g.S) + " stride=" + std::to_string(g.stride_h) + "x" +
        std::to_string(g.stride_w) + " pad=" + std::to_string(g.pad_h) + "x" + std::to_string(g.pad_w) +
        " dil=" + std::to_string(g.dil_h) + "x" + std::to_string(g.dil_w) +
        " groups=" + std::to_string(g.groups));
  }
}

template <class T>
void conv2d_forward(const Conv2dGeometry& g, const T* x, const T* w, const T* bias, T* y) {
  validate_conv2d_geometry(g);
  if constexpr (std::is_same_v<T, float>) {
    if (try_onednn(Pass::kForward, g, x, w, y, const_cast<float*>(bias))) return;
  }
  forward_gemm(g, x, w, bias, y);
}

template <class T>
void conv2d_backward_input(const Conv2dGeometry& g, const T* dy, const T* w, T* dx) {
  validate_conv2d_geometry(g);
  if constexpr (std::is_same_v<T, float>) {
    if (use_direct_backward_input(g)) return direct_backward_input(g, dy, w, dx);
    if (try_onednn(Pass::kBackwardData, g, dy, w, dx, nullptr)) return;
  }
  backward_input_gemm(g, dy, w, dx);
}

template <class T>
void conv2d_backward_weight(const Conv2dGeometry& g, const T* dy, const T* x, T* dw, T* dbias) {
  validate_conv2d_geometry(g);
  if constexpr (std::is_same_v<T, float>) {
    if (try_onednn(Pass::kBackwardWeights, g, x, dy, dw, dbias)) return;
  }
  backward_weight_gemm(g, dy, x, dw, dbias);
}

template void conv2d_forward<float>(const Conv2dGeometry&, const float*, const float*, const float*, float*);
template void conv2d_forward<double>(const Conv2dGeometry&, const double*, const double*, const double*,
                                     double*);
template void conv2d_backward_input<float>(const Conv2dGeometry&, const float*, const float*, float*);
template void conv2d_backward_input<double>(const Conv2dGeometry&, const double*, const double*, double*);
template void conv2d_backward_weight<float>(const Conv2dGeometry&, const float*, const float*, float*,
                                            float*);
template void conv2d_backward_weight<double>(const Conv2dGeometry&, const double*, const double*, double*,
                                             double*);

}  // namespace lockstep::cpu
