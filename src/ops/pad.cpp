// 2-D constant and reflection padding and their gradients.
#include "src/ops/pad.h"

#include "src/autograd/node.h"

namespace lockstep {
namespace {

std::string pads_str(const Pads2d& p) { return str_cat("{left ", p[0], ", right ", p[1], ", top ", p[2], ", bottom ", p[3], "}"); }

// x [.., H, W] as a contiguous [B, H, W] tensor outside autograd.
Tensor as_planes(const Tensor& x) {
  const Shape lead(x.shape().begin(), x.shape().end() - 2);
  return x.detach().contiguous().view({numel_of(lead), x.size(-2), x.size(-1)});
}

Shape padded_shape(const Shape& in, const Pads2d& pads) {
  Shape out = in;
  out[out.size() - 2] += pads[2] + pads[3];
  out[out.size() - 1] += pads[0] + pads[1];
  return out;
}

// The adjoint of reflection padding: dy [.., H + t + b, W + l + r] -> dx [.., H, W], mirrored positions
// accumulated. Recorded so that double backward works: its gradient is reflection padding again.
Tensor reflect_pad2d_backward(const Tensor& dy, const Shape& in_shape, Pads2d pads) {
  Tensor dx = empty(in_shape, dy.dtype(), dy.device());
  if (dx.numel() > 0) {
    kernels::pad2d_backward.get(dy.device())(PadMode::kReflect, as_planes(dy), as_planes(dx), pads);
  }
  record("pad2d_backward", {dy}, {dx}, {}, [pads](BackwardContext& ctx) {
    // gg [.., H, W] -> d(dy) [.., H + t + b, W + l + r]
    return std::vector<Tensor>{pad2d(ctx.grad(), pads, PadMode::kReflect)};
  });
  return dx;
}

}  // namespace

Tensor pad2d(const Tensor& x, Pads2d pads, PadMode mode, double value) {
  const Device device = common_device("pad2d", {x});
  LOCKSTEP_CHECK(x.dim() >= 2, ValueError, "pad2d: expected a tensor with at least 2 dimensions, but got ",
                 shape_str(x.shape()));
  LOCKSTEP_CHECK(is_floating(x.dtype()), TypeError, "pad2d: expected a floating tensor, but got ",
                 dtype_name(x.dtype()), " ", shape_str(x.shape()));
  for (auto p : pads) {
    LOCKSTEP_CHECK(p >= 0, ValueError, "pad2d: expected non-negative pads, but got ", pads_str(pads), " for input ",
                   shape_str(x.shape()));
  }
  const std::int64_t h = x.size(-2), w = x.size(-1);
  if (mode == PadMode::kReflect) {
    LOCKSTEP_CHECK(pads[0] < w && pads[1] < w && pads[2] < h && pads[3] < h, ValueError,
                   "pad2d: expected reflection pads smaller than the padded dimensions (left, right < ", w,
                   ", top, bottom < ", h, "), but got ", pads_str(pads), " for input ", shape_str(x.shape()));
  }
  const Shape in_shape = x.shape();
  Tensor y = empty(padded_shape(in_shape, pads), x.dtype(), device);
  if (y.numel() > 0) {
    const Tensor planes = as_planes(x);
    kernels::pad2d.get(device)(mode, planes, y.view({planes.size(0), y.size(-2), y.size(-1)}), pads, value);
  }
  record("pad2d", {x}, {y}, {}, [in_shape, pads, mode](BackwardContext& ctx) {
    // dy [.., H + t + b, W + l + r] -> dx [.., H, W]
    const Tensor& g = ctx.grad();
    if (mode == PadMode::kReflect) return std::vector<Tensor>{reflect_pad2d_backward(g, in_shape, pads)};
    const std::int64_t nd = static_cast<std::int64_t>(in_shape.size());
    const std::int64_t hh = in_shape[static_cast<std::size_t>(nd - 2)], ww = in_shape[static_cast<std::size_t>(nd - 1)];
    return std::vector<Tensor>{g.slice(nd - 2, pads[2], pads[2] + hh).slice(nd - 1, pads[0], pads[0] + ww)};
  });
  return y;
}

}  // namespace lockstep
