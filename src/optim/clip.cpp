// Gradient and parameter clipping: a deterministic blocked f64 sum of squares, then in-place
// scaling/clamping.
#include "src/optim/clip.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "src/autograd/grad_mode.h"
#include "src/core/threading.h"
#include "src/ops/elementwise.h"
#include "src/ops/reduce.h"
#include "src/tensor/factories.h"

namespace lockstep::optim {
namespace {

// Elements per block of the sum of squares; blocks are summed in order, whatever the thread count.
constexpr std::int64_t kBlock = 16384;
constexpr int kLanes = 8;  // independent accumulators per block, so the inner loop vectorises

template <class T>
double sum_squares(const T* x, std::int64_t n) {
  const std::int64_t blocks = (n + kBlock - 1) / kBlock;
  std::vector<double> partial(static_cast<std::size_t>(blocks));
#pragma omp parallel for schedule(static) if (n >= kParallelGrain)
  for (std::int64_t b = 0; b < blocks; ++b) {
    const std::int64_t begin = b * kBlock, end = std::min(n, begin + kBlock);
    double acc[kLanes] = {};
    std::int64_t i = begin;
    for (; i + kLanes <= end; i += kLanes) {
      for (int l = 0; l < kLanes; ++l) {
        const double v = static_cast<double>(x[i + l]);
        acc[l] += v * v;
      }
    }
    for (; i < end; ++i) {
      const double v = static_cast<double>(x[i]);
      acc[0] += v * v;
    }
    double s = 0.0;
    for (double a : acc) s += a;
    partial[static_cast<std::size_t>(b)] = s;
  }
  double total = 0.0;
  for (double p : partial) total += p;
  return total;
}

void check_bound(const char* where, const char* name, double value) {
  LOCKSTEP_CHECK(value >= 0.0, ValueError, where, ": expected ", name, " >= 0, but got ", name, "=", value);
}

// The defined gradients of `params`; ValueError for an undefined parameter.
std::vector<Tensor> gradients(const char* where, const std::vector<Tensor>& params) {
  std::vector<Tensor> grads;
  for (std::size_t i = 0; i < params.size(); ++i) {
    LOCKSTEP_CHECK(params[i].defined(), ValueError, where, ": expected defined parameters, but parameter ", i,
                   " is undefined");
    Tensor g = params[i].grad();
    if (g.defined()) grads.push_back(g);
  }
  return grads;
}

// clip_grad_norm_ on a GPU: the same formula in tensor ops, nothing read back (a step must not wait for its
// device). The f64 sum of squares is the reduction kernel's, in its order.
Tensor clip_on_device(std::vector<Tensor>& grads, double max_norm) {
  const Device device = grads.front().device();
  NoGradGuard no_grad;
  Tensor squares = zeros({}, DType::f64, device);
  for (const Tensor& g : grads) {
    LOCKSTEP_CHECK(g.device() == device, ValueError, "clip_grad_norm_: expected every gradient on ",
                   device.str(), ", but got one on ", g.device().str());
    squares = squares + sum(square(g.to(DType::f64)));
  }
  const Tensor norm = sqrt(squares);
  const Tensor one = full_like(norm, 1.0);
  // Below 1 it scales; a norm that is not finite (not below infinity: inf or NaN) leaves the gradients.
  const Tensor coef = where(lt(norm, full_like(norm, std::numeric_limits<double>::infinity())),
                            minimum(max_norm / (norm + 1e-6), one), one);
  for (Tensor& g : grads) g.mul_(coef.to(g.dtype()));
  return norm;
}

}  // namespace

Tensor clip_grad_norm_(const std::vector<Tensor>& params, double max_norm) {
  check_bound("clip_grad_norm_", "max_norm", max_norm);
  std::vector<Tensor> grads = gradients("clip_grad_norm_", params);
  if (!grads.empty() && !grads.front().device().is_cpu()) return clip_on_device(grads, max_norm);
  for (const Tensor& g : grads) {
    LOCKSTEP_CHECK(g.device().is_cpu(), ValueError,
                   "clip_grad_norm_: expected every gradient on the cpu, but got ", dtype_name(g.dtype()),
                   " ", shape_str(g.shape()), " on ", g.device().str());
  }
  double squares = 0.0;
  for (const Tensor& g : grads) {
    const Tensor c = g.is_contiguous() ? g : g.contiguous();
    squares += dispatch_floating("clip_grad_norm_", c.dtype(), [&](auto tag) {
      using T = decltype(tag);
      return sum_squares(c.data<T>(), c.numel());
    });
  }
  const double norm = std::sqrt(squares);
  const double coef = max_norm / (norm + 1e-6);
  if (std::isfinite(norm) && coef < 1.0) {
    NoGradGuard no_grad;
    for (Tensor& g : grads) g.mul_(coef);
  }
  return scalar_tensor(norm, DType::f64);
}

void clip_grad_value_(const std::vector<Tensor>& params, double value) {
  check_bound("clip_grad_value_", "value", value);
  std::vector<Tensor> grads = gradients("clip_grad_value_", params);
  NoGradGuard no_grad;
  for (Tensor& g : grads) g.clamp_(-value, value);
}

void clip_parameters_(const std::vector<Tensor>& params, double c) {
  check_bound("clip_parameters_", "c", c);
  for (std::size_t i = 0; i < params.size(); ++i) {
    LOCKSTEP_CHECK(params[i].defined(), ValueError,
                   "clip_parameters_: expected defined parameters, but parameter ", i, " is undefined");
  }
  NoGradGuard no_grad;
  for (Tensor p : params) p.clamp_(-c, c);
}

}  // namespace lockstep::optim
