// Pooling and resampling ops and their gradients. Every backward is itself a recorded op (max pooling's
// is max unpooling, whose gradient is a plane gather, and so on), so second derivatives work.
#include "src/ops/pool.h"

#include <cmath>

#include "src/autograd/node.h"
#include "src/ops/reduce.h"
#include "src/tensor/factories.h"

namespace lockstep {
namespace {

// A contiguous copy (or the tensor itself) outside autograd, for handing to kernels.
Tensor raw(const Tensor& t) { return t.detach().contiguous(); }

std::string size_str(Size2d s) { return str_cat(s[0], "x", s[1]); }

void check_nchw(const char* op, const Tensor& x) {
  LOCKSTEP_CHECK(x.dim() == 4, ValueError, op, ": expected a 4-D input [N, C, H, W], but got ", shape_str(x.shape()));
  LOCKSTEP_CHECK(is_floating(x.dtype()), TypeError, op, ": expected a floating input, but got ", dtype_name(x.dtype()),
                 " ", shape_str(x.shape()));
}

Pool2dParams pool_params(const char* op, const Tensor& x, Size2d kernel, Size2d stride, Size2d padding,
                         CountIncludePad count_include_pad) {
  for (int d = 0; d < 2; ++d) {
    LOCKSTEP_CHECK(kernel[d] >= 1 && stride[d] >= 1 && padding[d] >= 0, ValueError, op,
                   ": expected kernel >= 1, stride >= 1 and padding >= 0, but got kernel ", size_str(kernel),
                   ", stride ", size_str(stride), ", padding ", size_str(padding));
    LOCKSTEP_CHECK(2 * padding[d] <= kernel[d], ValueError, op, ": expected padding at most half the kernel, but got padding ",
                   size_str(padding), " for kernel ", size_str(kernel));
    const std::int64_t in = x.size(2 + d);
    LOCKSTEP_CHECK(in + 2 * padding[d] >= kernel[d], ValueError, op, ": expected the kernel ", size_str(kernel),
                   " to fit the padded input, but got input ", shape_str(x.shape()), " with padding ", size_str(padding));
  }
  Pool2dParams p;
  p.kernel = kernel;
  p.stride = stride;
  p.padding = padding;
  p.count_include_pad = count_include_pad;
  return p;
}

Shape pooled_shape(const Tensor& x, const Pool2dParams& p) {
  Shape out = x.shape();
  for (std::size_t d = 0; d < 2; ++d) out[2 + d] = (out[2 + d] + 2 * p.padding[d] - p.kernel[d]) / p.stride[d] + 1;
  return out;
}

// [N, C, H, W] -> [N * C, H * W] view of a contiguous tensor.
Tensor planes(const Tensor& t) { return t.view({t.size(0) * t.size(1), t.size(2) * t.size(3)}); }

// src [N, C, H, W], indices [N, C, P, Q] -> out [N, C, P, Q] = src at indices, plane by plane.
Tensor gather_planes(const Tensor& src, const Tensor& indices) {
  Tensor out = empty(indices.shape(), src.dtype(), src.device());
  if (out.numel() > 0) kernels::plane_gather.get(src.device())(planes(raw(src)), planes(raw(indices)), planes(out));
  const Size2d size{src.size(2), src.size(3)};
  record("plane_gather", {src}, {out}, {indices}, [size](BackwardContext& ctx) {
    // gg [N, C, P, Q], indices [N, C, P, Q] -> d(src) [N, C, H, W]
    return std::vector<Tensor>{max_unpool2d(ctx.grad(), ctx.saved(0), size)};
  });
  return out;
}

Tensor avg_pool2d_with(const Tensor& x, const Pool2dParams& p);

// The adjoint of average pooling: dy [N, C, P, Q] -> dx of `in_shape` [N, C, H, W].
Tensor avg_pool2d_backward(const Tensor& dy, const Shape& in_shape, const Pool2dParams& p) {
  Tensor dx = empty(in_shape, dy.dtype(), dy.device());
  if (dx.numel() > 0) kernels::avg_pool2d_backward.get(dy.device())(raw(dy), dx, p);
  record("avg_pool2d_backward", {dy}, {dx}, {}, [p](BackwardContext& ctx) {
    // gg [N, C, H, W] -> d(dy) [N, C, P, Q]
    return std::vector<Tensor>{avg_pool2d_with(ctx.grad(), p)};
  });
  return dx;
}

Tensor avg_pool2d_with(const Tensor& x, const Pool2dParams& p) {
  Tensor y = empty(pooled_shape(x, p), x.dtype(), x.device());
  if (y.numel() > 0) kernels::avg_pool2d.get(x.device())(raw(x), y, p);
  const Shape in_shape = x.shape();
  record("avg_pool2d", {x}, {y}, {}, [in_shape, p](BackwardContext& ctx) {
    // dy [N, C, P, Q] -> dx [N, C, H, W]
    return std::vector<Tensor>{avg_pool2d_backward(ctx.grad(), in_shape, p)};
  });
  return y;
}

void check_resample(const char* op, const Tensor& x, Size2d output_size) {
  check_nchw(op, x);
  LOCKSTEP_CHECK(x.size(2) >= 1 && x.size(3) >= 1, ValueError, op, ": expected an input with H, W >= 1, but got ",
                 shape_str(x.shape()));
  LOCKSTEP_CHECK(output_size[0] >= 1 && output_size[1] >= 1, ValueError, op,
                 ": expected an output size of at least 1x1, but got ", size_str(output_size), " for input ",
                 shape_str(x.shape()));
}

Shape resampled_shape(const Tensor& x, Size2d output_size) { return {x.size(0), x.size(1), output_size[0], output_size[1]}; }

// The adjoint of nearest resampling: dy [N, C, P, Q] -> dx of `in_shape` [N, C, H, W].
Tensor upsample_nearest2d_backward(const Tensor& dy, const Shape& in_shape) {
  Tensor dx = empty(in_shape, dy.dtype(), dy.device());
  if (dx.numel() > 0) kernels::upsample_nearest2d_backward.get(dy.device())(raw(dy), dx);
  const Size2d out_size{dy.size(2), dy.size(3)};
  record("upsample_nearest2d_backward", {dy}, {dx}, {}, [out_size](BackwardContext& ctx) {
    // gg [N, C, H, W] -> d(dy) [N, C, P, Q]
    return std::vector<Tensor>{upsample_nearest2d(ctx.grad(), out_size)};
  });
  return dx;
}

// The adjoint of bilinear resampling: dy [N, C, P, Q] -> dx of `in_shape` [N, C, H, W].
Tensor upsample_bilinear2d_backward(const Tensor& dy, const Shape& in_shape, AlignCorners align) {
  Tensor dx = empty(in_shape, dy.dtype(), dy.device());
  if (dx.numel() > 0) kernels::upsample_bilinear2d_backward.get(dy.device())(raw(dy), dx, align);
  const Size2d out_size{dy.size(2), dy.size(3)};
  record("upsample_bilinear2d_backward", {dy}, {dx}, {}, [out_size, align](BackwardContext& ctx) {
    // gg [N, C, H, W] -> d(dy) [N, C, P, Q]
    return std::vector<Tensor>{upsample_bilinear2d(ctx.grad(), out_size, align)};
  });
  return dx;
}

}  // namespace

MaxPool2dResult max_pool2d(const Tensor& x, Size2d kernel, Size2d stride, Size2d padding) {
  const Device device = common_device("max_pool2d", {x});
  check_nchw("max_pool2d", x);
  const Pool2dParams p = pool_params("max_pool2d", x, kernel, stride, padding, CountIncludePad::kYes);
  const Shape shape = pooled_shape(x, p);
  Tensor y = empty(shape, x.dtype(), device), indices = empty(shape, DType::i64, device);
  if (y.numel() > 0) kernels::max_pool2d.get(device)(raw(x), y, indices, p);
  const Size2d in_size{x.size(2), x.size(3)};
  record("max_pool2d", {x}, {y}, {indices}, [in_size](BackwardContext& ctx) {
    // dy [N, C, P, Q], indices [N, C, P, Q] -> dx [N, C, H, W]
    return std::vector<Tensor>{max_unpool2d(ctx.grad(), ctx.saved(0), in_size)};
  });
  return {y, indices};
}

Tensor avg_pool2d(const Tensor& x, Size2d kernel, Size2d stride, Size2d padding, CountIncludePad count_include_pad) {
  common_device("avg_pool2d", {x});
  check_nchw("avg_pool2d", x);
  return avg_pool2d_with(x, pool_params("avg_pool2d", x, kernel, stride, padding, count_include_pad));
}

Tensor global_avg_pool2d(const Tensor& x) {
  check_nchw("global_avg_pool2d", x);
  LOCKSTEP_CHECK(x.size(2) * x.size(3) >= 1, ValueError, "global_avg_pool2d: expected an input with H, W >= 1, but got ",
                 shape_str(x.shape()));
  return mean(x, {2, 3}, KeepDim::kYes);
}

Tensor max_unpool2d(const Tensor& x, const Tensor& indices, Size2d output_size) {
  const Device device = common_device("max_unpool2d", {x, indices});
  check_nchw("max_unpool2d", x);
  LOCKSTEP_CHECK(indices.dtype() == DType::i64 && indices.shape() == x.shape(), ValueError,
                 "max_unpool2d: expected i64 indices of the input's shape ", shape_str(x.shape()), ", but got ",
                 dtype_name(indices.dtype()), " ", shape_str(indices.shape()));
  LOCKSTEP_CHECK(output_size[0] >= 0 && output_size[1] >= 0, ValueError,
                 "max_unpool2d: expected a non-negative output size, but got ", size_str(output_size));
  Tensor y = zeros(resampled_shape(x, output_size), x.dtype(), device);
  if (x.numel() > 0) {
    try {
      kernels::plane_scatter_add.get(device)(planes(raw(x)), planes(raw(indices)), planes(y));
    } catch (const IndexError& e) {
      throw IndexError(str_cat("max_unpool2d: indices out of range for output size ", size_str(output_size), " (input ",
                           shape_str(x.shape()), "): ", e.what()));
    }
  }
  record("max_unpool2d", {x}, {y}, {indices}, [](BackwardContext& ctx) {
    // dy [N, C, H, W], indices [N, C, P, Q] -> dx [N, C, P, Q]
    return std::vector<Tensor>{gather_planes(ctx.grad(), ctx.saved(0))};
  });
  return y;
}

Tensor upsample_nearest2d(const Tensor& x, Size2d output_size) {
  const Device device = common_device("upsample_nearest2d", {x});
  check_resample("upsample_nearest2d", x, output_size);
  Tensor y = empty(resampled_shape(x, output_size), x.dtype(), device);
  if (y.numel() > 0) kernels::upsample_nearest2d.get(device)(raw(x), y);
  const Shape in_shape = x.shape();
  record("upsample_nearest2d", {x}, {y}, {}, [in_shape](BackwardContext& ctx) {
    // dy [N, C, P, Q] -> dx [N, C, H, W]
    return std::vector<Tensor>{upsample_nearest2d_backward(ctx.grad(), in_shape)};
  });
  return y;
}

Tensor upsample_nearest2d(const Tensor& x, double scale) {
  check_nchw("upsample_nearest2d", x);
  LOCKSTEP_CHECK(scale > 0.0 && std::isfinite(scale), ValueError,
                 "upsample_nearest2d: expected a positive finite scale, but got ", scale, " for input ",
                 shape_str(x.shape()));
  const auto scaled = [scale](std::int64_t n) {
    return static_cast<std::int64_t>(std::floor(static_cast<double>(n) * scale));
  };
  return upsample_nearest2d(x, Size2d{scaled(x.size(2)), scaled(x.size(3))});
}

Tensor upsample_bilinear2d(const Tensor& x, Size2d output_size, AlignCorners align) {
  const Device device = common_device("upsample_bilinear2d", {x});
  check_resample("upsample_bilinear2d", x, output_size);
  Tensor y = empty(resampled_shape(x, output_size), x.dtype(), device);
  if (y.numel() > 0) kernels::upsample_bilinear2d.get(device)(raw(x), y, align);
  const Shape in_shape = x.shape();
  record("upsample_bilinear2d", {x}, {y}, {}, [in_shape, align](BackwardContext& ctx) {
    // dy [N, C, P, Q] -> dx [N, C, H, W]
    return std::vector<Tensor>{upsample_bilinear2d_backward(ctx.grad(), in_shape, align)};
  });
  return y;
}

}  // namespace lockstep
