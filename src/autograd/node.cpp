// Graph nodes: iterative destruction, saved-tensor version checks, leaf accumulation and op recording.
#include "src/autograd/node.h"

#include <atomic>
#include <limits>

#include "src/autograd/engine.h"
#include "src/autograd/grad_mode.h"
#include "src/ops/elementwise.h"

namespace lockstep {
namespace {

std::atomic<std::uint64_t> g_next_sequence_nr{0};

// Pending releases of the iterative destructor, per thread.
struct ReleaseQueue {
  bool draining = false;
  std::vector<std::shared_ptr<Node>> nodes;
  std::vector<Tensor> tensors;
};

// The queue belongs to a thread_local owner made on first use. t_queue and t_queue_gone are trivially
// destructible, so they stay readable after the thread's thread_local destructors have run: a graph held by
// a thread_local made earlier, or by a static, is destroyed after the owner, and then frees its edges
// recursively instead of touching a destroyed queue.
thread_local ReleaseQueue* t_queue = nullptr;
thread_local bool t_queue_gone = false;

struct ReleaseQueueOwner {
  ReleaseQueue queue;
  ReleaseQueueOwner() { t_queue = &queue; }
  ~ReleaseQueueOwner() {
    t_queue = nullptr;
    t_queue_gone = true;
  }
  ReleaseQueueOwner(const ReleaseQueueOwner&) = delete;
  ReleaseQueueOwner& operator=(const ReleaseQueueOwner&) = delete;
};

// This thread's queue, or null once the thread is ending.
ReleaseQueue* release_queue() {
  if (t_queue == nullptr && !t_queue_gone) {
    thread_local ReleaseQueueOwner owner;
  }
  return t_queue;
}

std::vector<TensorMeta> metas_of(const std::vector<Tensor>& ts) {
  std::vector<TensorMeta> out;
  out.reserve(ts.size());
  for (const auto& t : ts) out.push_back({t.shape(), t.dtype(), t.device()});
  return out;
}

}  // namespace

SavedTensor::SavedTensor(const Tensor& tensor, bool is_output, std::uint32_t output_nr)
    : output_nr_(output_nr), is_output_(is_output) {
  if (!tensor.defined()) return;
  tensor_ = is_output ? tensor.detach() : tensor;
  version_ = tensor.version();
}

Tensor SavedTensor::unpack(const char* op) const {
  LOCKSTEP_CHECK(!released_, AutogradError, op, ": expected the saved tensors of this graph to be alive, but they "
                 "were freed by an earlier backward. Pass RetainGraph::kYes to the first backward to go through the "
                 "graph a second time");
  if (tensor_.defined()) {
    LOCKSTEP_CHECK(tensor_.version() == version_, AutogradError, op, ": a tensor ", shape_str(tensor_.shape()),
                   " saved for backward was modified by an in-place operation (its version is ", tensor_.version(),
                   ", expected ", version_, "). Clone it before modifying it, or modify a copy");
    if (is_output_ && GradMode::is_enabled()) {
      if (std::shared_ptr<Node> node = output_of_.lock()) {
        Tensor with_history = tensor_.detach();
        with_history.set_history(std::move(node), output_nr_);
        return with_history;
      }
    }
  }
  return tensor_;
}

Node::Node(std::vector<TensorMeta> outputs)
    : sequence_nr_(g_next_sequence_nr.fetch_add(1, std::memory_order_relaxed)), outputs_(std::move(outputs)) {}

Node::~Node() {
  ReleaseQueue* queue = release_queue();
  if (queue == nullptr) return;  // the thread is ending: next_edges_ is freed recursively
  for (auto& e : next_edges_) {
    if (e.fn) queue->nodes.push_back(std::move(e.fn));
  }
  if (queue->draining) return;
  queue->draining = true;
  while (!queue->nodes.empty() || !queue->tensors.empty()) {
    if (!queue->nodes.empty()) {
      std::shared_ptr<Node> n = std::move(queue->nodes.back());
      queue->nodes.pop_back();
      n.reset();
    } else {
      Tensor t = std::move(queue->tensors.back());
      queue->tensors.pop_back();
      t = Tensor();
    }
  }
  queue->draining = false;
}

void Node::defer_release(Tensor&& tensor) {
  ReleaseQueue* queue = release_queue();
  if (queue != nullptr && tensor.defined()) queue->tensors.push_back(std::move(tensor));
}

FunctionNode::~FunctionNode() {
  for (auto& s : saved_) defer_release(s.take());
}

std::vector<Tensor> FunctionNode::apply(std::vector<Tensor>&& grad_outputs) {
  LOCKSTEP_CHECK(!released_, AutogradError, name_, ": expected the saved tensors of this graph to be alive, but they "
                 "were freed by an earlier backward. Pass RetainGraph::kYes to the first backward to go through the "
                 "graph a second time");
  BackwardContext ctx(name_, std::move(grad_outputs), saved_, next_edges());
  return fn_(ctx);
}

void FunctionNode::release_saved() {
  // Freed now, not deferred: the engine calls this outside any destructor, and a graph that a saved tensor
  // keeps alive is itself destroyed iteratively.
  for (auto& s : saved_) s.release();
  released_ = true;
}

void FunctionNode::link_saved_outputs(const std::shared_ptr<Node>& self) {
  for (auto& s : saved_) {
    if (s.is_output()) s.set_output_of(self);
  }
}

AccumulateGrad::AccumulateGrad(const Tensor& leaf)
    : Node({TensorMeta{leaf.shape(), leaf.dtype(), leaf.device()}}), leaf_(leaf.impl_ptr()) {
  sequence_nr_ = std::numeric_limits<std::uint64_t>::max();
}

GradientHome* AccumulateGrad::offered_home() {
  Tensor leaf(leaf_.lock());
  if (!leaf.defined()) return nullptr;
  GradientHome* home = leaf.impl()->autograd->gradient_home.get();
  return home != nullptr && home->open && !home->filled && !leaf.grad().defined() ? home : nullptr;
}

void set_gradient_home(const Tensor& leaf, std::shared_ptr<GradientHome> home) {
  if (!home) {
    if (leaf.defined() && leaf.impl()->autograd) leaf.impl()->autograd->gradient_home.reset();
    return;
  }
  LOCKSTEP_CHECK(leaf.requires_grad() && !leaf.grad_fn(), AutogradError,
                 "set_gradient_home: expected a leaf tensor that requires grad, but got one of shape ",
                 shape_str(leaf.shape()), leaf.grad_fn() ? " made by an op" : " that does not require grad");
  LOCKSTEP_CHECK(home->view.shape() == leaf.shape() && home->view.dtype() == leaf.dtype() &&
                     home->view.device() == leaf.device() && home->view.is_contiguous(),
                 AutogradError, "set_gradient_home: expected a contiguous home of the leaf's shape ",
                 shape_str(leaf.shape()), ", dtype and device, but got ", dtype_name(home->view.dtype()), " ",
                 shape_str(home->view.shape()), " on ", home->view.device().str());
  leaf.impl()->autograd->gradient_home = std::move(home);
}

std::shared_ptr<GradientHome> gradient_home(const Tensor& leaf) {
  return leaf.defined() && leaf.impl()->autograd ? leaf.impl()->autograd->gradient_home : nullptr;
}

std::vector<Tensor> AccumulateGrad::apply(std::vector<Tensor>&& grad_outputs) {
  Tensor leaf(leaf_.lock());
  if (!leaf.defined()) return {};
  Tensor& incoming = grad_outputs.at(0);
  Tensor current = leaf.grad();
  if (!current.defined()) {
    // Take the incoming gradient when nobody else holds it, or when it was written into the leaf's home;
    // otherwise copy, so .grad never aliases.
    const GradientHome* home = leaf.impl()->autograd->gradient_home.get();
    const bool in_home = home != nullptr && home->filled && incoming.same(home->view);
    const bool exclusive = in_home || (incoming.impl_ptr().use_count() == 1 && incoming.is_contiguous() &&
                                       incoming.storage().use_count() == 1 && !incoming.requires_grad());
    // With create_graph the copy is recorded, so the leaf's .grad can be differentiated.
    leaf.set_grad(exclusive ? incoming : incoming.clone());
  } else if (GradMode::is_enabled()) {
    leaf.set_grad(add(current, incoming));  // create_graph: keep the sum differentiable
  } else {
    current.add_(incoming);
  }
  // By index over the hooks present now: a hook may register more hooks (they run from the next backward on).
  auto& hooks = leaf.impl()->autograd->post_accumulate_hooks;
  const std::size_t count = hooks.size();
  for (std::size_t i = 0; i < count; ++i) {
    const PostAccumulateHook hook = hooks[i];
    hook(leaf);
  }
  return {};
}

bool needs_grad(std::initializer_list<Tensor> inputs) {
  if (!GradMode::is_enabled()) return false;
  for (const auto& t : inputs) {
    if (t.defined() && t.requires_grad()) return true;
  }
  return false;
}

bool needs_grad(const std::vector<Tensor>& inputs) {
  if (!GradMode::is_enabled()) return false;
  for (const auto& t : inputs) {
    if (t.defined() && t.requires_grad()) return true;
  }
  return false;
}

Edge gradient_edge(const Tensor& t) {
  if (!t.defined() || !t.requires_grad()) return {};
  if (t.grad_fn()) return {t.grad_fn(), t.output_nr()};
  AutogradMeta& meta = *t.impl()->autograd;
  if (!meta.grad_accumulator) meta.grad_accumulator = std::make_shared<AccumulateGrad>(t);
  return {meta.grad_accumulator, 0};
}

bool record(const char* name, const std::vector<Tensor>& inputs, const std::vector<Tensor>& outputs,
            const std::vector<Tensor>& saved, BackwardFn fn) {
  if (!needs_grad(inputs)) return false;
  yield_if_requested();
  std::vector<SavedTensor> saved_tensors;
  saved_tensors.reserve(saved.size());
  for (const auto& s : saved) {
    bool is_output = false;
    std::uint32_t output_nr = 0;
    for (std::size_t i = 0; i < outputs.size() && !is_output; ++i) {
      is_output = s.defined() && s.same(outputs[i]);
      output_nr = static_cast<std::uint32_t>(i);
    }
    saved_tensors.emplace_back(s, is_output, output_nr);
  }
  auto node = std::make_shared<FunctionNode>(name, metas_of(outputs), std::move(saved_tensors), std::move(fn));
  node->link_saved_outputs(node);
  node->next_edges().reserve(inputs.size());
  for (const auto& in : inputs) node->next_edges().push_back(gradient_edge(in));
  for (std::size_t i = 0; i < outputs.size(); ++i) outputs[i].set_history(node, static_cast<std::uint32_t>(i));
  return true;
}

}  // namespace lockstep
