// The fused recurrent cells on the recurrent kernels, with their gradients: the fused backward kernel, or
// under create_graph the same derivatives recorded from differentiable ops so that they can be differentiated
// again.
#include "src/ops/recurrent.h"

#include <vector>

#include "src/autograd/grad_mode.h"
#include "src/autograd/node.h"
#include "src/ops/activation.h"
#include "src/ops/elementwise.h"
#include "src/ops/kernels.h"
#include "src/ops/shape.h"
#include "src/tensor/factories.h"

namespace lockstep {
namespace {

// A detached contiguous tensor for a kernel; undefined stays undefined.
Tensor kernel_arg(const Tensor& t) { return t.defined() ? t.detach().contiguous() : t; }

// Checks gi and gh [B, G H] and the state `state` [B, H] (when `state_what` is not null); returns H.
std::int64_t check_cell(const char* op, std::int64_t gates, const Tensor& gi, const Tensor& gh,
                        const char* state_what, const Tensor& state) {
  LOCKSTEP_CHECK(gi.defined() && gh.defined(), ValueError, op,
                 ": expected defined gate projections gi and gh, but got an undefined ",
                 gi.defined() ? "gh" : "gi");
  LOCKSTEP_CHECK(gi.dim() == 2 && gi.size(1) % gates == 0 && gi.size(1) > 0, ValueError, op,
                 ": expected gi of shape [B, ", gates, " H] (", gates, " gate blocks of H columns), but got ",
                 shape_str(gi.shape()));
  LOCKSTEP_CHECK(gh.shape() == gi.shape(), ValueError, op, ": expected gh of gi's shape ",
                 shape_str(gi.shape()), ", but got ", shape_str(gh.shape()));
  LOCKSTEP_CHECK(is_floating(gi.dtype()) && gh.dtype() == gi.dtype(), TypeError, op,
                 ": expected floating gi and gh of one dtype, but got ", dtype_name(gi.dtype()), " and ",
                 dtype_name(gh.dtype()));
  const std::int64_t H = gi.size(1) / gates;
  if (state_what != nullptr) {
    LOCKSTEP_CHECK(state.defined() && state.shape() == Shape({gi.size(0), H}), ValueError, op, ": expected ",
                   state_what, " of shape [", gi.size(0), ", ", H, "] for gi ", shape_str(gi.shape()),
                   ", but got ",
                   state.defined() ? shape_str(state.shape()) : std::string("an undefined tensor"));
    LOCKSTEP_CHECK(state.dtype() == gi.dtype(), TypeError, op, ": expected ", state_what, " of dtype ",
                   dtype_name(gi.dtype()), " like gi, but got ", dtype_name(state.dtype()));
  }
  common_device(op, {gi, gh, state});
  return H;
}

// Gate block k of t [B, G H].
Tensor block(const Tensor& t, std::int64_t k, std::int64_t H) { return t.slice(1, k * H, (k + 1) * H); }

// The LSTM step's derivatives from differentiable ops (used under create_graph): with the gates recomputed
// from gi + gh and c' = f c + i g,
//   dc' = dc + dh o (1 - tanh(c')^2)
//   d[i, f, g, o] = [dc' g i (1 - i), dc' c f (1 - f), dc' i (1 - g^2), dh tanh(c') o (1 - o)],  dc_prev =
//   dc' f
std::vector<Tensor> recorded_lstm_cell_backward(const Tensor& dh, const Tensor& dc, const Tensor& gi,
                                                const Tensor& gh, const Tensor& c, bool need_gates,
                                                bool need_c) {
  const std::int64_t H = c.size(1);
  const Tensor pre = gi + gh;
  const Tensor i = sigmoid(block(pre, 0, H)), f = sigmoid(block(pre, 1, H));
  const Tensor g = tanh(block(pre, 2, H)), o = sigmoid(block(pre, 3, H));
  const Tensor tc = tanh(f * c + i * g);
  const Tensor dcn = dc + dh * o * (1.0 - tc * tc);
  Tensor dgates, dc_prev;
  if (need_gates) {
    dgates = cat(
        {dcn * g * i * (1.0 - i), dcn * c * f * (1.0 - f), dcn * i * (1.0 - g * g), dh * tc * o * (1.0 - o)},
        1);
  }
  if (need_c) dc_prev = dcn * f;
  return {dgates, dgates, dc_prev};
}

// The GRU step's derivatives from differentiable ops (used under create_graph): with r, z, n recomputed,
//   dn = dh (1 - z) (1 - n^2),  dr = dn gh_n r (1 - r),  dz = dh (h - n) z (1 - z)
//   dgi = [dr, dz, dn],  dgh = [dr, dz, dn r],  dh_prev = dh z
std::vector<Tensor> recorded_gru_cell_backward(const Tensor& dh, const Tensor& gi, const Tensor& gh,
                                               const Tensor& h, bool need_gi, bool need_gh, bool need_h) {
  const std::int64_t H = h.size(1);
  const Tensor r = sigmoid(block(gi, 0, H) + block(gh, 0, H));
  const Tensor z = sigmoid(block(gi, 1, H) + block(gh, 1, H));
  const Tensor hh_n = block(gh, 2, H);
  const Tensor n = tanh(block(gi, 2, H) + r * hh_n);
  const Tensor dn = dh * (1.0 - z) * (1.0 - n * n);
  const Tensor dr = dn * hh_n * r * (1.0 - r);
  const Tensor dz = dh * (h - n) * z * (1.0 - z);
  Tensor dgi, dgh, dh_prev;
  if (need_gi) dgi = cat({dr, dz, dn}, 1);
  if (need_gh) dgh = cat({dr, dz, dn * r}, 1);
  if (need_h) dh_prev = dh * z;
  return {dgi, dgh, dh_prev};
}

}  // namespace

Tensor rnn_cell(const Tensor& gi, const Tensor& gh, RnnActivation activation) {
  const char* op = "rnn_cell";
  check_cell(op, 1, gi, gh, nullptr, Tensor());
  const UnaryOp act = activation == RnnActivation::kRelu ? UnaryOp::kRelu : UnaryOp::kTanh;
  const Device device = gi.device();
  Tensor h = empty(gi.shape(), gi.dtype(), device);
  kernels::rnn_cell.get(device)(act, kernel_arg(gi), kernel_arg(gh), h);
  record(op, {gi, gh}, {h}, {h}, [act](BackwardContext& ctx) {
    // dh [B,H], h [B,H] -> dgi [B,H], dgh [B,H] (the same tensor: gi and gh enter as a sum)
    const Tensor& dh = ctx.grad();
    const Tensor y = ctx.saved(0);
    Tensor dpre;
    if (GradMode::is_enabled()) {
      // create_graph: from h with its history, as the tanh and relu ops' own gradients.
      dpre = act == UnaryOp::kRelu ? where(gt(y, wrapped_scalar(0.0)), dh, wrapped_scalar(0.0))
                                   : dh * (1.0 - y * y);
    } else {
      dpre = empty(y.shape(), y.dtype(), y.device());
      kernels::rnn_cell_backward.get(y.device())(act, kernel_arg(dh), kernel_arg(y), dpre);
    }
    return std::vector<Tensor>{ctx.needs_input_grad(0) ? dpre : Tensor(),
                               ctx.needs_input_grad(1) ? dpre : Tensor()};
  });
  return h;
}

LstmCellOutput lstm_cell(const Tensor& gi, const Tensor& gh, const Tensor& c) {
  const char* op = "lstm_cell";
  check_cell(op, 4, gi, gh, "c", c);
  const Device device = gi.device();
  LstmCellOutput out{empty(c.shape(), c.dtype(), device), empty(c.shape(), c.dtype(), device)};
  const Tensor gi_c = kernel_arg(gi), gh_c = kernel_arg(gh), c_c = kernel_arg(c);
  kernels::lstm_cell.get(device)(gi_c, gh_c, c_c, out.h, out.c);
  // The inputs are saved as given (the linear projections are contiguous: no copy); c' as the output.
  record(op, {gi, gh, c}, {out.h, out.c}, {gi, gh, c, out.c}, [](BackwardContext& ctx) {
    // dh, dc [B,H]; gi, gh [B,4H], c, c' [B,H] -> dgi, dgh [B,4H] (the same tensor), dc_prev [B,H]
    const bool need_gates = ctx.needs_input_grad(0) || ctx.needs_input_grad(1),
               need_c = ctx.needs_input_grad(2);
    std::vector<Tensor> grads;
    if (GradMode::is_enabled()) {
      // create_graph: the gradient is to be differentiated again.
      grads = recorded_lstm_cell_backward(ctx.grad(0), ctx.grad(1), ctx.saved(0), ctx.saved(1), ctx.saved(2),
                                          need_gates, need_c);
    } else {
      const Tensor gi_s = kernel_arg(ctx.saved(0));
      const Device dev = gi_s.device();
      const Tensor c_s = kernel_arg(ctx.saved(2));
      Tensor dgates = empty(gi_s.shape(), gi_s.dtype(), dev);
      Tensor dc_prev = need_c ? empty(c_s.shape(), c_s.dtype(), dev) : Tensor();
      kernels::lstm_cell_backward.get(dev)(kernel_arg(ctx.grad(0)), kernel_arg(ctx.grad(1)), gi_s,
                                           kernel_arg(ctx.saved(1)), c_s, kernel_arg(ctx.saved(3)), dgates,
                                           dc_prev);
      grads = {dgates, dgates, dc_prev};
    }
    if (!ctx.needs_input_grad(0)) grads[0] = Tensor();
    if (!ctx.needs_input_grad(1)) grads[1] = Tensor();
    return grads;
  });
  return out;
}

Tensor gru_cell(const Tensor& gi, const Tensor& gh, const Tensor& h) {
  const char* op = "gru_cell";
  check_cell(op, 3, gi, gh, "h", h);
  const Device device = gi.device();
  Tensor h_new = empty(h.shape(), h.dtype(), device);
  kernels::gru_cell.get(device)(kernel_arg(gi), kernel_arg(gh), kernel_arg(h), h_new);
  record(op, {gi, gh, h}, {h_new}, {gi, gh, h}, [](BackwardContext& ctx) {
    // dh' [B,H]; gi, gh [B,3H], h [B,H] -> dgi, dgh [B,3H], dh [B,H]
    const bool need_gi = ctx.needs_input_grad(0), need_gh = ctx.needs_input_grad(1),
               need_h = ctx.needs_input_grad(2);
    if (GradMode::is_enabled()) {
      // create_graph: the gradient is to be differentiated again.
      return recorded_gru_cell_backward(ctx.grad(), ctx.saved(0), ctx.saved(1), ctx.saved(2), need_gi,
                                        need_gh, need_h);
    }
    const Tensor gi_s = kernel_arg(ctx.saved(0)), h_s = kernel_arg(ctx.saved(2));
    const Device dev = gi_s.device();
    // The kernel writes both gate gradients in one pass; the one not needed is dropped.
    Tensor dgi = empty(gi_s.shape(), gi_s.dtype(), dev), dgh = empty(gi_s.shape(), gi_s.dtype(), dev);
    Tensor dh_prev = need_h ? empty(h_s.shape(), h_s.dtype(), dev) : Tensor();
    kernels::gru_cell_backward.get(dev)(kernel_arg(ctx.grad()), gi_s, kernel_arg(ctx.saved(1)), h_s, dgi, dgh,
                                        dh_prev);
    return std::vector<Tensor>{need_gi ? dgi : Tensor(), need_gh ? dgh : Tensor(), dh_prev};
  });
  return h_new;
}

}  // namespace lockstep
