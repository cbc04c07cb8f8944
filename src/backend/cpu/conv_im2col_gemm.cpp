// Convolution by im2col + OpenBLAS GEMM: f64 always, f32 where it beats oneDNN or oneDNN has no kernel (the
// dispatch in conv_kernels.cpp decides). The batch is cut into chunks whose columns sit side by side, so
// each GEMM is wide enough to amortise packing; chunks run on the OpenMP team with single-threaded GEMMs,
// or one by one with threaded GEMMs.
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <vector>

#include "src/backend/cpu/conv_internal.h"

namespace lockstep::cpu::conv_internal {

namespace {

// ---------------------------------------------------------------------------------------------------------
// BLAS wrappers. OpenBLAS (OpenMP build) runs single-threaded when called inside a parallel region.

int blas_int(int64_t v) {
  LOCKSTEP_CHECK(v <= INT_MAX, NotImplementedError,
                 "conv2d: expected GEMM dimensions within the int range of ", "BLAS, but got ", v,
                 ". Use a smaller batch or image.");
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

}  // namespace

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

bool is_dense(const Conv2dGeometry& g) {
  return g.groups == 1 && g.R == g.H && g.S == g.W && g.pad_h == 0 && g.pad_w == 0 && g.P() == 1 &&
         g.Q() == 1;
}

namespace {

// ---------------------------------------------------------------------------------------------------------
// Columns (layout in conv_internal.h).

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

}  // namespace

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


template void col2im_add<float>(const Conv2dGeometry&, int64_t, const float*, int64_t, float*, bool);
template void col2im_add<double>(const Conv2dGeometry&, int64_t, const double*, int64_t, double*, bool);

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

namespace {

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

}  // namespace

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

template void forward_gemm<float>(const Conv2dGeometry&, const float*, const float*, const float*, float*);
template void forward_gemm<double>(const Conv2dGeometry&, const double*, const double*, const double*,
                                   double*);
template void backward_input_gemm<float>(const Conv2dGeometry&, const float*, const float*, float*);
template void backward_input_gemm<double>(const Conv2dGeometry&, const double*, const double*, double*);
template void backward_weight_gemm<float>(const Conv2dGeometry&, const float*, const float*, float*, float*);
template void backward_weight_gemm<double>(const Conv2dGeometry&, const double*, const double*, double*,
                                           double*);

}  // namespace lockstep::cpu::conv_internal
