// Batch norm, layer norm and instance norm on the norm kernels, with their gradients and input validation.
#include "src/ops/norm.h"

#include <utility>
#include <vector>

#include "src/autograd/grad_mode.h"
#include "src/autograd/node.h"
#include "src/ops/activation.h"
#include "src/ops/elementwise.h"
#include "src/ops/kernels.h"
#include "src/ops/reduce.h"
#include "src/ops/unary.h"
#include "src/tensor/factories.h"

namespace lockstep {
namespace {

// A detached contiguous tensor with t's elements viewed as `shape` (for kernels); undefined stays undefined.
Tensor kernel_view(const Tensor& t, const Shape& shape) {
  if (!t.defined()) return t;
  const Tensor c = t.detach().contiguous();
  return make_view(c, shape, contiguous_strides(shape), c.offset());
}

// The geometry [N, C, L] of a batch-norm input [N, C, *] after checking it; L is the product of the trailing
// dims.
struct Ncl {
  std::int64_t n, c, l;
  Shape shape() const { return {n, c, l}; }
};

Ncl check_batch_input(const char* op, const char* what, const Tensor& x) {
  LOCKSTEP_CHECK(x.dim() >= 2, ValueError, op, ": expected ", what,
                 " of shape [N, C, *] (at least 2 dimensions), but got ", shape_str(x.shape()));
  LOCKSTEP_CHECK(is_floating(x.dtype()), TypeError, op, ": expected a floating ", what, ", but got ",
                 dtype_name(x.dtype()), " ", shape_str(x.shape()));
  const Shape tail(x.shape().begin() + 2, x.shape().end());
  return {x.size(0), x.size(1), numel_of(tail)};
}

enum class Required : bool { kNo = false, kYes = true };

// A per-channel tensor: [C] with the dtype of x (or undefined when not required).
void check_channel_tensor(const char* op, const char* what, const Tensor& t, const Tensor& x,
                          Required required) {
  if (!t.defined()) {
    LOCKSTEP_CHECK(required == Required::kNo, ValueError, op, ": expected a defined ", what, " of shape [",
                   x.size(1), "] for input ", shape_str(x.shape()), ", but got an undefined tensor");
    return;
  }
  LOCKSTEP_CHECK(t.shape() == Shape{x.size(1)}, ValueError, op, ": expected ", what, " of shape [", x.size(1),
                 "] (the channels of input ", shape_str(x.shape()), "), but got ", shape_str(t.shape()));
  LOCKSTEP_CHECK(t.dtype() == x.dtype(), TypeError, op, ": expected ", what, " of dtype ",
                 dtype_name(x.dtype()), " like the input ", shape_str(x.shape()), ", but got ",
                 dtype_name(t.dtype()));
}

void check_same_as_input(const char* op, const char* what, const Tensor& t, const Tensor& x) {
  LOCKSTEP_CHECK(t.shape() == x.shape(), ValueError, op, ": expected ", what, " of the input's shape ",
                 shape_str(x.shape()), ", but got ", shape_str(t.shape()));
  LOCKSTEP_CHECK(t.dtype() == x.dtype(), TypeError, op, ": expected ", what, " of dtype ",
                 dtype_name(x.dtype()), " like the input, but got ", dtype_name(t.dtype()));
}

Tensor invstd_of(const Tensor& var, double eps) {
  NoGradGuard no_grad;
  return 1.0 / sqrt(var.detach() + eps);
}

}  // namespace

BatchNormStatistics batch_norm_statistics(const Tensor& x) { return batch_norm_statistics(x, x.dtype()); }

BatchNormStatistics batch_norm_statistics(const Tensor& x, DType stats_dtype) {
  const char* op = "batch_norm_statistics";
  const Ncl g = check_batch_input(op, "input", x);
  const Device device = common_device(op, {x});
  LOCKSTEP_CHECK(stats_dtype == x.dtype() || (stats_dtype == DType::f64 && device.is_cpu()), TypeError, op,
                 ": expected statistics in the input's dtype ", dtype_name(x.dtype()),
                 " or in f64 on the CPU, but got ", dtype_name(stats_dtype), " on ", device.str());
  BatchNormStatistics s{empty({g.c}, stats_dtype, device), empty({g.c}, stats_dtype, device)};
  kernels::batch_norm_stats.get(device)(kernel_view(x, g.shape()), s.mean, s.var);
  return s;
}

Tensor batch_norm_elemt(const Tensor& x, const Tensor& mean, const Tensor& invstd, const Tensor& weight,
                        const Tensor& bias) {
  const char* op = "batch_norm_elemt";
  const Ncl g = check_batch_input(op, "input", x);
  const Device device = common_device(op, {x, mean, invstd, weight, bias});
  check_channel_tensor(op, "mean", mean, x, Required::kYes);
  check_channel_tensor(op, "invstd", invstd, x, Required::kYes);
  check_channel_tensor(op, "weight", weight, x, Required::kNo);
  check_channel_tensor(op, "bias", bias, x, Required::kNo);
  Tensor y = empty(x.shape(), x.dtype(), device);
  const Shape c{g.c};
  kernels::batch_norm_apply.get(device)(kernel_view(x, g.shape()), kernel_view(mean, c),
                                        kernel_view(invstd, c), kernel_view(weight, c), kernel_view(bias, c),
                                        kernel_view(y, g.shape()));
  return y;
}

BatchNormGradientSums batch_norm_backward_reduce(const Tensor& dy, const Tensor& x, const Tensor& mean) {
  const char* op = "batch_norm_backward_reduce";
  const Ncl g = check_batch_input(op, "input", x);
  const Device device = common_device(op, {dy, x, mean});
  check_same_as_input(op, "dy", dy, x);
  check_channel_tensor(op, "mean", mean, x, Required::kYes);
  BatchNormGradientSums s{empty({g.c}, x.dtype(), device), empty({g.c}, x.dtype(), device)};
  kernels::batch_norm_backward_reduce.get(device)(kernel_view(dy, g.shape()), kernel_view(x, g.shape()),
                                                  kernel_view(mean, {g.c}), s.sum_dy, s.sum_dy_xmu);
  return s;
}

Tensor batch_norm_backward_elemt(const Tensor& dy, const Tensor& x, const Tensor& mean, const Tensor& invstd,
                                 const Tensor& weight, const Tensor& sum_dy, const Tensor& sum_dy_xmu,
                                 double count) {
  const char* op = "batch_norm_backward_elemt";
  const Ncl g = check_batch_input(op, "input", x);
  const Device device = common_device(op, {dy, x, mean, invstd, weight, sum_dy, sum_dy_xmu});
  check_same_as_input(op, "dy", dy, x);
  check_channel_tensor(op, "mean", mean, x, Required::kYes);
  check_channel_tensor(op, "invstd", invstd, x, Required::kYes);
  check_channel_tensor(op, "weight", weight, x, Required::kNo);
  check_channel_tensor(op, "sum_dy", sum_dy, x, Required::kYes);
  check_channel_tensor(op, "sum_dy_xmu", sum_dy_xmu, x, Required::kYes);
  LOCKSTEP_CHECK(count > 0.0, ValueError, op, ": expected a positive count of values per channel, but got ",
                 count);
  Tensor dx = empty(x.shape(), x.dtype(), device);
  const Shape c{g.c};
  kernels::batch_norm_backward_apply.get(device)(
      kernel_view(dy, g.shape()), kernel_view(x, g.shape()), kernel_view(mean, c), kernel_view(invstd, c),
      kernel_view(weight, c), kernel_view(sum_dy, c), kernel_view(sum_dy_xmu, c), count,
      kernel_view(dx, g.shape()));
  return dx;
}

namespace {

// The checks batch_norm and batch_norm_train share; returns the input's geometry.
Ncl check_batch_norm_arguments(const char* op, const Tensor& x, const Tensor& weight, const Tensor& bias,
                               const Tensor& running_mean, const Tensor& running_var) {
  const Ncl g = check_batch_input(op, "input", x);
  common_device(op, {x, weight, bias, running_mean, running_var});
  check_channel_tensor(op, "weight", weight, x, Required::kNo);
  check_channel_tensor(op, "bias", bias, x, Required::kNo);
  check_channel_tensor(op, "running_mean", running_mean, x, Required::kNo);
  check_channel_tensor(op, "running_var", running_var, x, Required::kNo);
  LOCKSTEP_CHECK(running_mean.defined() == running_var.defined(), ValueError, op,
                 ": expected running_mean and running_var both defined or both undefined, but got ",
                 running_mean.defined() ? "only running_mean" : "only running_var");
  return g;
}

// The dimensions batch norm reduces over (all but 1) and the shape [1, C, 1, ...] a [C] tensor broadcasts as.
struct ChannelLayout {
  std::vector<std::int64_t> dims;
  Shape channel_shape;
};

ChannelLayout channel_layout(std::int64_t rank, std::int64_t channels) {
  ChannelLayout layout{{0}, Shape(static_cast<std::size_t>(rank), 1)};
  layout.channel_shape[1] = channels;
  for (std::int64_t d = 2; d < rank; ++d) layout.dims.push_back(d);
  return layout;
}

// The training backward from differentiable ops, recomputing the statistics from x so that they carry x's
// history: with xhat = (x - mean) * invstd over every dimension but 1,
//   dx = weight * invstd * (dy - mean(dy) - xhat * mean(dy * xhat))
//   dweight = sum(dy * xhat),  dbias = sum(dy)
// Used under create_graph, where the result is differentiated again.
std::vector<Tensor> recorded_batch_norm_backward(const Tensor& dy, const Tensor& x, const Tensor& weight,
                                                 double eps, bool need_dx, bool need_dw, bool need_db) {
  const ChannelLayout layout = channel_layout(x.dim(), x.size(1));
  const std::vector<std::int64_t>& dims = layout.dims;
  const Tensor xmu = x - mean(x, dims, KeepDim::kYes);
  const Tensor invstd = 1.0 / sqrt(mean(xmu * xmu, dims, KeepDim::kYes) + eps);
  const Tensor xhat = xmu * invstd;
  Tensor dx, dw, db;
  if (need_dx) {
    const Tensor scale = weight.defined() ? weight.view(layout.channel_shape) * invstd : invstd;
    dx = scale * (dy - mean(dy, dims, KeepDim::kYes) - xhat * mean(dy * xhat, dims, KeepDim::kYes));
  }
  if (need_dw) dw = sum(dy * xhat, dims);
  if (need_db) db = sum(dy, dims);
  return {dx, dw, db};
}

// The layer-norm backward from differentiable ops over the last k dimensions (D), recomputing the
// statistics from x so that they carry x's history: with xhat = (x - mean) * rstd over D and g = dy * weight,
//   dx = rstd * (g - mean(g) - xhat * mean(g * xhat))
//   dweight = sum(dy * xhat),  dbias = sum(dy)   (over the leading dimensions)
// Used under create_graph, where the result is differentiated again.
std::vector<Tensor> recorded_layer_norm_backward(const Tensor& dy, const Tensor& x, const Tensor& weight,
                                                 std::int64_t k, double eps, bool need_dx, bool need_dw,
                                                 bool need_db) {
  std::vector<std::int64_t> norm_dims, lead_dims;
  for (std::int64_t d = 0; d < x.dim(); ++d) (d < x.dim() - k ? lead_dims : norm_dims).push_back(d);
  const Tensor xmu = x - mean(x, norm_dims, KeepDim::kYes);
  const Tensor rstd = 1.0 / sqrt(mean(xmu * xmu, norm_dims, KeepDim::kYes) + eps);
  const Tensor xhat = xmu * rstd;
  Tensor dx, dw, db;
  if (need_dx) {
    const Tensor g = weight.defined() ? dy * weight : dy;
    dx = rstd * (g - mean(g, norm_dims, KeepDim::kYes) - xhat * mean(g * xhat, norm_dims, KeepDim::kYes));
  }
  // Summing over no dimensions would reduce all of them: an x of normalized_shape alone has no leading ones.
  const auto over_rows = [&lead_dims](const Tensor& t) { return lead_dims.empty() ? t : sum(t, lead_dims); };
  if (need_dw) dw = over_rows(dy * xhat);
  if (need_db) db = over_rows(dy);
  return {dx, dw, db};
}

// This process's batch: the fused statistics kernel in x's dtype.
class LocalBatchNormStatistics final : public BatchNormStatisticsSource {
 public:
  BatchNormBatchStatistics statistics(const Tensor& x, const std::string& caller) override {
    const std::int64_t per_channel = x.size(1) > 0 ? x.numel() / x.size(1) : 0;
    LOCKSTEP_CHECK(per_channel > 1, ValueError, caller,
                   ": expected more than 1 value per channel when training, but got input ",
                   shape_str(x.shape()), " (", per_channel,
                   " per channel). Use a larger batch or BatchNormMode::kEval");
    BatchNormStatistics s = batch_norm_statistics(x);
    return {std::move(s.mean), std::move(s.var), static_cast<double>(per_channel)};
  }
  BatchNormGradientSums gradient_sums(const BatchNormGradientSums& local) override { return local; }
  bool spans_processes() const override { return false; }
  const char* name() const override { return "local"; }
};

}  // namespace

BatchNormStatisticsSource::BackwardSums BatchNormStatisticsSource::backward_sums(
    const Tensor& dy, const Tensor& x, const Tensor& mean, const Tensor& invstd, bool need_dx, bool need_dw,
    bool need_db) {
  const BatchNormGradientSums local = batch_norm_backward_reduce(dy, x, mean);
  BackwardSums sums;
  if (need_dx) sums.all = gradient_sums(local);
  if (need_dw) sums.dweight = local.sum_dy_xmu * invstd;
  if (need_db) sums.dbias = local.sum_dy;
  return sums;
}

const std::shared_ptr<BatchNormStatisticsSource>& local_batch_norm_statistics() {
  static const std::shared_ptr<BatchNormStatisticsSource> local =
      std::make_shared<LocalBatchNormStatistics>();
  return local;
}

Tensor batch_norm_train(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& running_mean,
                        const Tensor& running_var, double momentum, double eps,
                        const std::shared_ptr<BatchNormStatisticsSource>& source, const std::string& caller,
                        const BatchNormEpilogue& epilogue) {
  const char* op = "batch_norm";
  check_batch_norm_arguments(op, x, weight, bias, running_mean, running_var);
  const Tensor& residual = epilogue.residual;
  if (residual.defined()) {
    check_same_as_input(op, "residual", residual, x);
    common_device(op, {x, residual});
  }
  const bool fused = residual.defined() || epilogue.relu;
  if (fused && !x.device().is_cpu()) {  // the fused epilogue is the CPU kernel's; elsewhere the separate ops
    Tensor y = batch_norm_train(x, weight, bias, running_mean, running_var, momentum, eps, source, caller);
    if (residual.defined()) y = y + residual;
    return epilogue.relu ? relu(y) : y;
  }
  const std::shared_ptr<BatchNormStatisticsSource> from = source ? source : local_batch_norm_statistics();
  const BatchNormBatchStatistics stats = from->statistics(x, caller);
  const double count = stats.count;
  LOCKSTEP_CHECK(count > 1.0, ValueError, caller,
                 ": expected statistics over more than 1 value per channel when training, but the ",
                 from->name(), " source gave ", count, " for input ", shape_str(x.shape()));
  // The inverse standard deviation in the statistics' precision (f64 for a source spanning processes), then
  // everything in x's dtype.
  const Tensor invstd = invstd_of(stats.var, eps).to(x.dtype());
  const Tensor mean = stats.mean.to(x.dtype());
  if (running_mean.defined()) {
    // The one running-statistics update of every batch-norm training path.
    NoGradGuard no_grad;
    const Tensor var = stats.var.to(x.dtype());
    Tensor rm = running_mean, rv = running_var;  // handles to the same storage
    rm.mul_(1.0 - momentum).add_(mean, momentum);
    rv.mul_(1.0 - momentum).add_(var, momentum * count / (count - 1.0));
  }
  const bool relu_after = epilogue.relu;
  Tensor z;
  if (fused) {
    const Ncl g = check_batch_input(op, "input", x);
    const Shape c{g.c};
    z = empty(x.shape(), x.dtype(), x.device());
    kernels::batch_norm_apply_epilogue.get(x.device())(
        kernel_view(x, g.shape()), kernel_view(mean, c), kernel_view(invstd, c), kernel_view(weight, c),
        kernel_view(bias, c), residual.defined() ? kernel_view(residual, g.shape()) : Tensor(), relu_after,
        kernel_view(z, g.shape()));
  } else {
    z = batch_norm_elemt(x, mean, invstd, weight, bias);
  }
  record(op, {x, weight, bias, residual}, {z}, {x, weight, mean, invstd, relu_after ? z : Tensor()},
         [from, count, eps](BackwardContext& ctx) {
           // dz [N,C,*], x [N,C,*], weight/mean/invstd [C] -> dx [N,C,*], dweight [C], dbias [C], dresidual
           // [N,C,*]; dy = dz through the relu (its mask from the saved output z), also the residual's
           // gradient.
           const Tensor dy = ctx.saved(4).defined()
                                 ? piecewise_linear_backward(UnaryOp::kRelu, ctx.grad(), ctx.saved(4))
                                 : ctx.grad();
           const Tensor dresidual = ctx.needs_input_grad(3) ? dy : Tensor();
           const bool need_dx = ctx.needs_input_grad(0), need_dw = ctx.needs_input_grad(1),
                      need_db = ctx.needs_input_grad(2);
           if (GradMode::is_enabled()) {
             // create_graph: the gradient is to be differentiated again.
             LOCKSTEP_CHECK(
                 !from->spans_processes(), AutogradError,
                 "batch_norm backward: expected a batch norm whose statistics are this process's batch "
                 "when recording the backward (create_graph), but got the ",
                 from->name(),
                 " statistics source. Use plain BatchNorm for second derivatives (e.g. gradient penalties)");
             std::vector<Tensor> grads =
                 recorded_batch_norm_backward(dy, ctx.saved(0), ctx.saved(1), eps, need_dx, need_dw, need_db);
             grads.push_back(dresidual);
             return grads;
           }
           const Tensor xs = ctx.saved(0), w = ctx.saved(1), m = ctx.saved(2), is = ctx.saved(3);
           // For a source spanning processes the sums for dx are a collective. They are skipped only when the
           // input needs no gradient, which is so on every rank alike (their graphs are the same). The
           // parameter gradients stay local: the reducer's average over ranks then makes them the union
           // batch's gradients.
           if (!need_dx && !need_dw && !need_db) return std::vector<Tensor>{{}, {}, {}, dresidual};
           const BatchNormStatisticsSource::BackwardSums sums =
               from->backward_sums(dy, xs, m, is, need_dx, need_dw, need_db);
           Tensor dx;
           if (need_dx)
             dx = batch_norm_backward_elemt(dy, xs, m, is, w, sums.all.sum_dy, sums.all.sum_dy_xmu, count);
           return std::vector<Tensor>{dx, sums.dweight, sums.dbias, dresidual};
         });
  return z;
}

Tensor batch_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& running_mean,
                  const Tensor& running_var, BatchNormMode mode, double momentum, double eps) {
  const char* op = "batch_norm";
  if (mode == BatchNormMode::kTrain) {
    return batch_norm_train(x, weight, bias, running_mean, running_var, momentum, eps,
                            local_batch_norm_statistics(), op);
  }
  const Ncl g = check_batch_norm_arguments(op, x, weight, bias, running_mean, running_var);
  LOCKSTEP_CHECK(running_mean.defined(), ValueError, op,
                 ": expected running_mean and running_var in eval mode, but got undefined ones for input ",
                 shape_str(x.shape()), ". Track running statistics or use BatchNormMode::kTrain");
  // A copy: later training steps update the running statistics in place.
  const Tensor mean = running_mean.detach().clone();
  const Tensor invstd = invstd_of(running_var, eps);
  Tensor y = batch_norm_elemt(x, mean, invstd, weight, bias);
  const ChannelLayout layout = channel_layout(x.dim(), g.c);
  const bool keep_x = weight.defined() && weight.requires_grad();
  record(op, {x, weight, bias}, {y}, {keep_x ? x : Tensor(), weight, mean, invstd},
         [layout](BackwardContext& ctx) {
           // dy [N,C,*], x [N,C,*], weight/mean/invstd [C] -> dx [N,C,*], dweight [C], dbias [C]
           const Tensor& dy = ctx.grad();
           const Tensor w = ctx.saved(1), is = ctx.saved(3);
           const Shape& channel_shape = layout.channel_shape;
           Tensor dx, dw, db;
           if (ctx.needs_input_grad(0)) dx = dy * (w.defined() ? w * is : is).view(channel_shape);
           if (ctx.needs_input_grad(1))
             dw = sum(dy * (ctx.saved(0) - ctx.saved(2).view(channel_shape)), layout.dims) * is;
           if (ctx.needs_input_grad(2)) db = sum(dy, layout.dims);
           return std::vector<Tensor>{dx, dw, db};
         });
  return y;
}

