// Op cases: conv2d (stride, zero and reflection padding, dilation, groups, depthwise, 1x1, non-square, no bias)
// and conv_transpose2d (stride, padding, output padding, groups, dilation, the DCGAN 4x4/s2/p1 layer), against
// direct nested loops in double; plus second derivatives of conv2d through autograd::grad.
#include "src/autograd/engine.h"
#include "src/autograd/grad_mode.h"
#include "src/ops/conv.h"
#include "src/ops/elementwise.h"
#include "src/ops/reduce.h"
#include "tests/support/reference.h"

namespace lockstep::test {
namespace {
using Ts = std::vector<Tensor>;
using Rs = std::vector<RefArray>;

struct ConvArgs {
  Size2d stride{1, 1};
  Size2d padding{0, 0};
  Size2d dilation{1, 1};
  std::int64_t groups = 1;
  PaddingMode mode = PaddingMode::kZeros;
  Size2d output_padding{0, 0};  // transposed only
};

std::int64_t reflect(std::int64_t i, std::int64_t n) { return i < 0 ? -i : (i >= n ? 2 * (n - 1) - i : i); }

// y[n, k, p, q] = b[k] + sum_{c, r, s} x[n, g * Cg + c, p * sh - ph + r * dh, q * sw - pw + s * dw] * w[k, c, r, s],
// out-of-range taps read zero (or the reflected element).
RefArray ref_conv2d(const RefArray& x, const RefArray& w, const RefArray* bias, const ConvArgs& a) {
  const std::int64_t n_ = x.size(0), h_ = x.size(2), w_ = x.size(3);
  const std::int64_t k_ = w.size(0), cg = w.size(1), r_ = w.size(2), s_ = w.size(3);
  const std::int64_t kg = k_ / a.groups;
  const std::int64_t p_ = (h_ + 2 * a.padding[0] - a.dilation[0] * (r_ - 1) - 1) / a.stride[0] + 1;
  const std::int64_t q_ = (w_ + 2 * a.padding[1] - a.dilation[1] * (s_ - 1) - 1) / a.stride[1] + 1;
  RefArray y({n_, k_, p_, q_});
  for (std::int64_t n = 0; n < n_; ++n)
    for (std::int64_t k = 0; k < k_; ++k)
      for (std::int64_t p = 0; p < p_; ++p)
        for (std::int64_t q = 0; q < q_; ++q) {
          double acc = bias ? (*bias)[k] : 0.0;
          for (std::int64_t c = 0; c < cg; ++c)
            for (std::int64_t r = 0; r < r_; ++r)
              for (std::int64_t s = 0; s < s_; ++s) {
                std::int64_t h = p * a.stride[0] - a.padding[0] + r * a.dilation[0];
                std::int64_t v = q * a.stride[1] - a.padding[1] + s * a.dilation[1];
                if (a.mode == PaddingMode::kReflect) {
                  h = reflect(h, h_);
                  v = reflect(v, w_);
                }
                if (h < 0 || h >= h_ || v < 0 || v >= w_) continue;
                acc += x.at({n, (k / kg) * cg + c, h, v}) * w.at({k, c, r, s});
              }
          y.at({n, k, p, q}) = acc;
        }
  return y;
}

// Scatters every x[n, ci, h, v] * w[ci, co, r, s] to y[n, g * Cg + co, h * sh - ph + r * dh, v * sw - pw + s * dw].
RefArray ref_conv_transpose2d(const RefArray& x, const RefArray& w, const RefArray* bias, const ConvArgs& a) {
  const std::int64_t n_ = x.size(0), ci_ = x.size(1), h_ = x.size(2), w_ = x.size(3);
  const std::int64_t cog = w.size(1), r_ = w.size(2), s_ = w.size(3);
  const std::int64_t cig = ci_ / a.groups;
  const std::int64_t ho = a.stride[0] * (h_ - 1) + a.dilation[0] * (r_ - 1) + 1 - 2 * a.padding[0] + a.output_padding[0];
  const std::int64_t wo = a.stride[1] * (w_ - 1) + a.dilation[1] * (s_ - 1) + 1 - 2 * a.padding[1] + a.output_padding[1];
  RefArray y({n_, cog * a.groups, ho, wo});
  for (std::int64_t n = 0; n < n_; ++n)
    for (std::int64_t co = 0; co < cog * a.groups; ++co)
      for (std::int64_t i = 0; i < ho; ++i)
        for (std::int64_t j = 0; j < wo; ++j) y.at({n, co, i, j}) = bias ? (*bias)[co] : 0.0;
  for (std::int64_t n = 0; n < n_; ++n)
    for (std::int64_t ci = 0; ci < ci_; ++ci)
      for (std::int64_t h = 0; h < h_; ++h)
        for (std::int64_t v = 0; v < w_; ++v)
          for (std::int64_t co = 0; co < cog; ++co)
            for (std::int64_t r = 0; r < r_; ++r)
              for (std::int64_t s = 0; s < s_; ++s) {
                const std::int64_t i = h * a.stride[0] - a.padding[0] + r * a.dilation[0];
                const std::int64_t j = v * a.stride[1] - a.padding[1] + s * a.dilation[1];
                if (i < 0 || i >= ho || j < 0 || j >= wo) continue;
                y.at({n, (ci / cig) * cog + co, i, j}) += x.at({n, ci, h, v}) * w.at({ci, co, r, s});
              }
  return y;
}

// dw[k, c, r, s] = sum_{n, p, q} dy[n, k, p, q] * x[n, g * Cg + c, p * sh - ph + r * dh, q * sw - pw + s * dw].
RefArray ref_conv2d_weight_grad(const RefArray& dy, const RefArray& x, const Shape& w_shape, const ConvArgs& a) {
  RefArray dw(w_shape);
  const std::int64_t kg = w_shape[0] / a.groups, cg = w_shape[1];
  for (std::int64_t n = 0; n < dy.size(0); ++n)
    for (std::int64_t k = 0; k < dy.size(1); ++k)
      for (std::int64_t p = 0; p < dy.size(2); ++p)
        for (std::int64_t q = 0; q < dy.size(3); ++q)
          for (std::int64_t c = 0; c < cg; ++c)
            for (std::int64_t r = 0; r < w_shape[2]; ++r)
              for (std::int64_t s = 0; s < w_shape[3]; ++s) {
                const std::int64_t h = p * a.stride[0] - a.padding[0] + r * a.dilation[0];
                const std::int64_t v = q * a.stride[1] - a.padding[1] + s * a.dilation[1];
                if (h < 0 || h >= x.size(2) || v < 0 || v >= x.size(3)) continue;
                dw.at({k, c, r, s}) += dy.at({n, k, p, q}) * x.at({n, (k / kg) * cg + c, h, v});
              }
  return dw;
}

OpCase conv_case(std::string name, Shape x, Shape w, bool with_bias, ConvArgs a) {
  std::vector<InputSpec> inputs{uniform(std::move(x)), uniform(std::move(w))};
  if (with_bias) inputs.push_back(uniform({inputs[1].shape[0]}));
  OpCase c{"conv.conv2d/" + name, inputs,
           [a](const Ts& t) {
             return conv2d(t[0], t[1], t.size() > 2 ? t[2] : Tensor(), a.stride, a.padding, a.dilation, a.groups, a.mode);
           },
           [a](const Rs& r) { return ref_conv2d(r[0], r[1], r.size() > 2 ? &r[2] : nullptr, a); }};
  c.atol_f32 = 5e-5;
  return c;
}

OpCase conv_transpose_case(std::string name, Shape x, Shape w, bool with_bias, ConvArgs a) {
  std::vector<InputSpec> inputs{uniform(std::move(x)), uniform(std::move(w))};
  if (with_bias) inputs.push_back(uniform({inputs[1].shape[1] * a.groups}));
  OpCase c{"conv.conv_transpose2d/" + name, inputs,
           [a](const Ts& t) {
             return conv_transpose2d(t[0], t[1], t.size() > 2 ? t[2] : Tensor(), a.stride, a.padding, a.output_padding,
                                     a.dilation, a.groups);
           },
           [a](const Rs& r) { return ref_conv_transpose2d(r[0], r[1], r.size() > 2 ? &r[2] : nullptr, a); }};
  c.atol_f32 = 5e-5;
  return c;
}

// A leaf that autograd::grad can differentiate with respect to: the input itself under gradcheck, else a
// fresh leaf sharing its storage (the forward test runs without gradients).
Tensor as_leaf(const Tensor& t) {
  if (t.requires_grad()) return t;
  Tensor leaf = t.detach();
  leaf.requires_grad_();
  return leaf;
}

// d/d(input `which`) of 0.5 * sum(conv2d(x, w)^2), with the graph kept so that it can be differentiated again.
Tensor conv2d_half_square_grad(const Ts& t, const ConvArgs& a, std::size_t which) {
  GradModeGuard grad_on(true);
  const Tensor x = as_leaf(t[0]), w = as_leaf(t[1]);
  const Tensor y = conv2d(x, w, Tensor(), a.stride, a.padding, a.dilation, a.groups);
  const Tensor loss = sum(y * y) * 0.5;
  return grad({loss}, {which == 0 ? x : w}, {}, RetainGraph::kYes, CreateGraph::kYes)[0];
}

}  // namespace

LOCKSTEP_OP_CASES(conv) {
  std::vector<OpCase> cases;
  cases.push_back(conv_case("basic", {2, 3, 6, 6}, {4, 3, 3, 3}, true, {}));
  cases.push_back(conv_case("stride2_pad1", {2, 3, 7, 7}, {4, 3, 3, 3}, true, {.stride = {2, 2}, .padding = {1, 1}}));
  cases.push_back(conv_case("pad2", {2, 3, 5, 5}, {2, 3, 3, 3}, true, {.padding = {2, 2}}));
  cases.push_back(conv_case("stride3_remainder", {2, 2, 8, 7}, {3, 2, 3, 3}, true, {.stride = {3, 3}}));
  cases.push_back(conv_case("stride2_even_pad1", {2, 3, 6, 6}, {2, 3, 3, 3}, false, {.stride = {2, 2}, .padding = {1, 1}}));
  cases.push_back(conv_case("reflect_pad1", {2, 3, 6, 6}, {3, 3, 3, 3}, true, {.padding = {1, 1}, .mode = PaddingMode::kReflect}));
  cases.push_back(conv_case("reflect_pad3_stride2", {1, 2, 7, 6}, {3, 2, 7, 7}, true,
                            {.stride = {2, 2}, .padding = {3, 3}, .mode = PaddingMode::kReflect}));
  cases.push_back(conv_case("reflect_nonsquare", {2, 2, 5, 6}, {2, 2, 3, 1}, false,
                            {.padding = {2, 1}, .mode = PaddingMode::kReflect}));
  cases.push_back(conv_case("dilation2", {2, 3, 7, 7}, {4, 3, 3, 3}, true, {.padding = {2, 2}, .dilation = {2, 2}}));
  cases.push_back(conv_case("dilation2_stride2", {2, 2, 7, 8}, {3, 2, 3, 3}, false,
                            {.stride = {2, 2}, .padding = {1, 1}, .dilation = {2, 2}}));
  cases.push_back(conv_case("dilation_nonsquare", {2, 2, 7, 6}, {3, 2, 3, 2}, true, {.padding = {1, 2}, .dilation = {2, 1}}));
  cases.push_back(conv_case("groups2", {2, 4, 6, 6}, {6, 2, 3, 3}, true, {.padding = {1, 1}, .groups = 2}));
  cases.push_back(conv_case("groups2_stride2", {2, 4, 7, 7}, {4, 2, 3, 3}, false, {.stride = {2, 2}, .groups = 2}));
  cases.push_back(conv_case("depthwise", {2, 3, 6, 6}, {3, 1, 3, 3}, true, {.padding = {1, 1}, .groups = 3}));
  cases.push_back(conv_case("depthwise_multiplier2", {2, 3, 5, 5}, {6, 1, 3, 3}, true, {.groups = 3}));
  cases.push_back(conv_case("1x1", {2, 3, 5, 5}, {4, 3, 1, 1}, true, {}));
  cases.push_back(conv_case("1x1_stride2", {2, 3, 5, 6}, {4, 3, 1, 1}, false, {.stride = {2, 2}}));
  cases.push_back(conv_case("nonsquare_kernel", {2, 3, 7, 6}, {4, 3, 3, 2}, true, {.stride = {2, 1}, .padding = {1, 0}}));
  cases.push_back(conv_case("nonsquare_kernel_1x5", {2, 2, 5, 7}, {3, 2, 1, 5}, true, {.padding = {0, 2}}));
  cases.push_back(conv_case("no_bias", {2, 3, 6, 5}, {4, 3, 3, 3}, false, {.padding = {1, 1}}));
  cases.push_back(conv_case("kernel_equals_input", {2, 3, 4, 4}, {2, 3, 4, 4}, true, {}));
  cases.push_back(conv_case("batch1_single_channel", {1, 1, 6, 6}, {1, 1, 3, 3}, true, {.padding = {1, 1}}));

  cases.push_back(conv_transpose_case("basic", {2, 3, 4, 4}, {3, 2, 3, 3}, true, {}));
  cases.push_back(conv_transpose_case("stride2", {2, 3, 4, 4}, {3, 2, 3, 3}, true, {.stride = {2, 2}}));
  cases.push_back(conv_transpose_case("stride2_pad1", {2, 3, 4, 3}, {3, 2, 3, 3}, false, {.stride = {2, 2}, .padding = {1, 1}}));
  cases.push_back(conv_transpose_case("stride2_pad1_output_padding1", {2, 3, 4, 4}, {3, 2, 3, 3}, true,
                                      {.stride = {2, 2}, .padding = {1, 1}, .output_padding = {1, 1}}));
  cases.push_back(conv_transpose_case("stride3_output_padding2", {2, 2, 3, 3}, {2, 2, 3, 3}, true,
                                      {.stride = {3, 3}, .padding = {1, 1}, .output_padding = {2, 1}}));
  cases.push_back(conv_transpose_case("groups2", {2, 4, 4, 4}, {4, 3, 3, 3}, true, {.padding = {1, 1}, .groups = 2}));
  cases.push_back(conv_transpose_case("groups2_stride2", {2, 4, 3, 3}, {4, 1, 3, 3}, false,
                                      {.stride = {2, 2}, .groups = 2, .output_padding = {1, 1}}));
  cases.push_back(conv_transpose_case("dcgan_4x4_s2_p1", {2, 4, 4, 4}, {4, 3, 4, 4}, true, {.stride = {2, 2}, .padding = {1, 1}}));
  cases.push_back(conv_transpose_case("dcgan_latent_1x1_to_4x4", {2, 4, 1, 1}, {4, 3, 4, 4}, false, {}));
  cases.push_back(conv_transpose_case("dilation2", {2, 2, 4, 4}, {2, 3, 3, 3}, true, {.padding = {1, 1}, .dilation = {2, 2}}));
  cases.push_back(conv_transpose_case("dilation2_output_padding_above_stride", {2, 2, 4, 3}, {2, 2, 3, 3}, true,
                                      {.padding = {1, 1}, .dilation = {2, 2}, .output_padding = {1, 1}}));
  cases.push_back(conv_transpose_case("nonsquare", {2, 3, 3, 4}, {3, 2, 3, 2}, false,
                                      {.stride = {2, 1}, .padding = {1, 0}, .output_padding = {1, 0}}));

  // Second derivatives: the gradient of 0.5 * sum(conv2d(x, w)^2), itself differentiated by the gradcheck.
  const ConvArgs dbl{.stride = {2, 2}, .padding = {1, 1}};
  OpCase ddx{"conv.conv2d/double_backward_input", {uniform({2, 2, 6, 6}), uniform({3, 2, 3, 3})},
             [dbl](const Ts& t) { return conv2d_half_square_grad(t, dbl, 0); },
             [dbl](const Rs& r) {
               ConvArgs back = dbl;
               back.output_padding = {1, 1};  // 6 -> 3 -> 6 with stride 2, padding 1
               return ref_conv_transpose2d(ref_conv2d(r[0], r[1], nullptr, dbl), r[1], nullptr, back);
             }};
  ddx.atol_f32 = 1e-4;
  cases.push_back(ddx);
  OpCase ddw{"conv.conv2d/double_backward_weight", {uniform({2, 2, 6, 6}), uniform({3, 2, 3, 3})},
             [dbl](const Ts& t) { return conv2d_half_square_grad(t, dbl, 1); },
             [dbl](const Rs& r) { return ref_conv2d_weight_grad(ref_conv2d(r[0], r[1], nullptr, dbl), r[0], r[1].shape, dbl); }};
  ddw.atol_f32 = 1e-4;
  cases.push_back(ddw);
  return cases;
}

}  // namespace lockstep::test
