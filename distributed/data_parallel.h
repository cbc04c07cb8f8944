// DataParallel: one model replica per rank kept identical by averaging gradients (the Reducer) after
// broadcasting rank 0's parameters and buffers once at construction.
#pragma once

#include <memory>

#include "distributed/process_group.h"
#include "distributed/reducer.h"
#include "src/nn/module.h"

namespace lockstep::distributed {

// Wraps a module for data-parallel training. forward() in training mode (with grad mode on) arms the
// reducer so that the next backward averages the gradients over the group; between forwards nothing is
// broadcast, so batch-norm statistics are never overwritten (GANs call D several times a step). GAN training
// uses one wrapper per network; the generator step calls the discriminator through module() with its
// parameters frozen, so no discriminator gradient is reduced or applied then.
// Gradient accumulation: backwards inside a NoSync scope only accumulate locally; the next synchronised
// backward reduces the accumulated sums.
// Not a Module itself, so that parameter names (checkpoint keys) stay the wrapped module's own. Owns the
// reducer and shares the module and group. Not thread-safe.
class DataParallel {
 public:
  DataParallel(std::shared_ptr<nn::Module> module, std::shared_ptr<ProcessGroup> group,
               ReducerOptions options = {});

  Tensor forward(const Tensor& input);
  Tensor operator()(const Tensor& input) { return forward(input); }
  // Arms the reducer as forward() does and returns the module, to be called with another signature (a
  // conditional GAN's networks take labels too).
  nn::Module& prepare_forward();
  nn::Module& module() { return *module_; }
  Reducer& reducer() { return *reducer_; }

  // Copies rank 0's parameters and buffers to every rank (done at construction; call again after loading
  // a checkpoint on rank 0 only, or to re-align plain BatchNorm running statistics before evaluation).
  void broadcast_state();

  // While alive, backwards through this wrapper do not communicate.
  class NoSync {
   public:
    explicit NoSync(DataParallel& dp) : dp_(dp), previous_(dp.sync_) { dp_.sync_ = false; }
    ~NoSync() { dp_.sync_ = previous_; }
    NoSync(const NoSync&) = delete;
    NoSync& operator=(const NoSync&) = delete;

   private:
    DataParallel& dp_;
    bool previous_;
  };

 private:
  std::shared_ptr<nn::Module> module_;
  std::shared_ptr<ProcessGroup> group_;
  std::unique_ptr<Reducer> reducer_;
  bool sync_ = true;
};

// Broadcasts every parameter and buffer of `module` from `root`, coalesced per dtype (few collectives).
void broadcast_module(nn::Module& module, ProcessGroup& group, int root = 0);

}  // namespace lockstep::distributed
