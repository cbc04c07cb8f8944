// 2-D convolution and transposed convolution with their gradients. The gradients are recorded ops too
// (conv2d's input gradient is a transposed convolution, its weight gradient a recorded op whose own
// gradients are a convolution and a transposed convolution), so second derivatives work (gradient penalties).
#include "src/ops/conv.h"

#include "src/autograd/grad_mode.h"
#include "src/autograd/node.h"
#include "src/ops/micro_shards.h"
#include "src/ops/reduce.h"

namespace lockstep {
namespace {

// A contiguous copy (or the tensor itself) outside autograd, for handing to kernels; undefined stays undefined.
Tensor raw(const Tensor& t) { return t.defined() ? t.detach().contiguous() : t; }

std::string size_str(Size2d s) { return str_cat(s[0], "x", s[1]); }

Conv2dParams make_params(Size2d stride, Size2d padding, Size2d dilation, std::int64_t groups) {
  Conv2dParams p;
  p.stride = stride;
  p.padding = padding;
  p.dilation = dilation;
  p.groups = groups;
  return p;
}

void check_operands(const char* op, const Tensor& x, const Tensor& w, const Tensor& bias) {
  LOCKSTEP_CHECK(x.dim() == 4, ValueError, op, ": expected a 4-D input [N, C, H, W], but got ", shape_str(x.shape()));
  LOCKSTEP_CHECK(w.dim() == 4, ValueError, op, ": expected a 4-D weight, but got ", shape_str(w.shape()), " for input ",
                 shape_str(x.shape()));
  LOCKSTEP_CHECK(is_floating(x.dtype()) && w.dtype() == x.dtype() && (!bias.defined() || bias.dtype() == x.dtype()),
                 TypeError, op, ": expected floating input, weight and bias of one dtype, but got input ",
                 dtype_name(x.dtype()), " ", shape_str(x.shape()), ", weight ", dtype_name(w.dtype()), " ",
                 shape_str(w.shape()), bias.defined() ? str_cat(", bias ", dtype_name(bias.dtype())) : std::string());
  LOCKSTEP_CHECK(x.size(1) >= 1 && x.size(2) >= 1 && x.size(3) >= 1, ValueError, op,
                 ": expected an input with C, H, W >= 1, but got ", shape_str(x.shape()));
  LOCKSTEP_CHECK(w.numel() >= 1, ValueError, op, ": expected a non-empty weight, but got ", shape_str(w.shape()));
}

void check_params(const char* op, Size2d stride, Size2d padding, Size2d dilation, std::int64_t groups) {
  LOCKSTEP_CHECK(stride[0] >= 1 && stride[1] >= 1 && dilation[0] >= 1 && dilation[1] >= 1 && padding[0] >= 0 &&
                     padding[1] >= 0 && groups >= 1,
                 ValueError, op, ": expected stride >= 1, dilation >= 1, padding >= 0 and groups >= 1, but got stride ",
                 size_str(stride), ", dilation ", size_str(dilation), ", padding ", size_str(padding), ", groups ", groups);
}

void check_bias(const char* op, const Tensor& bias, std::int64_t channels) {
  LOCKSTEP_CHECK(!bias.defined() || bias.shape() == Shape{channels}, ValueError, op, ": expected a bias of shape [",
                 channels, "] (one per output channel), but got ", shape_str(bias.shape()));
}

// The output padding that makes a transposed convolution of `out` come back to `in`: the rows of `in` that
// the convolution's stride skipped at the end. Always below the stride.
std::int64_t output_padding_for(std::int64_t in, std::int64_t out, std::int64_t kernel, std::int64_t padding,
                                std::int64_t stride, std::int64_t dilation) {
  return in - conv_transpose_output_size(out, kernel, padding, stride, dilation, 0);
}

Tensor conv2d_core(const Tensor& x, const Tensor& w, const Tensor& bias, const Conv2dParams& p);
Tensor conv_transpose2d_core(const Tensor& x, const Tensor& w, const Tensor& bias, const Conv2dParams& p,
                             Size2d output_padding);

// The input gradient of conv2d: dy [N, K, P, Q], w [K, C / groups, R, S] -> dx [N, C, H, W], H, W = in_size.
Tensor conv2d_input_grad(const Tensor& dy, const Tensor& w, const Conv2dParams& p, Size2d in_size) {
  Size2d op{};
  for (std::size_t d = 0; d < 2; ++d) {
    op[d] = output_padding_for(in_size[d], dy.size(2 + static_cast<std::int64_t>(d)), w.size(2 + static_cast<std::int64_t>(d)),
                               p.padding[d], p.stride[d], p.dilation[d]);
  }
  return conv_transpose2d_core(dy, w, Tensor(), p, op);
}

// The weight gradient of conv2d as a recorded op: dy [N, K, P, Q], x [N, C, H, W] -> dw of w_shape
// [K, C / groups, R, S]. It is bilinear in dy and x, so its own gradients are a conv and a transposed conv.
// With `dbias` and no graph being recorded, the bias gradient [K] comes out of the same kernel pass. With a
// gradient `home` (offered only when no graph is recorded) dw is written there, times its scale.
Tensor conv2d_weight_grad(const Tensor& dy, const Tensor& x, const Shape& w_shape, const Conv2dParams& p,
                          Tensor* dbias = nullptr, const GradientHome* home = nullptr) {
  const std::int64_t shards = GradMode::is_enabled() ? 0 : micro_shard_count(dy);
  if (shards != 0) home = nullptr;  // deterministic mode sums micro-shards' gradients in its tree
  Tensor dw = home != nullptr ? home->view : empty(w_shape, dy.dtype(), dy.device());
  Tensor db;
  const bool with_bias = dbias != nullptr && !GradMode::is_enabled();
  if (with_bias) db = empty({w_shape[0]}, dy.dtype(), dy.device());
  if (shards == 0) {
    kernels::conv2d_backward_weight.get(dy.device())(raw(dy), raw(x), dw, db, p);
    if (home != nullptr && home->scale != 1.0) dw.mul_(home->scale);  // while the fresh gradient is in cache
  } else {
    // Deterministic mode: each micro-shard's weight gradient on one thread, then the fixed tree.
    const Tensor dyc = raw(dy), xc = raw(x);
    std::vector<Tensor> dws(static_cast<std::size_t>(shards)), dbs(static_cast<std::size_t>(shards));
    for_each_micro_shard(shards, [&](std::int64_t k) {
      const auto i = static_cast<std::size_t>(k);
      dws[i] = empty(w_shape, dy.dtype(), dy.device());
      if (with_bias) dbs[i] = empty({w_shape[0]}, dy.dtype(), dy.device());
      kernels::conv2d_backward_weight.get(dy.device())(micro_shard(dyc, k, shards),
                                                       micro_shard(xc, k, shards), dws[i], dbs[i], p);
    });
    dw = tree_sum(std::move(dws));
    if (with_bias) db = tree_sum(std::move(dbs));
  }
  if (db.defined()) *dbias = db;
  const Size2d in_size{x.size(2), x.size(3)};
  record("conv2d_backward_weight", {dy, x}, {dw}, {dy, x}, [p, in_size](BackwardContext& ctx) {
    // gg [K, C / groups, R, S], dy [N, K, P, Q], x [N, C, H, W] -> d(dy) [N, K, P, Q], dx [N, C, H, W]
    const Tensor& gg = ctx.grad();
    return std::vector<Tensor>{ctx.needs_input_grad(0) ? conv2d_core(ctx.saved(1), gg, Tensor(), p) : Tensor(),
                               ctx.needs_input_grad(1) ? conv2d_input_grad(ctx.saved(0), gg, p, in_size) : Tensor()};
  });
  return dw;
}

// conv2d on validated operands with zero padding p.padding.
Tensor conv2d_core(const Tensor& x, const Tensor& w, const Tensor& bias, const Conv2dParams& p) {
  Shape shape{x.size(0), w.size(0), 0, 0};
  for (std::size_t d = 0; d < 2; ++d) {
    const auto i = static_cast<std::int64_t>(d);
    shape[2 + d] = conv_output_size(x.size(2 + i), w.size(2 + i), p.padding[d], p.stride[d], p.dilation[d]);
  }
  Tensor y = empty(shape, x.dtype(), x.device());
  const std::int64_t shards = micro_shard_count(x);
  if (shards == 0) {
    kernels::conv2d.get(x.device())(raw(x), raw(w), raw(bias), y, p);
  } else {
    // Deterministic mode: the same kernel shapes at any world size.
    const Tensor xc = raw(x);
    for (std::int64_t k = 0; k < shards; ++k)
      kernels::conv2d.get(x.device())(micro_shard(xc, k, shards), raw(w), raw(bias),
                                      micro_shard(y, k, shards), p);
  }
  const Size2d in_size{x.size(2), x.size(3)};
  record("conv2d", {x, w, bias}, {y}, {x, w}, [p, in_size](BackwardContext& ctx) {
    // dy [N, K, P, Q], x [N, C, H, W], w [K, C / groups, R, S] -> dx [N, C, H, W], dw [K, C / groups, R, S], dbias [K]
    const Tensor& g = ctx.grad();
    const Tensor w = ctx.saved(1);
    Tensor dx, dw, db;
    if (ctx.needs_input_grad(0) && ctx.needs_input_grad(1) && !GradMode::is_enabled() &&
        g.device().is_cpu() && micro_shard_count(g) == 0) {
      // Both gradients from one kernel call (on the CPU each chunk of dy goes into oneDNN's layout once);
      // the values of the two calls below.
      const Tensor x = ctx.saved(0);
      const GradientHome* home = ctx.home(1);
      dx = empty(x.shape(), g.dtype(), g.device());
      dw = home != nullptr ? home->view : empty(w.shape(), g.dtype(), g.device());
      if (ctx.needs_input_grad(2)) db = empty({w.size(0)}, g.dtype(), g.device());
      kernels::conv2d_backward.get(g.device())(raw(g), raw(x), raw(w), dx, dw, db, p);
      if (home != nullptr && home->scale != 1.0) dw.mul_(home->scale);
      return std::vector<Tensor>{dx, dw, db};
    }
    if (ctx.needs_input_grad(0)) dx = conv2d_input_grad(g, w, p, in_size);
    if (ctx.needs_input_grad(1)) {
      dw = conv2d_weight_grad(g, ctx.saved(0), w.shape(), p, ctx.needs_input_grad(2) ? &db : nullptr,
                              ctx.home(1));
    }
    if (ctx.needs_input_grad(2) && !db.defined()) db = batch_sum(g, {0, 2, 3});
    return std::vector<Tensor>{dx, dw, db};
  });
  return y;
}

// conv_transpose2d on validated operands. It runs as the input gradient of a convolution whose input is the
// transposed convolution's output. When output_padding >= stride (allowed below the dilation) that
// convolution's output is longer than x by output_padding / stride rows (columns), which x gets as zeros.
Tensor conv_transpose2d_core(const Tensor& x, const Tensor& w, const Tensor& bias, const Conv2dParams& p,
                             Size2d output_padding) {
  const std::int64_t channels = w.size(1) * p.groups;
  Shape shape{x.size(0), channels, 0, 0};
  Size2d extra{};
  for (std::size_t d = 0; d < 2; ++d) {
    const auto i = static_cast<std::int64_t>(d);
    shape[2 + d] = conv_transpose_output_size(x.size(2 + i), w.size(2 + i), p.padding[d], p.stride[d], p.dilation[d],
                                              output_padding[d]);
    extra[d] = output_padding[d] / p.stride[d];
  }
  const bool extended = extra[0] > 0 || extra[1] > 0;
  const Device device = x.device();
  Tensor y = empty(shape, x.dtype(), device);
  Tensor dy = raw(x);
  if (extended) {
    const Pads2d pads{0, extra[1], 0, extra[0]};
    Tensor padded = empty({x.size(0), x.size(1), x.size(2) + extra[0], x.size(3) + extra[1]}, x.dtype(), device);
    if (padded.numel() > 0) {
      const std::int64_t b = x.size(0) * x.size(1);
      kernels::pad2d.get(device)(PadMode::kConstant, dy.view({b, x.size(2), x.size(3)}),
                                 padded.view({b, padded.size(2), padded.size(3)}), pads, 0.0);
    }
    dy = padded;
  }
  const std::int64_t shards = micro_shard_count(x);
  if (shards == 0) {
    kernels::conv2d_backward_input.get(device)(dy, raw(w), y, p);
  } else {
    for (std::int64_t k = 0; k < shards; ++k)
      kernels::conv2d_backward_input.get(device)(micro_shard(dy, k, shards), raw(w),
                                                 micro_shard(y, k, shards), p);
  }
  if (bias.defined() && y.numel() > 0) {
    kernels::binary.get(device)(BinaryOp::kAdd, y, broadcast_view(raw(bias).view({1, channels, 1, 1}), shape), y, 1.0);
  }
  const Size2d in_size{x.size(2), x.size(3)};
  record("conv_transpose2d", {x, w, bias}, {y}, {x, w}, [p, in_size, extra, extended](BackwardContext& ctx) {
    // dy [N, Cout, Ho, Wo], x [N, Cin, H, W], w [Cin, Cout / groups, R, S]
    //   -> dx [N, Cin, H, W], dw [Cin, Cout / groups, R, S], dbias [Cout]
    const Tensor& g = ctx.grad();
    const Tensor w = ctx.saved(1);
    Tensor dx, dw, dbias;
    if (ctx.needs_input_grad(0)) {
      dx = conv2d_core(g, w, Tensor(), p);
      if (extended) dx = dx.slice(2, 0, in_size[0]).slice(3, 0, in_size[1]);
    }
    if (ctx.needs_input_grad(1)) {
      const Tensor xs = ctx.saved(0);
      const Tensor x_ext = extended ? pad2d(xs, {0, extra[1], 0, extra[0]}) : xs;
      dw = conv2d_weight_grad(x_ext, g, w.shape(), p, nullptr, ctx.home(1));
    }
    if (ctx.needs_input_grad(2)) dbias = batch_sum(g, {0, 2, 3});
    return std::vector<Tensor>{dx, dw, dbias};
  });
  return y;
}

}  // namespace

std::int64_t conv_output_size(std::int64_t in, std::int64_t kernel, std::int64_t padding, std::int64_t stride,
                              std::int64_t dilation) {
  const std::int64_t span = in + 2 * padding - dilation * (kernel - 1) - 1;
  return span < 0 ? 0 : span / stride + 1;
}

std::int64_t conv_transpose_output_size(std::int64_t in, std::int64_t kernel, std::int64_t padding, std::int64_t stride,
                                        std::int64_t dilation, std::int64_t output_padding) {
  return stride * (in - 1) + dilation * (kernel - 1) + 1 - 2 * padding + output_padding;
}

Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& bias, Size2d stride, Size2d padding, Size2d dilation,
              std::int64_t groups, PaddingMode padding_mode) {
  common_device("conv2d", {x, w, bias});
  check_operands("conv2d", x, w, bias);
  check_params("conv2d", stride, padding, dilation, groups);
  const std::int64_t c = x.size(1), k = w.size(0);
  LOCKSTEP_CHECK(c % groups == 0 && k % groups == 0, ValueError, "conv2d: expected groups (", groups,
                 ") to divide the input channels (", c, ") and the output channels (", k, "), but got input ",
                 shape_str(x.shape()), " and weight ", shape_str(w.shape()));
  LOCKSTEP_CHECK(w.size(1) == c / groups, ValueError, "conv2d: expected a weight [K, C / groups, R, S] = [", k, ", ",
                 c / groups, ", R, S] for input ", shape_str(x.shape()), " and groups ", groups, ", but got weight ",
                 shape_str(w.shape()));
  check_bias("conv2d", bias, k);
  const Size2d kernel{w.size(2), w.size(3)};
  for (std::size_t d = 0; d < 2; ++d) {
    const std::int64_t span = dilation[d] * (kernel[d] - 1) + 1;
    const std::int64_t in = x.size(2 + static_cast<std::int64_t>(d));
    LOCKSTEP_CHECK(span <= in + 2 * padding[d], ValueError, "conv2d: expected the kernel ", size_str(kernel),
                   " (dilation ", size_str(dilation), ") to fit in the padded input, but got input ", shape_str(x.shape()),
                   " with padding ", size_str(padding), " and weight ", shape_str(w.shape()));
  }
  if (padding_mode == PaddingMode::kZeros) return conv2d_core(x, w, bias, make_params(stride, padding, dilation, groups));
  LOCKSTEP_CHECK(padding[0] < x.size(2) && padding[1] < x.size(3), ValueError,
                 "conv2d: expected reflection padding smaller than the input's H and W, but got padding ",
                 size_str(padding), " for input ", shape_str(x.shape()));
  const Tensor padded = pad2d(x, {padding[1], padding[1], padding[0], padding[0]}, PadMode::kReflect);
  return conv2d_core(padded, w, bias, make_params(stride, {0, 0}, dilation, groups));
}

