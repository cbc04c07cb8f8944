// DataParallel and the coalesced broadcast of a module's state.
#include "distributed/data_parallel.h"

#include <map>

#include "src/autograd/grad_mode.h"
#include "src/core/error.h"
#include "src/tensor/factories.h"

namespace lockstep::distributed {

void broadcast_module(nn::Module& module, ProcessGroup& group, int root) {
  if (group.size() == 1) return;
  // Parameters then buffers, grouped by dtype: one flat tensor and one broadcast per dtype.
  std::map<DType, std::vector<Tensor>> by_dtype;
  for (auto& [name, t] : module.named_parameters()) by_dtype[t.dtype()].push_back(t);
  for (auto& [name, t] : module.named_buffers()) by_dtype[t.dtype()].push_back(t);
  NoGradGuard no_grad;
  for (auto& [dtype, tensors] : by_dtype) {
    std::int64_t total = 0;
    for (const auto& t : tensors) total += t.numel();
    Tensor flat = empty({total}, dtype, group.tensor_device());
    std::int64_t offset = 0;
    if (group.rank() == root) {
      for (const auto& t : tensors) {
        flat.slice(0, offset, offset + t.numel()).view(t.shape()).copy_(t);
        offset += t.numel();
      }
    }
    group.broadcast(flat, root)->wait();
    offset = 0;
    for (auto& t : tensors) {
      if (group.rank() != root) t.copy_(flat.slice(0, offset, offset + t.numel()).view(t.shape()));
      offset += t.numel();
    }
  }
}

DataParallel::DataParallel(std::shared_ptr<nn::Module> module, std::shared_ptr<ProcessGroup> group,
                           ReducerOptions options)
    : module_(std::move(module)), group_(std::move(group)) {
  LOCKSTEP_CHECK(module_ != nullptr && group_ != nullptr, ValueError,
                 "DataParallel: expected a module and a process group, but got null");
  broadcast_state();
  reducer_ = std::make_unique<Reducer>(module_->named_parameters(), group_, options);
}

Tensor DataParallel::forward(const Tensor& input) { return prepare_forward().forward(input); }

nn::Module& DataParallel::prepare_forward() {
  if (sync_ && module_->is_training() && GradMode::is_enabled()) reducer_->prepare_for_backward();
  return *module_;
}

void DataParallel::broadcast_state() { broadcast_module(*module_, *group_, 0); }

}  // namespace lockstep::distributed
