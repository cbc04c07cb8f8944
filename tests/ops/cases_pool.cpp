// Op cases: max pooling (values and indices, overlapping windows), average pooling (with and without
// count_include_pad), global average pooling, max unpooling, nearest and bilinear resampling, and 2-D
// constant and reflection padding, against naive loops in double.
#include <algorithm>
#include <cmath>
#include <limits>

#include "src/ops/pool.h"
#include "tests/support/reference.h"

namespace lockstep::test {
namespace {
using Ts = std::vector<Tensor>;
using Rs = std::vector<RefArray>;

struct PoolArgs {
  Size2d kernel{2, 2};
  Size2d stride{2, 2};
  Size2d padding{0, 0};
  CountIncludePad include_pad = CountIncludePad::kYes;
};

std::int64_t pooled(std::int64_t in, std::int64_t k, std::int64_t s, std::int64_t p) { return (in + 2 * p - k) / s + 1; }

// Max over each window (out-of-range taps skipped) and the flat h * W + w position of the maximum.
void ref_max_pool2d(const RefArray& x, const PoolArgs& a, RefArray& values, RefArray& indices) {
  const std::int64_t n_ = x.size(0), c_ = x.size(1), h_ = x.size(2), w_ = x.size(3);
  const std::int64_t p_ = pooled(h_, a.kernel[0], a.stride[0], a.padding[0]);
  const std::int64_t q_ = pooled(w_, a.kernel[1], a.stride[1], a.padding[1]);
  values = RefArray({n_, c_, p_, q_});
  indices = RefArray({n_, c_, p_, q_});
  for (std::int64_t n = 0; n < n_; ++n)
    for (std::int64_t c = 0; c < c_; ++c)
      for (std::int64_t p = 0; p < p_; ++p)
        for (std::int64_t q = 0; q < q_; ++q) {
          double best = -std::numeric_limits<double>::infinity();
          std::int64_t at = -1;
          for (std::int64_t r = 0; r < a.kernel[0]; ++r)
            for (std::int64_t s = 0; s < a.kernel[1]; ++s) {
              const std::int64_t h = p * a.stride[0] - a.padding[0] + r, v = q * a.stride[1] - a.padding[1] + s;
              if (h < 0 || h >= h_ || v < 0 || v >= w_) continue;
              if (x.at({n, c, h, v}) > best) {
                best = x.at({n, c, h, v});
                at = h * w_ + v;
              }
            }
          values.at({n, c, p, q}) = best;
          indices.at({n, c, p, q}) = static_cast<double>(at);
        }
}

RefArray ref_avg_pool2d(const RefArray& x, const PoolArgs& a) {
  const std::int64_t n_ = x.size(0), c_ = x.size(1), h_ = x.size(2), w_ = x.size(3);
  const std::int64_t p_ = pooled(h_, a.kernel[0], a.stride[0], a.padding[0]);
  const std::int64_t q_ = pooled(w_, a.kernel[1], a.stride[1], a.padding[1]);
  RefArray y({n_, c_, p_, q_});
  for (std::int64_t n = 0; n < n_; ++n)
    for (std::int64_t c = 0; c < c_; ++c)
      for (std::int64_t p = 0; p < p_; ++p)
        for (std::int64_t q = 0; q < q_; ++q) {
          double sum = 0.0;
          std::int64_t inside = 0;
          for (std::int64_t r = 0; r < a.kernel[0]; ++r)
            for (std::int64_t s = 0; s < a.kernel[1]; ++s) {
              const std::int64_t h = p * a.stride[0] - a.padding[0] + r, v = q * a.stride[1] - a.padding[1] + s;
              if (h < 0 || h >= h_ || v < 0 || v >= w_) continue;
              sum += x.at({n, c, h, v});
              ++inside;
            }
          // Without ceil mode every window lies inside the padded input, so "including padding" is the full window.
          const std::int64_t count = a.include_pad == CountIncludePad::kYes ? a.kernel[0] * a.kernel[1] : inside;
          y.at({n, c, p, q}) = sum / static_cast<double>(count);
        }
  return y;
}

// zeros [N, C, H, W] with y[n, c, indices[n, c, i]] += values[n, c, i].
RefArray ref_unpool(const RefArray& values, const RefArray& indices, std::int64_t h, std::int64_t w) {
  RefArray y({values.size(0), values.size(1), h, w});
  const std::int64_t per_plane = values.size(2) * values.size(3);
  for (std::int64_t i = 0; i < values.numel(); ++i) {
    y[(i / per_plane) * h * w + static_cast<std::int64_t>(indices[i])] += values[i];
  }
  return y;
}

RefArray ref_nearest(const RefArray& x, std::int64_t p_, std::int64_t q_) {
  const std::int64_t h_ = x.size(2), w_ = x.size(3);
  RefArray y({x.size(0), x.size(1), p_, q_});
  for (std::int64_t n = 0; n < x.size(0); ++n)
    for (std::int64_t c = 0; c < x.size(1); ++c)
      for (std::int64_t p = 0; p < p_; ++p)
        for (std::int64_t q = 0; q < q_; ++q) {
          const auto h = static_cast<std::int64_t>(std::floor(static_cast<double>(p) * static_cast<double>(h_) / static_cast<double>(p_)));
          const auto v = static_cast<std::int64_t>(std::floor(static_cast<double>(q) * static_cast<double>(w_) / static_cast<double>(q_)));
          y.at({n, c, p, q}) = x.at({n, c, h, v});
        }
  return y;
}

// PyTorch's source coordinate of destination i when resizing `in` to `out`.
double source_coord(std::int64_t i, std::int64_t in, std::int64_t out, AlignCorners align) {
  const double d = static_cast<double>(i), fin = static_cast<double>(in), fout = static_cast<double>(out);
  if (align == AlignCorners::kYes) return out == 1 ? 0.0 : d * (fin - 1.0) / (fout - 1.0);
  return std::max((d + 0.5) * fin / fout - 0.5, 0.0);
}

RefArray ref_bilinear(const RefArray& x, std::int64_t p_, std::int64_t q_, AlignCorners align) {
  const std::int64_t h_ = x.size(2), w_ = x.size(3);
  RefArray y({x.size(0), x.size(1), p_, q_});
  for (std::int64_t n = 0; n < x.size(0); ++n)
    for (std::int64_t c = 0; c < x.size(1); ++c)
      for (std::int64_t p = 0; p < p_; ++p)
        for (std::int64_t q = 0; q < q_; ++q) {
          const double sh = source_coord(p, h_, p_, align), sw = source_coord(q, w_, q_, align);
          const auto h0 = static_cast<std::int64_t>(std::floor(sh)), w0 = static_cast<std::int64_t>(std::floor(sw));
          const std::int64_t h1 = std::min(h0 + 1, h_ - 1), w1 = std::min(w0 + 1, w_ - 1);
          const double lh = sh - static_cast<double>(h0), lw = sw - static_cast<double>(w0);
          y.at({n, c, p, q}) = (1 - lh) * ((1 - lw) * x.at({n, c, h0, w0}) + lw * x.at({n, c, h0, w1})) +
                               lh * ((1 - lw) * x.at({n, c, h1, w0}) + lw * x.at({n, c, h1, w1}));
        }
  return y;
}

// Pads the last two dims of x by {left, right, top, bottom}: `value` outside, or the mirrored element.
RefArray ref_pad2d(const RefArray& x, Pads2d pads, PadMode mode, double value) {
  const std::size_t nd = x.shape.size();
  const std::int64_t h_ = x.shape[nd - 2], w_ = x.shape[nd - 1];
  Shape out_shape = x.shape;
  out_shape[nd - 2] += pads[2] + pads[3];
  out_shape[nd - 1] += pads[0] + pads[1];
  RefArray y(out_shape);
  const std::int64_t ho = out_shape[nd - 2], wo = out_shape[nd - 1], planes = x.numel() / (h_ * w_);
  auto mirror = [](std::int64_t i, std::int64_t n) { return i < 0 ? -i : (i >= n ? 2 * n - 2 - i : i); };
  for (std::int64_t b = 0; b < planes; ++b)
    for (std::int64_t i = 0; i < ho; ++i)
      for (std::int64_t j = 0; j < wo; ++j) {
        std::int64_t h = i - pads[2], v = j - pads[0];
        double out = value;
        if (mode == PadMode::kReflect) {
          h = mirror(h, h_);
          v = mirror(v, w_);
        }
        if (h >= 0 && h < h_ && v >= 0 && v < w_) out = x[(b * h_ + h) * w_ + v];
        y[(b * ho + i) * wo + j] = out;
      }
  return y;
}

OpCase max_pool_case(std::string name, Shape x, PoolArgs a, bool return_indices) {
  OpCase c{"pool.max_pool2d/" + name, {distinct(std::move(x))},
           [a, return_indices](const Ts& t) {
             const MaxPool2dResult r = max_pool2d(t[0], a.kernel, a.stride, a.padding);
             return return_indices ? r.indices : r.values;
           },
           [a, return_indices](const Rs& r) {
             RefArray values, indices;
             ref_max_pool2d(r[0], a, values, indices);
             return return_indices ? indices : values;
           }};
  c.check_grad = !return_indices;
  return c;
}

OpCase avg_pool_case(std::string name, Shape x, PoolArgs a) {
  return {"pool.avg_pool2d/" + name, {uniform(std::move(x))},
          [a](const Ts& t) { return avg_pool2d(t[0], a.kernel, a.stride, a.padding, a.include_pad); },
          [a](const Rs& r) { return ref_avg_pool2d(r[0], a); }};
}

OpCase unpool_case(std::string name, Shape x, PoolArgs a) {
  const Size2d size{x[2], x[3]};
  return {"pool.max_unpool2d/" + name, {distinct(std::move(x))},
          [a, size](const Ts& t) {
            const MaxPool2dResult r = max_pool2d(t[0], a.kernel, a.stride, a.padding);
            return max_unpool2d(r.values, r.indices, size);
          },
          [a, size](const Rs& r) {
            RefArray values, indices;
            ref_max_pool2d(r[0], a, values, indices);
            return ref_unpool(values, indices, size[0], size[1]);
          }};
}

OpCase nearest_case(std::string name, Shape x, Size2d size) {
  return {"pool.upsample_nearest2d/" + name, {uniform(std::move(x))},
          [size](const Ts& t) { return upsample_nearest2d(t[0], size); },
          [size](const Rs& r) { return ref_nearest(r[0], size[0], size[1]); }};
}

OpCase bilinear_case(std::string name, Shape x, Size2d size, AlignCorners align) {
  return {"pool.upsample_bilinear2d/" + name, {uniform(std::move(x))},
          [size, align](const Ts& t) { return upsample_bilinear2d(t[0], size, align); },
          [size, align](const Rs& r) { return ref_bilinear(r[0], size[0], size[1], align); }};
}

OpCase pad_case(std::string name, Shape x, Pads2d pads, PadMode mode, double value = 0.0) {
  return {"pad.pad2d/" + name, {uniform(std::move(x))},
          [pads, mode, value](const Ts& t) { return pad2d(t[0], pads, mode, value); },
          [pads, mode, value](const Rs& r) { return ref_pad2d(r[0], pads, mode, value); }};
}

}  // namespace

LOCKSTEP_OP_CASES(pool) {
  std::vector<OpCase> cases;
  cases.push_back(max_pool_case("2x2_s2", {2, 3, 6, 6}, {}, false));
  cases.push_back(max_pool_case("2x2_s2_odd", {2, 2, 7, 5}, {}, false));
  cases.push_back(max_pool_case("3x3_s2_p1_overlapping", {2, 3, 7, 7}, {.kernel = {3, 3}, .padding = {1, 1}}, false));
  cases.push_back(max_pool_case("3x3_s1_p1", {2, 2, 5, 5}, {.kernel = {3, 3}, .stride = {1, 1}, .padding = {1, 1}}, false));
  cases.push_back(max_pool_case("nonsquare", {2, 2, 5, 6}, {.kernel = {2, 3}, .stride = {1, 2}, .padding = {1, 1}}, false));
  cases.push_back(max_pool_case("indices_2x2_s2", {2, 3, 6, 6}, {}, true));
  cases.push_back(max_pool_case("indices_3x3_s2_p1", {2, 3, 7, 7}, {.kernel = {3, 3}, .padding = {1, 1}}, true));

  cases.push_back(avg_pool_case("2x2_s2", {2, 3, 6, 6}, {}));
  cases.push_back(avg_pool_case("3x3_s2_p1_include_pad", {2, 3, 7, 7}, {.kernel = {3, 3}, .padding = {1, 1}}));
  cases.push_back(avg_pool_case("3x3_s2_p1_exclude_pad", {2, 3, 7, 7},
                                {.kernel = {3, 3}, .padding = {1, 1}, .include_pad = CountIncludePad::kNo}));
  cases.push_back(avg_pool_case("nonsquare_exclude_pad", {2, 2, 5, 6},
                                {.kernel = {3, 2}, .stride = {1, 2}, .padding = {1, 1}, .include_pad = CountIncludePad::kNo}));
  cases.push_back(avg_pool_case("3x3_s3_odd", {2, 2, 7, 8}, {.kernel = {3, 3}, .stride = {3, 3}}));

  cases.push_back({"pool.global_avg_pool2d", {uniform({2, 3, 5, 4})}, [](const Ts& t) { return global_avg_pool2d(t[0]); },
                   [](const Rs& r) {
                     const RefArray& x = r[0];
                     RefArray y({x.size(0), x.size(1), 1, 1});
                     const std::int64_t plane = x.size(2) * x.size(3);
                     for (std::int64_t i = 0; i < x.numel(); ++i) y[i / plane] += x[i] / static_cast<double>(plane);
                     return y;
                   }});

  cases.push_back(unpool_case("2x2_s2", {2, 3, 6, 6}, {}));
  cases.push_back(unpool_case("2x2_s2_odd_output", {2, 2, 7, 7}, {}));
  cases.push_back(unpool_case("3x3_s2_p1_overlapping_sums", {2, 2, 7, 7}, {.kernel = {3, 3}, .padding = {1, 1}}));

  cases.push_back({"pool.upsample_nearest2d/scale2", {uniform({2, 3, 4, 4})},
                   [](const Ts& t) { return upsample_nearest2d(t[0], 2.0); },
                   [](const Rs& r) { return ref_nearest(r[0], 8, 8); }});
  cases.push_back({"pool.upsample_nearest2d/scale1.5", {uniform({2, 3, 4, 5})},
                   [](const Ts& t) { return upsample_nearest2d(t[0], 1.5); },
                   [](const Rs& r) { return ref_nearest(r[0], 6, 7); }});
  cases.push_back(nearest_case("size_7x8", {2, 3, 4, 5}, {7, 8}));
  cases.push_back(nearest_case("downsample_4x3", {2, 2, 6, 7}, {4, 3}));

  cases.push_back(bilinear_case("x2", {2, 3, 4, 4}, {8, 8}, AlignCorners::kNo));
  cases.push_back(bilinear_case("x2_align_corners", {2, 3, 4, 4}, {8, 8}, AlignCorners::kYes));
  cases.push_back(bilinear_case("7x9", {2, 3, 4, 5}, {7, 9}, AlignCorners::kNo));
  cases.push_back(bilinear_case("7x9_align_corners", {2, 3, 4, 5}, {7, 9}, AlignCorners::kYes));
  cases.push_back(bilinear_case("downsample_4x3", {2, 2, 6, 7}, {4, 3}, AlignCorners::kNo));
  cases.push_back(bilinear_case("downsample_4x3_align_corners", {2, 2, 6, 7}, {4, 3}, AlignCorners::kYes));
  cases.push_back(bilinear_case("to_1x1_align_corners", {2, 2, 3, 4}, {1, 1}, AlignCorners::kYes));
  return cases;
}

LOCKSTEP_OP_CASES(pad) {
  std::vector<OpCase> cases;
  cases.push_back(pad_case("constant", {2, 3, 4, 5}, {1, 2, 0, 3}, PadMode::kConstant, 0.5));
  cases.push_back(pad_case("constant_zero_2d", {4, 5}, {2, 0, 1, 1}, PadMode::kConstant));
  cases.push_back(pad_case("reflect", {2, 3, 4, 5}, {2, 1, 3, 1}, PadMode::kReflect));
  cases.push_back(pad_case("reflect_largest", {3, 4, 5}, {4, 4, 3, 3}, PadMode::kReflect));
  cases.push_back(pad_case("reflect_5d", {2, 2, 2, 4, 5}, {1, 1, 1, 1}, PadMode::kReflect));
  cases.push_back(pad_case("reflect_one_side", {2, 6, 3}, {0, 2, 5, 0}, PadMode::kReflect));
  cases.push_back({"pad.pad2d/reflect_permuted_input", {uniform({5, 4, 3})},
                   [](const Ts& t) { return pad2d(t[0].permute({2, 0, 1}), {1, 2, 2, 1}, PadMode::kReflect); },
                   [](const Rs& r) {
                     RefArray p({3, 5, 4});
                     for (std::int64_t i = 0; i < 5; ++i)
                       for (std::int64_t j = 0; j < 4; ++j)
                         for (std::int64_t k = 0; k < 3; ++k) p.at({k, i, j}) = r[0].at({i, j, k});
                     return ref_pad2d(p, {1, 2, 2, 1}, PadMode::kReflect, 0.0);
                   }});
  return cases;
}

}  // namespace lockstep::test