Tensor conv_transpose2d(const Tensor& x, const Tensor& w, const Tensor& bias, Size2d stride, Size2d padding,
                        Size2d output_padding, Size2d dilation, std::int64_t groups) {
  common_device("conv_transpose2d", {x, w, bias});
  check_operands("conv_transpose2d", x, w, bias);
  check_params("conv_transpose2d", stride, padding, dilation, groups);
  const std::int64_t c = x.size(1);
  LOCKSTEP_CHECK(c % groups == 0, ValueError, "conv_transpose2d: expected groups (", groups,
                 ") to divide the input channels (", c, "), but got input ", shape_str(x.shape()));
  LOCKSTEP_CHECK(w.size(0) == c, ValueError, "conv_transpose2d: expected a weight [Cin, Cout / groups, R, S] with Cin = ", c,
                 " for input ", shape_str(x.shape()), ", but got weight ", shape_str(w.shape()));
  check_bias("conv_transpose2d", bias, w.size(1) * groups);
  for (std::size_t d = 0; d < 2; ++d) {
    LOCKSTEP_CHECK(output_padding[d] >= 0 && (output_padding[d] < stride[d] || output_padding[d] < dilation[d]),
                   ValueError, "conv_transpose2d: expected output_padding >= 0 and smaller than stride or dilation, but got output_padding ",
                   size_str(output_padding), " with stride ", size_str(stride), " and dilation ", size_str(dilation));
    const std::int64_t i = static_cast<std::int64_t>(d);
    const std::int64_t out = conv_transpose_output_size(x.size(2 + i), w.size(2 + i), padding[d], stride[d], dilation[d],
                                                        output_padding[d]);
    LOCKSTEP_CHECK(out >= 1, ValueError, "conv_transpose2d: expected a positive output size, but input ",
                   shape_str(x.shape()), " with weight ", shape_str(w.shape()), ", stride ", size_str(stride), ", padding ",
                   size_str(padding), ", dilation ", size_str(dilation), " and output_padding ", size_str(output_padding),
                   " gives ", out);
  }
  return conv_transpose2d_core(x, w, bias, make_params(stride, padding, dilation, groups), output_padding);
}

}  // namespace lockstep