Tensor layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight, const Tensor& bias,
                  double eps) {
  const char* op = "layer_norm";
  const std::int64_t k = static_cast<std::int64_t>(normalized_shape.size());
  const bool matches =
      k >= 1 && k <= x.dim() && Shape(x.shape().end() - k, x.shape().end()) == normalized_shape;
  LOCKSTEP_CHECK(matches, ValueError, op, ": expected input whose last dimensions are normalized_shape ",
                 shape_str(normalized_shape), ", but got input ", shape_str(x.shape()));
  LOCKSTEP_CHECK(is_floating(x.dtype()), TypeError, op, ": expected a floating input, but got ",
                 dtype_name(x.dtype()), " ", shape_str(x.shape()));
  const Device device = common_device(op, {x, weight, bias});
  for (const auto& [what, t] : {std::pair{"weight", weight}, std::pair{"bias", bias}}) {
    if (!t.defined()) continue;
    LOCKSTEP_CHECK(t.shape() == normalized_shape, ValueError, op, ": expected ", what,
                   " of normalized_shape ", shape_str(normalized_shape), ", but got ", shape_str(t.shape()));
    LOCKSTEP_CHECK(t.dtype() == x.dtype(), TypeError, op, ": expected ", what, " of dtype ",
                   dtype_name(x.dtype()), " like the input, but got ", dtype_name(t.dtype()));
  }
  const std::int64_t cols = numel_of(normalized_shape);
  const std::int64_t rows = numel_of(Shape(x.shape().begin(), x.shape().end() - k));
  const Shape matrix{rows, cols}, vec{cols};
  Tensor y = empty(x.shape(), x.dtype(), device);
  Tensor row_mean = empty({rows}, x.dtype(), device), rstd = empty({rows}, x.dtype(), device);
  kernels::layer_norm.get(device)(kernel_view(x, matrix), kernel_view(weight, vec), kernel_view(bias, vec),
                                  eps, kernel_view(y, matrix), row_mean, rstd);
  const Shape x_shape = x.shape();
  record(op, {x, weight, bias}, {y}, {x, weight, row_mean, rstd},
         [x_shape, normalized_shape, matrix, vec, k, eps](BackwardContext& ctx) {
           // dy [*, D], x [*, D], weight [D], mean/rstd [*] -> dx [*, D], dweight [D], dbias [D]   (D =
           // normalized_shape)
           const Tensor& dy = ctx.grad();
           const bool need_dx = ctx.needs_input_grad(0), need_dw = ctx.needs_input_grad(1),
                      need_db = ctx.needs_input_grad(2);
           if (GradMode::is_enabled()) {
             // create_graph: the gradient is to be differentiated again.
             return recorded_layer_norm_backward(dy, ctx.saved(0), ctx.saved(1), k, eps, need_dx, need_dw,
                                                 need_db);
           }
           const Device dev = dy.device();
           Tensor dx, dw, db;
           if (need_dx) dx = empty(x_shape, dy.dtype(), dev);
           if (need_dw) dw = empty(normalized_shape, dy.dtype(), dev);
           if (need_db) db = empty(normalized_shape, dy.dtype(), dev);
           kernels::layer_norm_backward.get(dev)(kernel_view(dy, matrix), kernel_view(ctx.saved(0), matrix),
                                                 ctx.saved(2), ctx.saved(3), kernel_view(ctx.saved(1), vec),
                                                 kernel_view(dx, matrix), kernel_view(dw, vec),
                                                 kernel_view(db, vec));
           return std::vector<Tensor>{dx, dw, db};
         });
  return y;
}

