// Direct f32 convolutions with few output channels (K <= kNarrowK: the last layer of a CycleGAN generator,
// 32 -> 1 channel at 7x7). oneDNN pads K to a vector of 16 channels, doing 16x the work at K = 1; here the
// passes vectorise over output columns instead. At stride 1 both the forward pass and the input gradient are
// correlations of a padded map with a kernel, one output row at a time:
//   forward          y[n,k,p,q]  = b[k] + sum over c, r, s of w[k,c,r,s] * xp[n,c,p+r,q+s]
//   input gradient   dx[n,c,h,w] = sum over k, r, s of w[k,c,R-1-r,S-1-s] * dyp[n,k,h+r,w+s]
//   weight gradient  dw[k,c,r,s] = sum over n, p of dot(dy[n,k,p,:], xp[n,c,p+r,s:s+Q])
// with xp the input zero-padded by the convolution's padding and dyp the output gradient zero-padded by
// R-1-pad_h rows and S-1-pad_w columns. Rows are computed in tiles of kTile columns held in registers. Every
// output element is computed by one task in a fixed order, so results do not depend on the thread count.
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "src/backend/cpu/conv_internal.h"

namespace lockstep::cpu::conv_internal {
namespace {

constexpr int64_t kTile = 32;  // output columns per register tile

// A zero-padded copy of maps [planes, H, W]: `top` rows above and below, `left` columns left and right, and
// kTile more zero columns at the right of every row, so that a tile may read past the last column.
struct PaddedMaps {
  std::vector<float> data;
  int64_t rows = 0, ld = 0;  // rows per plane, floats per row
  const float* plane(int64_t i) const { return data.data() + i * rows * ld; }
};

PaddedMaps pad_maps(const float* src, int64_t planes, int64_t h, int64_t w, int64_t top, int64_t left) {
  PaddedMaps m;
  m.rows = h + 2 * top;
  m.ld = w + 2 * left + kTile;
  m.data.assign(static_cast<size_t>(planes * m.rows * m.ld), 0.0f);
  float* out = m.data.data();
#pragma omp parallel for schedule(static)
  for (int64_t plane = 0; plane < planes; ++plane) {
    for (int64_t y = 0; y < h; ++y) {
      std::memcpy(out + (plane * m.rows + y + top) * m.ld + left, src + (plane * h + y) * w,
                  static_cast<size_t>(w) * sizeof(float));
    }
  }
  return m;
}

// out[0:width] = b + sum over i < inputs, r < R, s < S of weight(i, r, s) * in_i[r][s + 0:width], where in_i
// is the padded plane `first + i` from row `row` on, and weight(i, r, s) = w[i * w_stride + r * S + s], or
// w[i * w_stride + (R-1-r) * S + (S-1-s)] when `flip`.
void correlate_row(const PaddedMaps& in, int64_t first, int64_t row, int64_t inputs, int64_t R, int64_t S,
                   const float* w, int64_t w_stride, bool flip, float b, int64_t width, float* out) {
  for (int64_t q0 = 0; q0 < width; q0 += kTile) {
    float acc[kTile];
    for (float& a : acc) a = b;
    for (int64_t i = 0; i < inputs; ++i) {
      const float* plane = in.plane(first + i) + row * in.ld + q0;
      const float* wi = w + i * w_stride;
      for (int64_t r = 0; r < R; ++r) {
        const float* src_row = plane + r * in.ld;
        for (int64_t s = 0; s < S; ++s) {
          const float v = flip ? wi[(R - 1 - r) * S + (S - 1 - s)] : wi[r * S + s];
          const float* src = src_row + s;
#pragma omp simd
          for (int64_t j = 0; j < kTile; ++j) acc[j] += v * src[j];
        }
      }
    }
    std::memcpy(out + q0, acc, static_cast<size_t>(std::min(kTile, width - q0)) * sizeof(float));
  }
}

}  // namespace

bool narrow_applies(const Conv2dGeometry& g) {
  return g.groups == 1 && g.K <= kNarrowK && g.stride_h == 1 && g.stride_w == 1 && g.dil_h == 1 &&
         g.dil_w == 1 && g.pad_h < g.R && g.pad_w < g.S && g.Q() >= 8 && g.C * g.R * g.S >= 16;
}

void narrow_forward(const Conv2dGeometry& g, const float* x, const float* w, const float* bias, float* y) {
  const PaddedMaps xp = pad_maps(x, g.N * g.C, g.H, g.W, g.pad_h, g.pad_w);
  const int64_t P = g.P(), Q = g.Q();
#pragma omp parallel for schedule(static)
  for (int64_t row = 0; row < g.N * g.K * P; ++row) {
    const int64_t n = row / (g.K * P), k = row / P % g.K, p = row % P;
    correlate_row(xp, n * g.C, p, g.C, g.R, g.S, w + k * g.C * g.R * g.S, g.R * g.S, false,
                  bias != nullptr ? bias[k] : 0.0f, Q, y + row * Q);
  }
}

void narrow_backward_input(const Conv2dGeometry& g, const float* dy, const float* w, float* dx) {
  const PaddedMaps dyp = pad_maps(dy, g.N * g.K, g.P(), g.Q(), g.R - 1 - g.pad_h, g.S - 1 - g.pad_w);
#pragma omp parallel for schedule(static)
  for (int64_t row = 0; row < g.N * g.C * g.H; ++row) {
    const int64_t n = row / (g.C * g.H), c = row / g.H % g.C, h = row % g.H;
    correlate_row(dyp, n * g.K, h, g.K, g.R, g.S, w + c * g.R * g.S, g.C * g.R * g.S, true, 0.0f, g.W,
                  dx + row * g.W);
  }
}

void narrow_backward_weight(const Conv2dGeometry& g, const float* dy, const float* x, float* dw,
                            float* dbias) {
  const PaddedMaps xp = pad_maps(x, g.N * g.C, g.H, g.W, g.pad_h, g.pad_w);
  const int64_t P = g.P(), Q = g.Q();
#pragma omp parallel for schedule(static)
  for (int64_t kc = 0; kc < g.K * g.C; ++kc) {
    const int64_t k = kc / g.C, c = kc % g.C;
    for (int64_t r = 0; r < g.R; ++r) {
      for (int64_t s = 0; s < g.S; ++s) {
        float total = 0.0f;
        for (int64_t n = 0; n < g.N; ++n) {
          for (int64_t p = 0; p < P; ++p) {
            const float* grad = dy + ((n * g.K + k) * P + p) * Q;
            const float* in = xp.plane(n * g.C + c) + (p + r) * xp.ld + s;
            float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
            for (int64_t q = 0; q < Q; ++q) sum += grad[q] * in[q];
            total += sum;
          }
        }
        dw[(kc * g.R + r) * g.S + s] = total;
      }
    }
  }
  if (dbias == nullptr) return;
  for (int64_t k = 0; k < g.K; ++k) {
    float total = 0.0f;
    for (int64_t n = 0; n < g.N; ++n) {
      const float* grad = dy + (n * g.K + k) * P * Q;
      float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
      for (int64_t i = 0; i < P * Q; ++i) sum += grad[i];
      total += sum;
    }
    dbias[k] = total;
  }
}

}  // namespace lockstep::cpu::conv_internal
