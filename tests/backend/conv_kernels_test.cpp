// The CPU convolution kernels (src/backend/cpu/conv_kernels.h) on every mechanism the dispatch can pick:
// automatic choice, im2col + GEMM forced and oneDNN forced, against a direct f64 loop reference for the
// forward pass and both gradients, on shapes that reach the direct AVX-512, narrow (few output channels),
// dense-GEMM, grouped, dilated and odd-batch code paths; the same at bf16 precision against the reference on
// operands rounded to bf16. Also the geometry validation.
#include "src/backend/cpu/conv_kernels.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "src/backend/cpu/conv_internal.h"
#include "src/core/error.h"
#include "src/core/precision.h"
#include "tests/support/expect_error.h"

namespace lockstep::cpu {
namespace {

// Restores the automatic path when a test ends, whatever it forced.
struct PathGuard {
  explicit PathGuard(Conv2dPath path) { set_conv2d_path(path); }
  ~PathGuard() { set_conv2d_path(Conv2dPath::kAuto); }
};

// Stride 1, no padding, H x W maps, R x R kernel.
Conv2dGeometry rectangle(int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t R) {
  return Conv2dGeometry{N, C, H, W, K, R, R};
}

Conv2dGeometry geometry(int64_t N, int64_t C, int64_t H, int64_t K, int64_t R, int64_t stride, int64_t pad,
                        int64_t groups = 1, int64_t dil = 1) {
  Conv2dGeometry g{N, C, H, H, K, R, R};
  g.stride_h = g.stride_w = stride;
  g.pad_h = g.pad_w = pad;
  g.groups = groups;
  g.dil_h = g.dil_w = dil;
  return g;
}

std::vector<double> random_values(int64_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  std::vector<double> v(static_cast<size_t>(n));
  for (double& e : v) e = static_cast<float>(u(rng));  // representable in f32 too
  return v;
}

// Reference values and the sums of absolute terms behind them (for the rounding tolerance).
struct Reference {
  std::vector<double> y, y_abs, dx, dx_abs, dw, dw_abs, db, db_abs;
};

// Direct loops over the definition: y = conv(x, w) + b, dx = conv^T(dy, w), dw = corr(dy, x), db = sum dy.
Reference reference(const Conv2dGeometry& g, const std::vector<double>& x, const std::vector<double>& w,
                    const std::vector<double>& b, const std::vector<double>& dy) {
  const int64_t P = g.P(), Q = g.Q(), Cg = g.C / g.groups, Kg = g.K / g.groups;
  Reference ref;
  ref.y.assign(static_cast<size_t>(g.N * g.K * P * Q), 0.0);
  ref.y_abs = ref.y;
  ref.dx.assign(x.size(), 0.0);
  ref.dx_abs = ref.dx;
  ref.dw.assign(w.size(), 0.0);
  ref.dw_abs = ref.dw;
  ref.db.assign(static_cast<size_t>(g.K), 0.0);
  ref.db_abs = ref.db;
  for (int64_t n = 0; n < g.N; ++n) {
    for (int64_t k = 0; k < g.K; ++k) {
      const int64_t grp = k / Kg;
      for (int64_t p = 0; p < P; ++p) {
        for (int64_t q = 0; q < Q; ++q) {
          const size_t yi = static_cast<size_t>(((n * g.K + k) * P + p) * Q + q);
          ref.y[yi] = b[static_cast<size_t>(k)];
          ref.y_abs[yi] = std::abs(b[static_cast<size_t>(k)]);
          ref.db[static_cast<size_t>(k)] += dy[yi];
          ref.db_abs[static_cast<size_t>(k)] += std::abs(dy[yi]);
          for (int64_t c = 0; c < Cg; ++c) {
            for (int64_t r = 0; r < g.R; ++r) {
              for (int64_t s = 0; s < g.S; ++s) {
                const int64_t ih = p * g.stride_h - g.pad_h + r * g.dil_h;
                const int64_t iw = q * g.stride_w - g.pad_w + s * g.dil_w;
                if (ih < 0 || ih >= g.H || iw < 0 || iw >= g.W) continue;
                const size_t xi = static_cast<size_t>(((n * g.C + grp * Cg + c) * g.H + ih) * g.W + iw);
                const size_t wi = static_cast<size_t>(((k * Cg + c) * g.R + r) * g.S + s);
                ref.y[yi] += x[xi] * w[wi];
                ref.y_abs[yi] += std::abs(x[xi] * w[wi]);
                ref.dx[xi] += dy[yi] * w[wi];
                ref.dx_abs[xi] += std::abs(dy[yi] * w[wi]);
                ref.dw[wi] += dy[yi] * x[xi];
                ref.dw_abs[wi] += std::abs(dy[yi] * x[xi]);
              }
            }
          }
        }
      }
    }
  }
  return ref;
}

template <class T>
void expect_close(const std::vector<T>& got, const std::vector<double>& want, const std::vector<double>& abs,
                  double rel, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  int64_t bad = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double err = std::abs(static_cast<double>(got[i]) - want[i]);
    if (err > rel * abs[i] + 1e-6 && bad++ < 3) {
      ADD_FAILURE() << what << "[" << i << "]: got " << got[i] << ", want " << want[i] << " (error " << err
                    << ")";
    }
  }
  EXPECT_EQ(bad, 0) << what;
}

// Runs the three kernels in T and compares them with the f64 reference.
template <class T>
void check_kernels(const Conv2dGeometry& g, const std::string& name, double rel) {
  const int64_t ys = g.N * g.K * g.P() * g.Q();
  const auto x = random_values(g.N * g.C * g.H * g.W, 1),
             w = random_values(g.K * (g.C / g.groups) * g.R * g.S, 2), b = random_values(g.K, 3),
             dy = random_values(ys, 4);
  const Reference ref = reference(g, x, w, b, dy);
  const std::vector<T> xt(x.begin(), x.end()), wt(w.begin(), w.end()), bt(b.begin(), b.end()),
      dyt(dy.begin(), dy.end());
  std::vector<T> y(static_cast<size_t>(ys), T(7)), dx(x.size(), T(7)), dw(w.size(), T(7)), db(b.size(), T(7));
  conv2d_forward<T>(g, xt.data(), wt.data(), bt.data(), y.data());
  expect_close(y, ref.y, ref.y_abs, rel, name + " forward");
  conv2d_backward_input<T>(g, dyt.data(), wt.data(), dx.data());
  expect_close(dx, ref.dx, ref.dx_abs, rel, name + " input gradient");
  conv2d_backward_weight<T>(g, dyt.data(), xt.data(), dw.data(), db.data());
  expect_close(dw, ref.dw, ref.dw_abs, rel, name + " weight gradient");
  expect_close(db, ref.db, ref.db_abs, rel, name + " bias gradient");
  // Without bias: the forward pass adds none and the weight gradient leaves no bias to write.
  std::vector<T> y0(static_cast<size_t>(ys), T(7));
  conv2d_forward<T>(g, xt.data(), wt.data(), nullptr, y0.data());
  std::vector<double> y_no_bias = ref.y;
  for (size_t i = 0; i < y_no_bias.size(); ++i) {
    y_no_bias[i] -= b[static_cast<size_t>(static_cast<int64_t>(i) / (g.P() * g.Q()) % g.K)];
  }
  expect_close(y0, y_no_bias, ref.y_abs, rel, name + " forward without bias");
  conv2d_backward_weight<T>(g, dyt.data(), xt.data(), dw.data(), nullptr);
  expect_close(dw, ref.dw, ref.dw_abs, rel, name + " weight gradient without bias");
}

struct Case {
  const char* name;
  Conv2dGeometry g;
  bool onednn;  // oneDNN implements it (ungrouped, not a kernel covering the whole input)
};

std::vector<Case> cases() {
  // At least one image per thread, so that the direct AVX-512 input gradient is eligible.
  const int64_t n = std::max<int64_t>(4, omp_get_max_threads());
  return {
      {"3x3_same", geometry(4, 8, 10, 8, 3, 1, 1), true},
      {"3x3_stride2", geometry(3, 6, 9, 12, 3, 2, 1), true},
      {"transposed_to_1_channel", geometry(n, 1, 8, 32, 4, 2, 1), true},  // C*R*S = 16, K = 32: direct
      {"1x1_shortcut", geometry(n, 16, 8, 32, 1, 2, 0), true},            // C*R*S = 16, K = 32: direct
      {"few_input_channels", geometry(5, 3, 12, 16, 5, 1, 2), true},      // input gradient prefers GEMM
      {"kernel_covers_input", geometry(5, 3, 5, 7, 5, 1, 0), false},      // one dense GEMM
      {"grouped_dilated", geometry(2, 8, 11, 12, 3, 1, 2, 4, 2), false},
      {"odd_batch", geometry(7, 24, 9, 40, 3, 1, 1), true},
      {"one_output_channel_7x7", geometry(3, 32, 14, 1, 7, 1, 0), true},  // K = 1: narrow (CycleGAN's last)
      {"critic_head_padded", geometry(3, 16, 7, 1, 4, 1, 1), true},       // K = 1 with zero padding: narrow
      {"three_output_channels", geometry(2, 8, 9, 3, 3, 1, 1), true},     // K = 3: narrow
      // Narrow with partial tiles: 31 output columns, 37 input columns (three vectors, the last partial),
      // 31 output rows (a partial block of rows), 20 input channels (a partial block of channels).
      {"one_output_channel_wide_rows", geometry(2, 20, 37, 1, 7, 1, 0), true},
      {"four_output_channels_padded", geometry(3, 9, 53, 4, 3, 1, 1), true},  // 53 columns: tiles of two
      {"one_output_channel_17x17", geometry(2, 3, 30, 1, 17, 1, 2), true},    // 17 taps: blocks of 7, 7, 3
      {"one_output_channel_three_rows", rectangle(2, 2, 5, 24, 1, 3), true},  // 3 output rows: row by row
      {"wide_3x3_winograd", geometry(2, 64, 10, 64, 3, 1, 1), true},     // forward, weight gradient: Winograd
      {"wide_4x4_stride2_nhwc", geometry(3, 64, 8, 80, 4, 2, 1), true},  // forward on NHWC (brgconv)
  };
}

TEST(ConvKernels, NarrowKernelsGiveTheSameBitsAtAnyThreadCount) {
  // Few output channels: every output element comes from one task in a fixed order.
  const Conv2dGeometry g = geometry(3, 16, 11, 2, 5, 1, 2);
  const auto x = random_values(g.N * g.C * g.H * g.W, 7), w = random_values(g.K * g.C * g.R * g.S, 8),
             dy = random_values(g.N * g.K * g.P() * g.Q(), 9);
  const std::vector<float> xt(x.begin(), x.end()), wt(w.begin(), w.end()), dyt(dy.begin(), dy.end());
  std::vector<std::vector<float>> results[2];
  const int saved = omp_get_max_threads();
  for (const int threads : {1, 2}) {
    omp_set_num_threads(threads);
    std::vector<float> y(dy.size()), dx(x.size()), dw(w.size()), db(static_cast<size_t>(g.K));
    conv2d_forward<float>(g, xt.data(), wt.data(), nullptr, y.data());
    conv2d_backward_input<float>(g, dyt.data(), wt.data(), dx.data());
    conv2d_backward_weight<float>(g, dyt.data(), xt.data(), dw.data(), db.data());
    results[threads - 1] = {y, dx, dw, db};
  }
  omp_set_num_threads(saved);
  EXPECT_EQ(results[0], results[1]);
}

TEST(ConvKernels, NarrowWeightGradientIgnoresInputColumnsPastTheOutput) {
  // 18 output columns: the weight gradient's last vector of a row has 2 valid lanes, and its other lanes
  // read input columns 18-19 for the first tap. An infinite last column (reached only by the last tap)
  // must leave the first tap's gradient finite, as in the reference.
  const Conv2dGeometry g = geometry(1, 2, 20, 1, 3, 1, 0);
  if (!conv_internal::narrow_applies(g)) GTEST_SKIP() << "the narrow kernels need a CPU with AVX-512F";
  std::vector<float> x(static_cast<size_t>(g.N * g.C * g.H * g.W), 0.5f);
  for (int64_t row = 0; row < g.C * g.H; ++row) x[static_cast<size_t>(row * g.W + g.W - 1)] = INFINITY;
  const std::vector<float> dy(static_cast<size_t>(g.N * g.K * g.P() * g.Q()), 0.25f);
  std::vector<float> dw(static_cast<size_t>(g.K * g.C * g.R * g.S));
  conv2d_backward_weight<float>(g, dy.data(), x.data(), dw.data(), nullptr);
  for (int64_t cr = 0; cr < g.C * g.R; ++cr) {
    // 18 x 18 products of 0.25 and 0.5 for taps 0 and 1; the last tap reads the infinite column.
    EXPECT_EQ(dw[static_cast<size_t>(cr * g.S)], 18 * 18 * 0.125f) << "row " << cr;
    EXPECT_EQ(dw[static_cast<size_t>(cr * g.S + 1)], 18 * 18 * 0.125f) << "row " << cr;
    EXPECT_TRUE(std::isinf(dw[static_cast<size_t>(cr * g.S + 2)])) << "row " << cr;
  }
}

// conv2d_backward (both gradients in one walk over dy where both run on oneDNN) gives the bits of the two
// separate kernels, for every case on every path, serial (1 thread) and chunks spread over 2 threads, with
// and without the bias gradient; 2 x 64 images of the 64-channel case make several chunks with a shorter
// last.
TEST(ConvKernels, BothGradientsTogetherEqualTheSeparateKernels) {
  std::vector<Case> all = cases();
  all.push_back({"many_chunks", geometry(131, 64, 16, 64, 3, 2, 1), true});
  const int saved = omp_get_max_threads();
  for (const Conv2dPath path : {Conv2dPath::kAuto, Conv2dPath::kOneDnn}) {
    const PathGuard guard(path);
    for (const Case& c : all) {
      if (path == Conv2dPath::kOneDnn && !c.onednn) continue;
      const Conv2dGeometry& g = c.g;
      const auto x = random_values(g.N * g.C * g.H * g.W, 3),
                 w = random_values(g.K * (g.C / g.groups) * g.R * g.S, 4),
                 dy = random_values(g.N * g.K * g.P() * g.Q(), 5);
      const std::vector<float> xt(x.begin(), x.end()), wt(w.begin(), w.end()), dyt(dy.begin(), dy.end());
      for (const int threads : {1, 2}) {
        omp_set_num_threads(threads);
        for (const bool bias : {false, true}) {
          SCOPED_TRACE(std::string(c.name) + " path " + std::to_string(static_cast<int>(path)) + ", " +
                       std::to_string(threads) + " threads" + (bias ? ", bias" : ""));
          std::vector<float> dx(x.size()), dw(w.size()), db(static_cast<size_t>(g.K));
          std::vector<float> dx2(x.size(), -1.0f), dw2(w.size(), -1.0f), db2(static_cast<size_t>(g.K), -1.0f);
          conv2d_backward_input<float>(g, dyt.data(), wt.data(), dx.data());
          conv2d_backward_weight<float>(g, dyt.data(), xt.data(), dw.data(), bias ? db.data() : nullptr);
          conv2d_backward<float>(g, dyt.data(), xt.data(), wt.data(), dx2.data(), dw2.data(),
                                 bias ? db2.data() : nullptr);
          EXPECT_EQ(dx, dx2);
          EXPECT_EQ(dw, dw2);
          if (bias) {
            EXPECT_EQ(db, db2);
          }
        }
      }
    }
  }
  omp_set_num_threads(saved);
}

// 5 images on 4 threads make 3 chunks of 2 (the count rounded to the threads, then to whole chunks): thread 0
// gets none. The weight gradient must not start from what the caller's buffers held (here 1000).
TEST(ConvKernels, ParallelWeightGradientWhenTheFirstThreadHasNoChunk) {
  const Conv2dGeometry g = geometry(5, 16, 8, 16, 3, 1, 1);
  const auto x = random_values(g.N * g.C * g.H * g.W, 3), w = random_values(g.K * g.C * g.R * g.S, 4),
             dy = random_values(g.N * g.K * g.P() * g.Q(), 5);
  const std::vector<float> xt(x.begin(), x.end()), wt(w.begin(), w.end()), dyt(dy.begin(), dy.end());
  std::vector<float> want_dw(w.size()), want_db(static_cast<size_t>(g.K));
  {
    const PathGuard gemm(Conv2dPath::kGemm);
    conv2d_backward_weight<float>(g, dyt.data(), xt.data(), want_dw.data(), want_db.data());
  }
  const int saved = omp_get_max_threads();
  omp_set_num_threads(4);
  const PathGuard onednn(Conv2dPath::kOneDnn);
  for (const bool joint : {false, true}) {
    std::vector<float> dw(w.size(), 1000.0f), db(static_cast<size_t>(g.K), 1000.0f), dx(x.size());
    if (joint) {
      conv2d_backward<float>(g, dyt.data(), xt.data(), wt.data(), dx.data(), dw.data(), db.data());
    } else {
      conv2d_backward_weight<float>(g, dyt.data(), xt.data(), dw.data(), db.data());
    }
    for (size_t i = 0; i < dw.size(); ++i)
      ASSERT_NEAR(dw[i], want_dw[i], 1e-3) << "dw " << i << (joint ? " joint" : "");
    for (size_t k = 0; k < db.size(); ++k)
      ASSERT_NEAR(db[k], want_db[k], 1e-3) << "db " << k << (joint ? " joint" : "");
  }
  omp_set_num_threads(saved);
}

TEST(ConvKernels, EveryPathMatchesTheReferenceInF32) {
  for (const Conv2dPath path : {Conv2dPath::kAuto, Conv2dPath::kGemm, Conv2dPath::kOneDnn}) {
    const PathGuard guard(path);
    for (const Case& c : cases()) {
      if (path == Conv2dPath::kOneDnn && !c.onednn) continue;
      check_kernels<float>(c.g, std::string(c.name) + " path " + std::to_string(static_cast<int>(path)),
                           1e-4);
    }
  }
}

// bf16 precision: each pass multiplies its two operands rounded to bf16 and sums in f32, on every path
// (oneDNN's bf16 primitives, or the f32 mechanisms on rounded copies). So the results match the reference on
// rounded operands to f32 rounding, and differ from the f32 reference by far more.
TEST(ConvKernels, Bf16MatchesTheReferenceOnRoundedOperands) {
  const MatmulPrecisionScope bf16(MatmulPrecision::kBf16);
  for (const Conv2dPath path : {Conv2dPath::kAuto, Conv2dPath::kGemm, Conv2dPath::kOneDnn}) {
    const PathGuard guard(path);
    for (const Case& c : cases()) {
      if (path == Conv2dPath::kOneDnn && !c.onednn) continue;
      const Conv2dGeometry& g = c.g;
      const std::string name = std::string(c.name) + " path " + std::to_string(static_cast<int>(path));
      const int64_t ys = g.N * g.K * g.P() * g.Q();
      auto x = random_values(g.N * g.C * g.H * g.W, 1),
           w = random_values(g.K * (g.C / g.groups) * g.R * g.S, 2), dy = random_values(ys, 4);
      const auto b = random_values(g.K, 3);
      const Reference exact = reference(g, x, w, b, dy);
      for (auto* v : {&x, &w, &dy})
        for (double& e : *v) e = round_to_bf16(static_cast<float>(e));
      const Reference ref = reference(g, x, w, b, dy);
      // The kernels get the unrounded f32 values and must round them themselves.
      const auto unrounded = [](const std::vector<double>& r) {
        return std::vector<float>(r.begin(), r.end());
      };
      const std::vector<float> xt = unrounded(random_values(g.N * g.C * g.H * g.W, 1)),
                               wt = unrounded(random_values(g.K * (g.C / g.groups) * g.R * g.S, 2)),
                               dyt = unrounded(random_values(ys, 4)), bt = unrounded(b);
      std::vector<float> y(static_cast<size_t>(ys)), dx(xt.size()), dw(wt.size()), db(bt.size());
      conv2d_forward<float>(g, xt.data(), wt.data(), bt.data(), y.data());
      expect_close(y, ref.y, ref.y_abs, 1e-4, name + " bf16 forward");
      conv2d_backward_input<float>(g, dyt.data(), wt.data(), dx.data());
      expect_close(dx, ref.dx, ref.dx_abs, 1e-4, name + " bf16 input gradient");
      conv2d_backward_weight<float>(g, dyt.data(), xt.data(), dw.data(), db.data());
      expect_close(dw, ref.dw, ref.dw_abs, 1e-4, name + " bf16 weight gradient");
      expect_close(db, ref.db, ref.db_abs, 1e-4, name + " bf16 bias gradient (the sum of rounded dy)");
      // Far from f32: bf16 keeps 8 significant bits.
      double worst = 0.0;
      for (size_t i = 0; i < y.size(); ++i)
        worst = std::max(worst, std::abs(y[i] - exact.y[i]) / (exact.y_abs[i] + 1e-30));
      EXPECT_GT(worst, 1e-4) << name << ": bf16 results as close to f32 as f32 itself";
    }
  }
}

TEST(ConvKernels, NhwcBf16TransposeMatchesItsDefinition) {
  // The NCHW -> NHWC bf16 transpose into oneDNN's bf16 convolutions, vector bodies and scalar remainders.
  for (const int64_t C : {3, 16, 24, 40}) {
    for (const int64_t HW : {1, 15, 16, 37}) {
      const int64_t N = 2, total = N * C * HW;
      std::vector<float> src(static_cast<size_t>(total));
      const auto values = random_values(total, static_cast<unsigned>(C * 100 + HW));
      for (int64_t i = 0; i < total; ++i)
        src[static_cast<size_t>(i)] = static_cast<float>(values[static_cast<size_t>(i)]);
      src[1] = std::numeric_limits<float>::quiet_NaN();
      std::vector<std::uint16_t> nhwc(src.size());
      conv_internal::nchw_to_nhwc_bf16(src.data(), nhwc.data(), N, C, HW);
      for (int64_t n = 0; n < N; ++n) {
        for (int64_t c = 0; c < C; ++c) {
          for (int64_t p = 0; p < HW; ++p) {
            const size_t nchw = static_cast<size_t>((n * C + c) * HW + p),
                         nhwc_i = static_cast<size_t>((n * HW + p) * C + c);
            ASSERT_EQ(nhwc[nhwc_i], bf16_bits(src[nchw]))
                << "C=" << C << " HW=" << HW << " n,c,p=" << n << "," << c << "," << p;
          }
        }
      }
    }
  }
}

TEST(ConvKernels, F64MatchesTheReference) {
  for (const Case& c : cases()) check_kernels<double>(c.g, c.name, 1e-12);
}

TEST(ConvKernels, PathsAgreeBitwiseWhereTheyShareAMechanism) {
  // The forced GEMM path and the automatic one on a shape the dispatch sends to GEMM run the same code.
  const Conv2dGeometry g = geometry(5, 3, 5, 7, 5, 1, 0);
  const auto x = random_values(g.N * g.C * g.H * g.W, 5), w = random_values(g.K * g.C * g.R * g.S, 6);
  const std::vector<float> xt(x.begin(), x.end()), wt(w.begin(), w.end());
  std::vector<float> a(static_cast<size_t>(g.N * g.K)), b(a.size());
  {
    const PathGuard guard(Conv2dPath::kGemm);
    conv2d_forward<float>(g, xt.data(), wt.data(), nullptr, a.data());
  }
  conv2d_forward<float>(g, xt.data(), wt.data(), nullptr, b.data());
  EXPECT_EQ(a, b);
}

TEST(ConvKernels, InvalidGeometryIsAValueError) {
  std::vector<float> buf(4096);
  test::expect_error<ValueError>(
      [&] {
        conv2d_forward<float>(geometry(1, 6, 8, 4, 3, 1, 1, 4), buf.data(), buf.data(), nullptr, buf.data());
      },
      {"conv2d: expected positive sizes", "groups=4"});
  test::expect_error<ValueError>(
      [&] {
        conv2d_forward<float>(geometry(1, 2, 4, 2, 7, 1, 0), buf.data(), buf.data(), nullptr, buf.data());
      },
      {"a non-empty output", "R=7"});
  test::expect_error<ValueError>([&] { validate_conv2d_geometry(geometry(1, 2, 4, 2, 3, 0, 0)); },
                                 {"stride=0x0"});
}

}  // namespace
}  // namespace lockstep::cpu