namespace {

// The instance-norm backward from differentiable ops, recomputing the statistics from x so that they carry
// x's history: with xhat = (x - mean) * rstd over the spatial dimensions S of each (n, c) and
// g = dy * weight[c],
//   dx = rstd * (g - mean_S(g) - xhat * mean_S(g * xhat))
//   dweight = sum(dy * xhat),  dbias = sum(dy)   (over N and S)
// Used under create_graph, where the result is differentiated again.
std::vector<Tensor> recorded_instance_norm_backward(const Tensor& dy, const Tensor& x, const Tensor& weight,
                                                    double eps, bool need_dx, bool need_dw, bool need_db) {
  const ChannelLayout layout = channel_layout(x.dim(), x.size(1));
  const std::vector<std::int64_t> spatial(layout.dims.begin() + 1, layout.dims.end());
  const Tensor xmu = x - mean(x, spatial, KeepDim::kYes);
  const Tensor rstd = 1.0 / sqrt(mean(xmu * xmu, spatial, KeepDim::kYes) + eps);
  const Tensor xhat = xmu * rstd;
  Tensor dx, dw, db;
  if (need_dx) {
    const Tensor g = weight.defined() ? dy * weight.view(layout.channel_shape) : dy;
    dx = rstd * (g - mean(g, spatial, KeepDim::kYes) - xhat * mean(g * xhat, spatial, KeepDim::kYes));
  }
  if (need_dw) dw = sum(dy * xhat, layout.dims);
  if (need_db) db = sum(dy, layout.dims);
  return {dx, dw, db};
}

}  // namespace

