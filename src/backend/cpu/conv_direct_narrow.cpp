// Direct f32 convolutions with few output channels (K <= kNarrowK: the last layer of a CycleGAN generator,
// 32 -> 1 channel at 7x7) on AVX-512F. oneDNN pads K to a vector of 16 channels, doing 16x the work at K = 1;
// here the passes vectorise over output columns instead. At stride 1 the three passes are
//   forward          y[n,k,p,q]  = b[k] + sum over c, r, s of w[k,c,r,s] * xp[n,c,p+r,q+s]
//   input gradient   dx[n,c,h,w] = sum over k, r, s of w[k,c,R-1-r,S-1-s] * dyp[n,k,h+r,w+s]
//   weight gradient  dw[k,c,r,s] = sum over n, p of dot(dy[n,k,p,:], xp[n,c,p+r,s:s+Q])
// with xp the input zero-padded by the convolution's padding and dyp the output gradient zero-padded by
// R-1-pad_h rows and S-1-pad_w columns. Each is register-blocked so that one loaded row of a map feeds
// several accumulators: the forward pass keeps kRowBlock output rows, the input gradient kChannelBlock
// input channels of one row, the weight gradient kKernelRows x kTapBlock taps. Every output element is
// computed by one task in a fixed order, so results do not depend on the thread count.
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

#include "src/backend/cpu/conv_internal.h"

