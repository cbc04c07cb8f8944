// Central-difference gradient checking.
#include "tests/support/gradcheck.h"

#include <gtest/gtest.h>

#include <cmath>
#include <sstream>

#include "src/autograd/engine.h"
#include "src/autograd/grad_mode.h"
#include "src/ops/elementwise.h"
#include "src/ops/reduce.h"
#include "src/tensor/factories.h"

namespace lockstep::test {

GradcheckResult gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& fn, const std::vector<Tensor>& inputs,
                          double rtol, double atol, double eps) {
  GradcheckResult result;
  std::ostringstream log;
  Generator gen(1234);
  Tensor probe;
  std::vector<Tensor> analytic(inputs.size());
  {
    Tensor out = fn(inputs);
    probe = rand(out.shape(), -1.0, 1.0, DType::f64, kCPU, &gen);
    Tensor loss = sum(out * probe);
    std::vector<Tensor> wrt;
    std::vector<std::size_t> which;
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      if (inputs[i].requires_grad()) {
        wrt.push_back(inputs[i]);
        which.push_back(i);
      }
    }
    if (wrt.empty()) return result;
    LOCKSTEP_CHECK(loss.requires_grad(), Error, "gradcheck: the output does not depend on any differentiable input");
    std::vector<Tensor> g = grad({loss}, wrt);
    for (std::size_t k = 0; k < which.size(); ++k) analytic[which[k]] = g[k];
  }
  auto loss_at = [&](const std::vector<Tensor>& xs) {
    NoGradGuard no_grad;
    return sum(fn(xs) * probe).item();
  };
  int failures = 0;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i].requires_grad()) continue;
    const std::vector<double> a = analytic[i].defined() ? analytic[i].to_vector<double>()
                                                        : std::vector<double>(static_cast<std::size_t>(inputs[i].numel()), 0.0);
    std::vector<double> base = inputs[i].to_vector<double>();
    for (std::size_t e = 0; e < base.size(); ++e) {
      std::vector<Tensor> xs = inputs;
      std::vector<double> v = base;
      v[e] = base[e] + eps;
      xs[i] = from_vector(v, inputs[i].shape(), DType::f64);
      const double up = loss_at(xs);
      v[e] = base[e] - eps;
      xs[i] = from_vector(v, inputs[i].shape(), DType::f64);
      const double down = loss_at(xs);
      const double numeric = (up - down) / (2 * eps);
      if (!(std::abs(a[e] - numeric) <= atol + rtol * std::abs(numeric))) {
        result.ok = false;
        if (failures++ < 8) {
          log << "input " << i << " element " << e << ": autograd " << a[e] << ", finite difference " << numeric << "\n";
        }
      }
    }
  }
  if (failures > 8) log << "... " << failures << " mismatches in all\n";
  result.message = log.str();
  return result;
}