Tensor instance_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps) {
  const char* op = "instance_norm";
  const Ncl g = check_batch_input(op, "input", x);
  const Device device = common_device(op, {x, weight, bias});
  check_channel_tensor(op, "weight", weight, x, Required::kNo);
  check_channel_tensor(op, "bias", bias, x, Required::kNo);
  LOCKSTEP_CHECK(x.dim() >= 3 && g.l > 1, ValueError, op,
                 ": expected input [N, C, *] with more than 1 spatial value per channel, but got ",
                 shape_str(x.shape()), ". Instance norm of a single value is always 0");
  LOCKSTEP_CHECK(eps >= 0.0, ValueError, op, ": expected a non-negative eps, but got ", eps);
  // Each (n, c) is one row of a [N * C, L] matrix: the layer-norm kernel normalises it without affine, and
  // the per-channel affine (when any) is batch-norm's apply kernel with mean 0 and invstd 1.
  const Shape matrix{g.n * g.c, g.l};
  const Shape rows{g.n * g.c};
  Tensor xhat = empty(x.shape(), x.dtype(), device);
  Tensor row_mean = empty(rows, x.dtype(), device), rstd = empty(rows, x.dtype(), device);
  kernels::layer_norm.get(device)(kernel_view(x, matrix), Tensor(), Tensor(), eps, kernel_view(xhat, matrix),
                                  row_mean, rstd);
  const bool affine = weight.defined() || bias.defined();
  Tensor y = xhat;
  if (affine) {
    y = empty(x.shape(), x.dtype(), device);
    const Shape c{g.c};
    kernels::batch_norm_apply.get(device)(kernel_view(xhat, g.shape()), zeros(c, x.dtype(), device),
                                          ones(c, x.dtype(), device), kernel_view(weight, c),
                                          kernel_view(bias, c), kernel_view(y, g.shape()));
  }
  const bool keep_xhat = weight.defined() && weight.requires_grad();
  const ChannelLayout layout = channel_layout(x.dim(), g.c);
  const Shape x_shape = x.shape();
  record(op, {x, weight, bias}, {y}, {x, weight, row_mean, rstd, keep_xhat ? xhat : Tensor()},
         [x_shape, matrix, layout, eps](BackwardContext& ctx) {
           // dy [N,C,*], x [N,C,*], weight [C], mean/rstd [N*C], xhat [N,C,*] -> dx [N,C,*], dweight [C],
           // dbias [C]
           const Tensor& dy = ctx.grad();
           const bool need_dx = ctx.needs_input_grad(0), need_dw = ctx.needs_input_grad(1),
                      need_db = ctx.needs_input_grad(2);
           const Tensor& w = ctx.saved(1);
           if (GradMode::is_enabled()) {
             // create_graph: the gradient is to be differentiated again.
             return recorded_instance_norm_backward(dy, ctx.saved(0), w, eps, need_dx, need_dw, need_db);
           }
           Tensor dx, dw, db;
           if (need_dx) {
             // The layer-norm backward of each row, on dy scaled by its channel's weight.
             const Tensor gy = w.defined() ? dy * w.view(layout.channel_shape) : dy;
             dx = empty(x_shape, dy.dtype(), dy.device());
             kernels::layer_norm_backward.get(dy.device())(
                 kernel_view(gy, matrix), kernel_view(ctx.saved(0), matrix), ctx.saved(2), ctx.saved(3),
                 Tensor(), kernel_view(dx, matrix), Tensor(), Tensor());
           }
           if (need_dw) dw = sum(dy * ctx.saved(4), layout.dims);
           if (need_db) db = sum(dy, layout.dims);
           return std::vector<Tensor>{dx, dw, db};
         });
  return y;
}

}  // namespace lockstep
