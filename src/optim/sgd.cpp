// SGD: its options and slots; the update is the fused sgd_update kernel (src/optim/update_formulas.h).
#include "src/optim/sgd.h"

#include <utility>

namespace lockstep::optim {
namespace {

std::vector<Optimizer::Slot> sgd_slots(const SGDOptions& o) {
  if (o.momentum == 0.0) return {};
  return {{"momentum_buffer", 0.0}};
}

}  // namespace

SGD::SGD(std::vector<nn::NamedTensor> params, SGDOptions options)
    : Optimizer("SGD", std::move(params), options.lr, options.decay, sgd_slots(options)), options_(options) {
  check_option(options.momentum >= 0.0, "momentum", ">= 0", options.momentum);
  check_option(options.dampening >= 0.0 && options.dampening <= 1.0, "dampening", "in [0, 1]",
               options.dampening);
  check_option(options.weight_decay >= 0.0, "weight_decay", ">= 0", options.weight_decay);
  if (options.nesterov == Nesterov::kYes) {
    check_option(options.momentum > 0.0, "momentum", "> 0 with Nesterov momentum", options.momentum);
    check_option(options.dampening == 0.0, "dampening", "== 0 with Nesterov momentum", options.dampening);
  }
}

void SGD::update_all(const std::vector<Pending>& pending) {
  const SgdHyper hyper{lr(), options_.momentum, options_.dampening, options_.weight_decay,
                       options_.nesterov == Nesterov::kYes};
  for (const auto& [device, updates] : updates_by_device(pending))
    kernels::sgd_update.get(device)(updates, hyper);
}

}  // namespace lockstep::optim
