// Matrix products on the gemm kernel: operands go in as dense [batch, rows, cols] blocks, transposed blocks
// are passed with a Transpose flag instead of being copied, and a single right-hand matrix folds the batch.
#include "src/ops/linalg.h"

#include <algorithm>
#include <utility>

#include "src/autograd/grad_mode.h"
#include "src/autograd/node.h"
#include "src/ops/kernels.h"
#include "src/ops/micro_shards.h"
#include "src/ops/reduce.h"

namespace lockstep {
namespace {

// A gemm operand: a contiguous [batch, rows, cols] view (batch 1 or the full batch), transposed when `trans`.
struct GemmOperand {
  Tensor t;
  Transpose trans = Transpose::kNo;
};

Shape batch_of(const Tensor& t) { return Shape(t.shape().begin(), t.shape().end() - 2); }

Tensor dense_view(const Tensor& t, const Shape& shape) {
  return make_view(t, shape, contiguous_strides(shape), t.offset());
}

// x [batch_x..., R, C] as an operand of a product with output batch `batch` (batch_x broadcasts to it).
// Copies only when x is broadcast along part of the batch or is neither a dense block nor a transposed one.
GemmOperand as_operand(const Tensor& x, const Shape& batch) {
  const std::int64_t r = x.size(-2), c = x.size(-1);
  const std::int64_t count = numel_of(batch_of(x)), full = numel_of(batch);
  Tensor src = x;
  if (count != 1 && count != full) {
    Shape target = batch;
    target.push_back(r);
    target.push_back(c);
    src = broadcast_view(x, target).contiguous();
  }
  const std::int64_t n = count == 1 ? 1 : full;
  if (src.is_contiguous()) return {dense_view(src, {n, r, c}), Transpose::kNo};
  Shape swapped_shape = src.shape(), swapped_strides = src.strides();
  std::swap(swapped_shape[swapped_shape.size() - 1], swapped_shape[swapped_shape.size() - 2]);
  std::swap(swapped_strides[swapped_strides.size() - 1], swapped_strides[swapped_strides.size() - 2]);
  if (make_view(src, swapped_shape, swapped_strides, src.offset()).is_contiguous()) {
    return {dense_view(src, {n, c, r}), Transpose::kYes};
  }
  return {dense_view(src.contiguous(), {n, r, c}), Transpose::kNo};
}

bool broadcastable(const Shape& a, const Shape& b) {
  for (std::size_t i = 1; i <= std::min(a.size(), b.size()); ++i) {
    const std::int64_t x = a[a.size() - i], y = b[b.size() - i];
    if (x != y && x != 1 && y != 1) return false;
  }
  return true;
}

void check_operands(const char* op, const Tensor& a, const Tensor& b) {
  LOCKSTEP_CHECK(is_floating(a.dtype()) && a.dtype() == b.dtype(), TypeError, op,
                 ": expected floating tensors of one dtype, but got ", dtype_name(a.dtype()), " ",
                 shape_str(a.shape()), " and ", dtype_name(b.dtype()), " ", shape_str(b.shape()),
                 ". Convert one with .to(dtype)");
}

// out [batch..., M, N] = alpha * a [..., M, K] @ b [..., K, N]; no autograd.
void gemm_into(const Tensor& a, const Tensor& b, const Shape& batch, const Tensor& out, double alpha = 1.0) {
  if (out.numel() == 0) return;
  const Device device = out.device();
  const std::int64_t count = numel_of(batch), m = a.size(-2), k = a.size(-1), n = b.size(-1);
  if (k == 0) {
    kernels::fill.get(device)(out, 0.0);
    return;
  }
  NoGradGuard no_grad;
  if (count > 1 && numel_of(batch_of(b)) == 1 && a.is_contiguous()) {
    // One right-hand matrix and a dense left-hand batch: fold the batch into the rows, one large GEMM.
    const GemmOperand ob = as_operand(b, {});
    kernels::gemm.get(device)(dense_view(a, {1, count * m, k}), ob.t, dense_view(out, {1, count * m, n}),
                              Transpose::kNo, ob.trans, alpha, 0.0);
    return;
  }
  const GemmOperand oa = as_operand(a, batch), ob = as_operand(b, batch);
  kernels::gemm.get(device)(oa.t, ob.t, dense_view(out, {count, m, n}), oa.trans, ob.trans, alpha, 0.0);
}

// a [..., M, K] @ b [..., K, N] for operands of at least two dimensions, already validated.
Tensor matmul_nd(const Tensor& a, const Tensor& b) {
  const Shape batch = broadcast_shapes("matmul", batch_of(a), batch_of(b));
  Shape out_shape = batch;
  out_shape.push_back(a.size(-2));
  out_shape.push_back(b.size(-1));
  Tensor out = empty(out_shape, a.dtype(), a.device());
  gemm_into(a, b, batch, out);
  record("matmul", {a, b}, {out}, {a, b}, [](BackwardContext& ctx) {
    // a [..., M, K], b [..., K, N], g [batch..., M, N] -> da [..., M, K], db [..., K, N]
    const Tensor& g = ctx.grad();
    const Tensor a = ctx.saved(0), b = ctx.saved(1);
    Tensor da, db;
    if (ctx.needs_input_grad(0)) da = sum_to(matmul_nd(g, b.transpose(-2, -1)), a.shape());
    if (ctx.needs_input_grad(1)) {
      if (numel_of(batch_of(b)) == 1 && a.dim() > 2) {
        // One right-hand matrix: db = a^T [K, batch * M] @ g [batch * M, N], one GEMM instead of a batch and
        // a sum.
        const std::int64_t k = a.size(-1), n = g.size(-1);
        db = matmul_nd(a.reshape({-1, k}).transpose(0, 1), g.reshape({-1, n})).reshape(b.shape());
      } else {
        db = sum_to(matmul_nd(a.transpose(-2, -1), g), b.shape());
      }
    }
    return std::vector<Tensor>{da, db};
  });
  return out;
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) {
  common_device("matmul", {a, b});
  check_operands("matmul", a, b);
  LOCKSTEP_CHECK(a.dim() >= 1 && b.dim() >= 1, ValueError,
                 "matmul: expected tensors with at least one dimension, but got shapes ",
                 shape_str(a.shape()), " and ", shape_str(b.shape()));
  const std::int64_t ka = a.size(-1), kb = b.dim() == 1 ? b.size(0) : b.size(-2);
  LOCKSTEP_CHECK(ka == kb, ValueError, "matmul: expected the last dimension of the first operand (", ka,
                 ") to match the ", b.dim() == 1 ? "size" : "second-to-last dimension", " of the second (",
                 kb, "), but got shapes ", shape_str(a.shape()), " and ", shape_str(b.shape()));
  const Tensor a2 = a.dim() == 1 ? a.unsqueeze(0) : a, b2 = b.dim() == 1 ? b.unsqueeze(1) : b;
  LOCKSTEP_CHECK(broadcastable(batch_of(a2), batch_of(b2)), ValueError,
                 "matmul: expected batch dimensions that broadcast, but got shapes ", shape_str(a.shape()),
                 " and ", shape_str(b.shape()));
  const Tensor out = matmul_nd(a2, b2);
  if (a.dim() == 1 && b.dim() == 1) return out.reshape({});
  if (a.dim() == 1) return out.squeeze(-2);
  if (b.dim() == 1) return out.squeeze(-1);
  return out;
}

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  const Device device = common_device("linear", {x, weight, bias});
  check_operands("linear", x, weight);
  LOCKSTEP_CHECK(weight.dim() == 2, ValueError, "linear: expected a 2-D weight [out, in], but got ",
                 shape_str(weight.shape()));
  const std::int64_t in = weight.size(1), out_features = weight.size(0);
  LOCKSTEP_CHECK(x.dim() >= 1 && x.size(-1) == in, ValueError, "linear: expected an input [..., ", in,
                 "] to match the weight ", shape_str(weight.shape()), ", but got ", shape_str(x.shape()));
  if (bias.defined()) {
    check_operands("linear", x, bias);
    LOCKSTEP_CHECK(bias.dim() == 1 && bias.size(0) == out_features, ValueError,
                   "linear: expected a bias of shape [", out_features, "] for the weight ",
                   shape_str(weight.shape()), ", but got ", shape_str(bias.shape()));
  }
  const std::int64_t rows = numel_of(Shape(x.shape().begin(), x.shape().end() - 1));
  Shape out_shape = x.shape();
  out_shape.back() = out_features;
  Tensor out = empty(out_shape, x.dtype(), device);
  // Deterministic mode: a batch's rows are multiplied micro-shard by micro-shard (the same GEMM shapes at any
  // world size) and the weight gradients summed over micro-shards in the fixed tree.
  const std::int64_t shards = micro_shard_count(x);
  if (out.numel() > 0) {
    NoGradGuard no_grad;
    const Tensor x2 = x.dim() == 2 ? x : dense_view(x.contiguous(), {rows, in});
    const Tensor y2 = dense_view(out, {rows, out_features});
    const auto forward_rows = [&](const Tensor& xr, const Tensor& yr) {
      const std::int64_t n = xr.size(0);
      const Tensor y = dense_view(yr, {1, n, out_features});
      if (bias.defined()) kernels::copy.get(device)(broadcast_view(bias, {1, n, out_features}), y);
      if (in == 0) {
        if (!bias.defined()) kernels::fill.get(device)(y, 0.0);
        return;
      }
      // x [n, in] @ (weight [out, in])^T, with y already holding the bias when there is one (beta = 1).
      const GemmOperand ox = as_operand(xr, {});
      const GemmOperand ow = as_operand(
          make_view(weight, {in, out_features}, {weight.stride(1), weight.stride(0)}, weight.offset()), {});
      kernels::gemm.get(device)(ox.t, ow.t, y, ox.trans, ow.trans, 1.0, bias.defined() ? 1.0 : 0.0);
    };
    if (shards == 0) {
      forward_rows(x2, y2);
    } else {
      for (std::int64_t k = 0; k < shards; ++k)
        forward_rows(micro_shard(x2, k, shards), micro_shard(y2, k, shards));
    }
  }
  const Shape x_shape = x.shape();
  record("linear", {x, weight, bias}, {out}, {x, weight},
         [x_shape, rows, in, out_features, shards](BackwardContext& ctx) {
           // x [..., in], w [out, in], g [..., out] -> dx [..., in], dw [out, in], db [out]
           const Tensor g = ctx.grad().reshape({rows, out_features});
           const Tensor x2 = ctx.saved(0).reshape({rows, in});
           Tensor dx, dw, db;
           if (shards == 0 || GradMode::is_enabled()) {
             if (ctx.needs_input_grad(0)) dx = matmul(g, ctx.saved(1)).reshape(x_shape);
             if (const GradientHome* home = ctx.home(1)) {
               // Straight into the reducer's bucket slot, the average's factor as the GEMM's alpha.
               gemm_into(g.transpose(0, 1), x2, {}, home->view, home->scale);
               dw = home->view;
             } else if (ctx.needs_input_grad(1)) {
               dw = matmul(g.transpose(0, 1), x2);
             }
             if (ctx.needs_input_grad(2)) db = sum(g, {0});
             return std::vector<Tensor>{dx, dw, db};
           }
           if (ctx.needs_input_grad(0)) {
             dx = empty({rows, in}, g.dtype(), g.device());
             for (std::int64_t k = 0; k < shards; ++k)
               micro_shard(dx, k, shards).copy_(matmul(micro_shard(g, k, shards), ctx.saved(1)));
             dx = dx.reshape(x_shape);
           }
           std::vector<Tensor> dws(static_cast<std::size_t>(shards)), dbs(static_cast<std::size_t>(shards));
           for_each_micro_shard(shards, [&](std::int64_t k) {
             const Tensor gk = micro_shard(g, k, shards);
             const auto i = static_cast<std::size_t>(k);
             if (ctx.needs_input_grad(1)) dws[i] = matmul(gk.transpose(0, 1), micro_shard(x2, k, shards));
             if (ctx.needs_input_grad(2)) dbs[i] = sum(gk, {0});
           });
           if (ctx.needs_input_grad(1)) dw = tree_sum(std::move(dws));
           if (ctx.needs_input_grad(2)) db = tree_sum(std::move(dbs));
           return std::vector<Tensor>{dx, dw, db};
         });
  return out;
}

}  // namespace lockstep