GradcheckResult gradgradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& fn,
                              const std::vector<Tensor>& inputs, double rtol, double atol, double eps) {
  GradcheckResult result;
  std::ostringstream log;
  Generator gen(4321);
  std::vector<std::size_t> which;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    if (inputs[i].requires_grad()) which.push_back(i);
  }
  if (which.empty()) return result;
  Shape out_shape;
  {
    NoGradGuard no_grad;
    out_shape = fn(inputs).shape();
  }
  const Tensor v0 = rand(out_shape, -1.0, 1.0, DType::f64, kCPU, &gen);
  std::vector<Tensor> u(inputs.size());
  for (std::size_t i : which) u[i] = rand(inputs[i].shape(), -1.0, 1.0, DType::f64, kCPU, &gen);

  // sum_i sum(g_i * u_i) with g = d sum(fn(xs) * v) / d xs; recorded when `create`.
  auto second = [&](const std::vector<Tensor>& xs, const Tensor& v, CreateGraph create) {
    std::vector<Tensor> wrt;
    for (std::size_t i : which) wrt.push_back(xs[i]);
    const Tensor loss = sum(fn(xs) * v);
    LOCKSTEP_CHECK(loss.requires_grad(), Error,
                   "gradgradcheck: the output does not depend on any differentiable input");
    const std::vector<Tensor> g = grad({loss}, wrt, {}, RetainGraph::kNo, create);
    Tensor total = zeros({}, DType::f64);
    for (std::size_t k = 0; k < which.size(); ++k) {
      if (g[k].defined()) total = total + sum(g[k] * u[which[k]]);
    }
    return total;
  };

  // Analytic: d second / d (inputs, v).
  std::vector<std::vector<double>> analytic;
  {
    const Tensor v = v0.detach().requires_grad_();
    const Tensor total = second(inputs, v, CreateGraph::kYes);
    std::vector<Tensor> wrt;
    for (std::size_t i : which) wrt.push_back(inputs[i]);
    wrt.push_back(v);
    std::vector<Tensor> g(wrt.size());
    if (total.requires_grad()) g = grad({total}, wrt);
    for (std::size_t k = 0; k < wrt.size(); ++k) {
      analytic.push_back(g[k].defined() ? g[k].to_vector<double>()
                                        : std::vector<double>(static_cast<std::size_t>(wrt[k].numel()), 0.0));
    }
  }

  // Fresh leaves for a perturbed evaluation (`slot` == which.size() perturbs v).
  auto value_at = [&](std::size_t slot, std::size_t e, double delta) {
    std::vector<Tensor> xs = inputs;
    Tensor v = v0;
    for (std::size_t k = 0; k <= which.size(); ++k) {
      const Tensor& base = k < which.size() ? inputs[which[k]] : v0;
      std::vector<double> data = base.to_vector<double>();
      if (k == slot) data[e] += delta;
      Tensor t = from_vector(data, base.shape(), DType::f64);
      if (k < which.size()) {
        xs[which[k]] = t.requires_grad_();
      } else {
        v = t;
      }
    }
    return second(xs, v, CreateGraph::kNo).item();
  };

  int failures = 0;
  for (std::size_t slot = 0; slot <= which.size(); ++slot) {
    const std::vector<double>& a = analytic[slot];
    // The value is linear in v, so a central difference in v is exact at any step: a step of 1 keeps rounding
    // inside the backward (an op computing in f32) far below the tolerance.
    const double step = slot < which.size() ? eps : 1.0;
    for (std::size_t e = 0; e < a.size(); ++e) {
      const double numeric = (value_at(slot, e, step) - value_at(slot, e, -step)) / (2 * step);
      if (!(std::abs(a[e] - numeric) <= atol + rtol * std::abs(numeric))) {
        result.ok = false;
        if (failures++ < 8) {
          log << (slot < which.size() ? "input " + std::to_string(which[slot]) : std::string("grad_output"))
              << " element " << e << ": second derivative " << a[e] << ", finite difference " << numeric
              << "\n";
        }
      }
    }
  }
  if (failures > 8) log << "... " << failures << " mismatches in all\n";
  result.message = log.str();
  return result;
}

std::int64_t expect_weights_match_central_differences(const nn::Module& module,
                                                      const std::function<double()>& loss,
                                                      const std::string& label, double atol,
                                                      const std::string& prefix) {
  std::int64_t checked = 0;
  for (const auto& [name, p] : module.named_parameters()) {
    if (name.rfind(prefix, 0) != 0) continue;
    const std::vector<double> analytic = p.grad().to_vector<double>();
    Tensor flat = p.detach().reshape({p.numel()});
    for (std::int64_t e = 0; e < p.numel(); ++e) {
      const double original = flat.select(0, e).item();
      const auto at = [&](double v) {
        {
          NoGradGuard no_grad;
          flat.select(0, e).fill_(v);
        }
        return loss();
      };
      const double numeric = (at(original + 1e-6) - at(original - 1e-6)) / 2e-6;
      at(original);
      EXPECT_NEAR(analytic[static_cast<std::size_t>(e)], numeric, atol + 1e-5 * std::abs(numeric))
          << label << name << " " << e;
      ++checked;
    }
  }
  return checked;
}

}  // namespace lockstep::test
