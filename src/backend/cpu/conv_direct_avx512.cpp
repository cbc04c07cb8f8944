// Direct f32 input gradient of convolutions with a tiny C*R*S on AVX-512F: a register-blocked FMA
// micro-kernel computes the columns, then col2im. The dispatch in conv_kernels.cpp decides where it runs.
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "src/backend/cpu/conv_internal.h"

namespace lockstep::cpu::conv_internal {

namespace {

// ---------------------------------------------------------------------------------------------------------
// Direct f32 input gradient for convolutions with a tiny C*R*S (transposed convolutions down to 1-2
// channels, 1x1 shortcuts): per image, col [C*R*S, P*Q] = w^T dy by a register-blocked AVX-512 FMA
// micro-kernel (no packing: the operands are small and cache-resident), then col2im. Images are spread
// statically over the OpenMP team (deterministic for a given thread count).

#pragma GCC push_options
#pragma GCC target("avx512f")

constexpr int64_t kPanel = 3 * kLanes;  // output columns per micro-kernel call
constexpr int kMaxRows = 8;             // output rows per micro-kernel call

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

// One chunk per image, spread over the team when there are at least as many images as threads.
GemmPlan direct_plan(const Conv2dGeometry& g) {
  GemmPlan p = make_gemm_plan(g);
  p.nb = 1;
  p.nchunks = g.N;
  p.batch_parallel = !omp_in_parallel() && omp_get_max_threads() > 1 && g.N >= omp_get_max_threads();
  return p;
}

}  // namespace

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

}  // namespace lockstep::cpu::conv_internal
