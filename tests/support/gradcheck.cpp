// Central-difference gradient checking.
#include "tests/support/gradcheck.h"

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

}  // namespace lockstep::test