namespace lockstep::cpu::conv_internal {
namespace {

constexpr int64_t kSlack = 4 * kLanes;  // zero floats after the last padded row: vectors read past row ends
constexpr int kRowBlock = 4;            // forward: output rows per task
constexpr int kColumnVectors = 2;       // forward: vectors of output columns per tile
constexpr int kChannelBlock = 8;        // input gradient: input channels per task
constexpr int kTapBlock = 7;            // weight gradient: kernel columns per task
constexpr int kKernelRows = 3;          // weight gradient: kernel rows per task

// A zero-padded copy of maps [planes, H, W]: `top` rows above and below, `left` columns left and right, and
// kSlack zero floats after the last row. A vector that starts in a row and reads past its end reads the next
// row: the passes below store none of those lanes (forward, input gradient) or mask them out (weight
// gradient).
struct PaddedMaps {
  std::unique_ptr<float[]> data;  // every element written by pad_maps
  int64_t rows = 0, ld = 0;       // rows per plane, floats per row
  const float* plane(int64_t i) const { return data.get() + i * rows * ld; }
};

PaddedMaps pad_maps(const float* src, int64_t planes, int64_t h, int64_t w, int64_t top, int64_t left) {
  PaddedMaps m;
  m.rows = h + 2 * top;
  m.ld = w + 2 * left;
  const int64_t plane_floats = m.rows * m.ld;
  m.data = std::make_unique_for_overwrite<float[]>(static_cast<size_t>(planes * plane_floats + kSlack));
  float* out = m.data.get();
  std::fill(out + planes * plane_floats, out + planes * plane_floats + kSlack, 0.0f);
  if (top == 0 && left == 0) {
    std::memcpy(out, src, static_cast<size_t>(planes * plane_floats) * sizeof(float));
    return m;
  }
#pragma omp parallel for schedule(static)
  for (int64_t plane = 0; plane < planes; ++plane) {
    float* dst = out + plane * plane_floats;
    std::fill(dst, dst + top * m.ld, 0.0f);
    for (int64_t y = 0; y < h; ++y) {
      float* row = dst + (y + top) * m.ld;
      std::fill(row, row + left, 0.0f);
      std::memcpy(row + left, src + (plane * h + y) * w, static_cast<size_t>(w) * sizeof(float));
      std::fill(row + left + w, row + m.ld, 0.0f);
    }
    std::fill(dst + (h + top) * m.ld, dst + plane_floats, 0.0f);
  }
  return m;
}

#pragma GCC push_options
#pragma GCC target("avx512f")

// Stores lanes 0 .. min(kLanes, count)-1 of v at row[at ...].
inline void store_first(float* row, int64_t at, v16f v, int64_t count) {
  if (count >= kLanes) {
    store16(row + at, v);
  } else if (count > 0) {
    float tmp[kLanes];
    store16(tmp, v);
    std::memcpy(row + at, tmp, static_cast<size_t>(count) * sizeof(float));
  }
}

// Forward, one task: output rows p0 .. p0+RB-1 of map (n, k), all columns, in tiles of kColumnVectors
// vectors. The caller stores rows from `first` on (a last block overlaps the one before it).
template <int RB>
void forward_rows(const Conv2dGeometry& g, const PaddedMaps& xp, const float* w, float bias, int64_t n,
                  int64_t k, int64_t p0, int first, float* y) {
  const int64_t Q = g.Q();
  for (int64_t q0 = 0; q0 < Q; q0 += kColumnVectors * kLanes) {
    v16f acc[RB][kColumnVectors];
    for (auto& row : acc)
      for (auto& v : row) v = splat16(bias);
    for (int64_t c = 0; c < g.C; ++c) {
      const float* plane = xp.plane(n * g.C + c) + p0 * xp.ld + q0;
      const float* wk = w + (k * g.C + c) * g.R * g.S;
      for (int64_t r = 0; r < g.R; ++r) {
        for (int64_t s = 0; s < g.S; ++s) {
          const v16f wv = splat16(wk[r * g.S + s]);
          const float* src = plane + r * xp.ld + s;
          for (int j = 0; j < RB; ++j) {
            for (int v = 0; v < kColumnVectors; ++v) acc[j][v] += wv * load16(src + j * xp.ld + v * kLanes);
          }
        }
      }
    }
    for (int j = first; j < RB; ++j) {
      float* out = y + ((n * g.K + k) * g.P() + p0 + j) * Q + q0;
      for (int v = 0; v < kColumnVectors; ++v) store_first(out, v * kLanes, acc[j][v], Q - q0 - v * kLanes);
    }
  }
}

// Input gradient, one task: row h of input channels c0 .. c0+channels-1 of image n, all columns in tiles
// of NV vectors. `wt` holds the weights of this block of kChannelBlock channels as [K, R, S,
// kChannelBlock], kernel flipped, zero for channels past C.
template <int NV>
void backward_input_row(const Conv2dGeometry& g, const PaddedMaps& dyp, const float* wt, int64_t n, int64_t h,
                        int64_t c0, int channels, float* dx) {
  for (int64_t w0 = 0; w0 < g.W; w0 += NV * kLanes) {
    v16f acc[kChannelBlock][NV] = {};
    const float* wk = wt;
    for (int64_t k = 0; k < g.K; ++k) {
      const float* plane = dyp.plane(n * g.K + k) + h * dyp.ld + w0;
      for (int64_t r = 0; r < g.R; ++r) {
        for (int64_t s = 0; s < g.S; ++s, wk += kChannelBlock) {
          const float* src = plane + r * dyp.ld + s;
          v16f in[NV];
          for (int v = 0; v < NV; ++v) in[v] = load16(src + v * kLanes);
          for (int j = 0; j < kChannelBlock; ++j) {
            const v16f wv = splat16(wk[j]);
            for (int v = 0; v < NV; ++v) acc[j][v] += wv * in[v];
          }
        }
      }
    }
    for (int j = 0; j < channels; ++j) {
      float* out = dx + ((n * g.C + c0 + j) * g.H + h) * g.W + w0;
      for (int v = 0; v < NV; ++v) store_first(out, v * kLanes, acc[j][v], g.W - w0 - v * kLanes);
    }
  }
}

// Weight gradient, one task: kernel rows r0 .. r0+kKernelRows-1 (those below R) and taps s0 .. s0+T-1 of
// dw[k, c]. Input row y of the padded map meets output-gradient row p = y - r for kernel row r: one loaded
// input vector serves every kernel row of the block, one loaded gradient vector every tap. `dyz` holds the
// output gradient's rows zero-padded to ldq columns (a multiple of kLanes); the input lanes past the last
// output column are masked out, as the input there (the next row) may hold anything, finite or not.
template <int T>
void backward_weight_block(const Conv2dGeometry& g, const PaddedMaps& xp, const float* dyz, int64_t ldq,
                           int64_t k, int64_t c, int64_t r0, int64_t s0, float* dw) {
  using v16i = int __attribute__((vector_size(64)));
  const int64_t P = g.P(), Q = g.Q(), full = Q / kLanes * kLanes;
  v16i tail_mask = {};
  for (int l = 0; l < kLanes; ++l) tail_mask[l] = l < Q - full ? -1 : 0;
  const int64_t last_row = std::min(xp.rows, P + r0 + kKernelRows - 1);
  v16f acc[kKernelRows][T] = {};
  for (int64_t n = 0; n < g.N; ++n) {
    const float* plane = xp.plane(n * g.C + c) + s0;
    const float* grads = dyz + (n * g.K + k) * P * ldq;
    for (int64_t y = r0; y < last_row; ++y) {
      const float* in = plane + y * xp.ld;
      for (int64_t q0 = 0; q0 < Q; q0 += kLanes) {
        v16f x[T];
        for (int t = 0; t < T; ++t) x[t] = load16(in + q0 + t);
        if (q0 == full) {
          for (int t = 0; t < T; ++t) x[t] = reinterpret_cast<v16f>(reinterpret_cast<v16i>(x[t]) & tail_mask);
        }
        for (int j = 0; j < kKernelRows; ++j) {
          const int64_t p = y - r0 - j;
          if (r0 + j >= g.R || p < 0 || p >= P) continue;
          const v16f gv = load16(grads + p * ldq + q0);
          for (int t = 0; t < T; ++t) acc[j][t] += gv * x[t];
        }
      }
    }
  }
  for (int j = 0; j < kKernelRows && r0 + j < g.R; ++j) {
    for (int t = 0; t < T; ++t) {
      float total = 0.0f;
      for (int l = 0; l < kLanes; ++l) total += acc[j][t][l];
      dw[((k * g.C + c) * g.R + r0 + j) * g.S + s0 + t] = total;
    }
  }
}

#pragma GCC pop_options

}  // namespace

bool narrow_applies(const Conv2dGeometry& g) {
  static const bool has_avx512 = __builtin_cpu_supports("avx512f");
  return has_avx512 && g.groups == 1 && g.K <= kNarrowK && g.stride_h == 1 && g.stride_w == 1 &&
         g.dil_h == 1 && g.dil_w == 1 && g.pad_h < g.R && g.pad_w < g.S && g.Q() >= 8 &&
         g.C * g.R * g.S >= 16;
}

void narrow_forward(const Conv2dGeometry& g, const float* x, const float* w, const float* bias, float* y) {
  const PaddedMaps xp = pad_maps(x, g.N * g.C, g.H, g.W, g.pad_h, g.pad_w);
  const int64_t P = g.P();
  // Blocks of kRowBlock rows; the last one ends at row P-1 and stores only the rows no block before it
  // stored. Maps of fewer rows go row by row.
  const int64_t rb = P >= kRowBlock ? kRowBlock : 1, blocks = (P + rb - 1) / rb;
#pragma omp parallel for schedule(static)
  for (int64_t task = 0; task < g.N * g.K * blocks; ++task) {
    const int64_t n = task / (g.K * blocks), k = task / blocks % g.K, start = task % blocks * rb;
    const int64_t p0 = std::min(start, P - rb);
    const float b = bias != nullptr ? bias[k] : 0.0f;
    if (rb == kRowBlock) {
      forward_rows<kRowBlock>(g, xp, w, b, n, k, p0, static_cast<int>(start - p0), y);
    } else {
      forward_rows<1>(g, xp, w, b, n, k, p0, 0, y);
    }
  }
}

void narrow_backward_input(const Conv2dGeometry& g, const float* dy, const float* w, float* dx) {
  const PaddedMaps dyp = pad_maps(dy, g.N * g.K, g.P(), g.Q(), g.R - 1 - g.pad_h, g.S - 1 - g.pad_w);
  const int64_t blocks = (g.C + kChannelBlock - 1) / kChannelBlock, RS = g.R * g.S;
  // Weights per block of channels as [K, R, S, kChannelBlock], kernel flipped, zero past the last channel.
  std::vector<float> wt(static_cast<size_t>(blocks * g.K * RS * kChannelBlock), 0.0f);
  for (int64_t c = 0; c < g.C; ++c) {
    for (int64_t k = 0; k < g.K; ++k) {
      for (int64_t tap = 0; tap < RS; ++tap) {
        wt[static_cast<size_t>(((c / kChannelBlock * g.K + k) * RS + tap) * kChannelBlock +
                               c % kChannelBlock)] = w[(k * g.C + c) * RS + RS - 1 - tap];
      }
    }
  }
  // Vectors per tile: a whole row in up to three, wider rows in tiles of two.
  const int64_t vectors = (g.W + kLanes - 1) / kLanes;
#pragma omp parallel for schedule(static)
  for (int64_t task = 0; task < g.N * g.H * blocks; ++task) {
    const int64_t n = task / (g.H * blocks), h = task / blocks % g.H, block = task % blocks;
    const int64_t c0 = block * kChannelBlock;
    const int channels = static_cast<int>(std::min<int64_t>(kChannelBlock, g.C - c0));
    const float* wb = wt.data() + block * g.K * RS * kChannelBlock;
    if (vectors == 1) {
      backward_input_row<1>(g, dyp, wb, n, h, c0, channels, dx);
    } else if (vectors == 3) {
      backward_input_row<3>(g, dyp, wb, n, h, c0, channels, dx);
    } else {
      backward_input_row<2>(g, dyp, wb, n, h, c0, channels, dx);
    }
  }
}

void narrow_backward_weight(const Conv2dGeometry& g, const float* dy, const float* x, float* dw,
                            float* dbias) {
  using BlockKernel = void (*)(const Conv2dGeometry&, const PaddedMaps&, const float*, int64_t, int64_t,
                               int64_t, int64_t, int64_t, float*);
  static constexpr BlockKernel kBlocks[kTapBlock] = {
      backward_weight_block<1>, backward_weight_block<2>, backward_weight_block<3>, backward_weight_block<4>,
      backward_weight_block<5>, backward_weight_block<6>, backward_weight_block<7>};
  const PaddedMaps xp = pad_maps(x, g.N * g.C, g.H, g.W, g.pad_h, g.pad_w);
  const int64_t P = g.P(), Q = g.Q(), ldq = (Q + kLanes - 1) / kLanes * kLanes;
  std::vector<float> dyz(static_cast<size_t>(g.N * g.K * P * ldq), 0.0f);
  for (int64_t row = 0; row < g.N * g.K * P; ++row) {
    std::memcpy(dyz.data() + row * ldq, dy + row * Q, static_cast<size_t>(Q) * sizeof(float));
  }
  const int64_t row_blocks = (g.R + kKernelRows - 1) / kKernelRows,
                tap_blocks = (g.S + kTapBlock - 1) / kTapBlock;
#pragma omp parallel for schedule(static)
  for (int64_t task = 0; task < g.K * g.C * row_blocks * tap_blocks; ++task) {
    const int64_t s0 = task % tap_blocks * kTapBlock, r0 = task / tap_blocks % row_blocks * kKernelRows,
                  kc = task / (tap_blocks * row_blocks);
    kBlocks[std::min<int64_t>(kTapBlock, g.S - s0) - 1](g, xp, dyz.data(), ldq, kc / g.C, kc % g.C, r0, s0,
                                                        dw);
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
