// The gradient reducer of data-parallel training: packs gradients into fixed-size buckets in reverse
// registration order, all-reduces each bucket as soon as all its gradients are ready during backward
// (leaf post-accumulate hooks), and at the end of backward waits. Gradients live in their buckets: each
// parameter's bucket slot is offered to the kernel that computes its gradient (a gradient home,
// src/autograd/node.h: linear and convolution weights are written there with the factor 1 / world folded in);
// any other gradient is moved there times 1 / world as it arrives. The slot becomes the parameter's .grad, so
// the all-reduce leaves the average in .grad with no copy back. Buckets come from the group's
// empty_for_collectives (shared memory every rank maps, when all ranks share a node). While buckets are in
// flight over a network, backward yields the core between nodes (ProcessGroup::progresses_while_computing).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "distributed/process_group.h"
#include "src/nn/module.h"

namespace lockstep::distributed {

struct ReducerOptions {
  std::int64_t bucket_bytes = 4 << 20;
  // The first bucket (the last parameters, whose gradients come first) is kept small so that
  // communication starts early in backward. The last (the first parameters, whose gradients come last)
  // holds at most 64 KiB (or the smaller of these caps), so that little is left to send when backward ends.
  std::int64_t first_bucket_bytes = 1 << 20;
  // Deterministic mode (src/core/micro_shards.h): each bucket is all-gathered and every rank sums the ranks'
  // gradients in the fixed binary tree over rank index (((g0 + g1) + (g2 + g3)) ...), continuing the tree
  // each rank's micro-shards were summed in, instead of an all-reduce whose order MPI chooses. At 2 ranks it
  // moves the same bytes as a ring all-reduce; at W ranks (W - 1) / 2 times more, for an order that is ours.
  bool deterministic = false;
};

// What a reducer does during one synchronised backward, in order, for tests and benchmarks. `order` comes
// from next_event_order(), a process-wide counter that observers on the communication thread can share (see
// ProcessGroup::set_observer), so events of both threads can be put in one order without timing them.
struct ReducerEvent {
  enum class Kind : std::uint8_t {
    kBucketLaunched,  // the bucket's all-reduce was issued (collective number `sequence`)
    kBackwardEnded,   // the engine finished the backward pass and called the reducer's finaliser
    kBucketWaited,    // the finaliser has waited for the bucket's all-reduce
  };
  Kind kind;
  int bucket = -1;
  std::uint64_t sequence = 0;
  std::uint64_t order = 0;
};
std::uint64_t next_event_order();

// Owns the buckets (one flat tensor each) for the parameters it was given (those requiring grad). Parameters
// are f32 or f64 tensors on the group's device (the CPU, or the GPU of an NCCL group), as are the buckets; a
// bucket holds one dtype. Bucket b is launched only after buckets 0..b-1, so
// every rank issues the same all-reduces in the same order whatever order its gradients arrive in. A
// parameter that got no gradient in a backward contributes its current .grad (from earlier no-sync backwards)
// or zeros, and the buckets holding it are launched when backward ends: no rank waits for a gradient that
// never comes; such a parameter ends with the group's average. With a group of size 1 nothing is armed and
// nothing copied. After a synchronised backward each parameter's .grad is a view of its bucket: the next
// synchronised backward overwrites it (clone a gradient to keep it). Not thread-safe; the hooks run on the
// thread that calls backward. The hooks registered on the parameters outlive the reducer harmlessly (they do
// nothing once it is gone).
class Reducer {
 public:
  Reducer(std::vector<nn::NamedTensor> parameters, std::shared_ptr<ProcessGroup> group,
          ReducerOptions options = {});
  ~Reducer();
  Reducer(const Reducer&) = delete;
  Reducer& operator=(const Reducer&) = delete;

  // Arms the reducer for the next backward: hooks copy gradients into buckets and launch them. Calling it
  // again before that backward (several forwards per step) is harmless. The end of that backward disarms it.
  void prepare_for_backward();
  bool armed() const;

  // Overlapping an all-reduce with the next step's work (a GAN's generator update with the next
  // discriminator step on real images): the next synchronised backward (NoSync ones do not count) returns
  // once every bucket is launched, without waiting for them; wait() waits (and is idempotent). Until then the
  // gradients (.grad) are not yet averaged: reading them, clearing them (zero_grad drops the average on its
  // way) or accumulating into them (a NoSync backward) must wait. The next prepare_for_backward waits first.
  // Over a network, the thread keeps yielding between nodes and ops while the buckets are in flight.
  void defer_next_wait();
  void wait();
  bool in_flight() const;  // a deferred backward's buckets are not yet waited for

  // Parameter names in each bucket, in bucket order (the same on every rank).
  std::vector<std::vector<std::string>> bucket_names() const;
  std::int64_t num_buckets() const;
  // Events of the last synchronised backward (cleared by prepare_for_backward).
  std::vector<ReducerEvent> events() const;

 private:
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace lockstep::distributed
