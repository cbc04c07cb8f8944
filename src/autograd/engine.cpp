// The iterative backward engine.
#include "src/autograd/engine.h"

#include <sched.h>

#include <queue>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "src/autograd/grad_mode.h"
#include "src/autograd/node.h"
#include "src/ops/elementwise.h"
#include "src/tensor/factories.h"

namespace lockstep {
namespace {

// yield_between_nodes: requests on this thread.
thread_local int t_yield_requests = 0;
thread_local std::uint64_t t_yields = 0;

struct ReadyOrder {
  bool operator()(const Node* a, const Node* b) const { return a->sequence_nr() < b->sequence_nr(); }
};

// Gradients waiting for a node: one slot per output, summed as they arrive.
using InputBuffer = std::vector<Tensor>;

void add_to_buffer(InputBuffer& buffer, Node& node, std::uint32_t input_nr, Tensor&& g, const char* producer) {
  const TensorMeta& meta = node.outputs().at(input_nr);
  LOCKSTEP_CHECK(g.shape() == meta.shape, AutogradError, "backward of ", producer, ": expected a gradient of shape ",
                 shape_str(meta.shape), " for ", node.name(), ", but got ", shape_str(g.shape()));
  LOCKSTEP_CHECK(g.dtype() == meta.dtype, AutogradError, "backward of ", producer, ": expected a gradient of dtype ",
                 dtype_name(meta.dtype), " for ", node.name(), ", but got ", dtype_name(g.dtype()), " ",
                 shape_str(g.shape()));
  Tensor& slot = buffer[input_nr];
  slot = slot.defined() ? add(slot, g) : std::move(g);
}

struct Task {
  std::vector<Tensor> roots;
  std::vector<Tensor> grad_roots;
  RetainGraph retain;
  CreateGraph create;
  // Set for grad(): capture the gradients reaching these edges instead of accumulating into leaves.
  const std::vector<Edge>* capture = nullptr;
  std::vector<Tensor>* captured = nullptr;
};

// What the engine knows about one reachable node: how many edges into it have not run yet (-1 once queued)
// and the gradients received so far. One map lookup per edge.
struct NodeState {
  int dependencies = 0;
  InputBuffer buffer;
};

// The callbacks of the backward passes running on this thread, innermost last.
thread_local std::vector<std::vector<std::function<void()>>> t_callbacks;

// For grad(): the nodes of the running backward from which a requested input can be reached (null for a
// backward into every leaf). Edges into other nodes need no gradient (edge_needed), and those nodes are skipped.
thread_local const std::unordered_set<const Node*>* t_needed = nullptr;

class NeededScope {
 public:
  explicit NeededScope(const std::unordered_set<const Node*>* needed) : previous_(t_needed) { t_needed = needed; }
  ~NeededScope() { t_needed = previous_; }
  NeededScope(const NeededScope&) = delete;
  NeededScope& operator=(const NeededScope&) = delete;

 private:
  const std::unordered_set<const Node*>* previous_;
};

// The reachable nodes from which one of `targets` can be reached (targets included), by a post-order walk.
std::unordered_set<const Node*> nodes_leading_to(const std::vector<Edge>& roots, const std::vector<Edge>& targets) {
  std::unordered_set<const Node*> needed, done;
  for (const Edge& t : targets) needed.insert(t.fn.get());
  std::vector<std::pair<Node*, std::size_t>> stack;  // node, next edge to visit
  for (const Edge& r : roots) {
    if (!done.insert(r.fn.get()).second) continue;
    stack.emplace_back(r.fn.get(), 0);
    while (!stack.empty()) {
      auto& [node, next] = stack.back();
      const std::vector<Edge>& edges = node->next_edges();
      if (next < edges.size()) {
        Node* child = edges[next++].fn.get();
        if (child != nullptr && done.insert(child).second) stack.emplace_back(child, 0);
        continue;
      }
      for (const Edge& e : edges) {
        if (e.valid() && needed.contains(e.fn.get())) {
          needed.insert(node);
          break;
        }
      }
      stack.pop_back();
    }
  }
  return needed;
}

// The gradient homes offered to the backward function running on this thread, by input
// (BackwardContext::home).
thread_local const std::vector<GradientHome*>* t_homes = nullptr;

class HomesScope {
 public:
  explicit HomesScope(const std::vector<GradientHome*>* homes) : previous_(t_homes) { t_homes = homes; }
  ~HomesScope() { t_homes = previous_; }
  HomesScope(const HomesScope&) = delete;
  HomesScope& operator=(const HomesScope&) = delete;

 private:
  const std::vector<GradientHome*>* previous_;
};

// The homes `node`'s inputs may be written into: a leaf's open home when this node's edge is the only one
// still to reach the leaf's accumulator and nothing has reached it before (its gradient is this one alone).
std::vector<GradientHome*> offered_homes(Node& node, const std::unordered_map<Node*, NodeState>& state) {
  std::vector<GradientHome*> homes;
  const std::vector<Edge>& edges = node.next_edges();
  for (std::size_t i = 0; i < edges.size(); ++i) {
    if (!edges[i].valid()) continue;
    GradientHome* home = edges[i].fn->offered_home();
    if (home == nullptr) continue;
    const NodeState& st = state.at(edges[i].fn.get());
    if (st.dependencies != 1 || (!st.buffer.empty() && st.buffer[0].defined())) continue;
    homes.resize(edges.size());
    homes[i] = home;
  }
  return homes;
}

// Pushes a callback list for one backward and pops it however the backward ends.
class CallbackScope {
 public:
  CallbackScope() { t_callbacks.emplace_back(); }
  ~CallbackScope() { t_callbacks.pop_back(); }
  CallbackScope(const CallbackScope&) = delete;
  CallbackScope& operator=(const CallbackScope&) = delete;
  void run() {
    // Index loop: a callback may queue more (the vector may grow).
    for (std::size_t i = 0; i < t_callbacks.back().size(); ++i) {
      auto callback = std::move(t_callbacks.back()[i]);
      callback();
    }
  }
};

void execute(const Task& task) {
  CallbackScope callbacks;
  GradModeGuard mode(task.create == CreateGraph::kYes);
  // A graph built with create_graph runs through this graph's nodes again, so their saved tensors stay.
  const bool release = task.retain == RetainGraph::kNo && task.create == CreateGraph::kNo;

  // The root gradients and the edges they enter by.
  std::vector<Edge> root_edges;
  std::vector<Tensor> root_grads;
  for (std::size_t i = 0; i < task.roots.size(); ++i) {
    const Tensor& root = task.roots[i];
    LOCKSTEP_CHECK(root.requires_grad(), AutogradError, "backward: expected a tensor that requires grad, but got one "
                   "of shape ", shape_str(root.shape()), " with no grad_fn and requires_grad false");
    Tensor g = i < task.grad_roots.size() ? task.grad_roots[i] : Tensor();
    if (!g.defined()) {
      LOCKSTEP_CHECK(root.numel() == 1, AutogradError, "backward: expected a one-element output when no gradient "
                     "is given, but got shape ", shape_str(root.shape()), ". Pass the gradient of the output");
      g = ones(root.shape(), root.dtype(), root.device());
    }
    root_edges.push_back(gradient_edge(root));
    root_grads.push_back(std::move(g));
  }

  // Count, for every reachable node, how many edges lead into it (iterative DFS).
  std::unordered_map<Node*, NodeState> state;
  {
    std::vector<Node*> stack;
    for (const auto& r : root_edges) {
      if (state.try_emplace(r.fn.get()).second) stack.push_back(r.fn.get());
    }
    while (!stack.empty()) {
      Node* n = stack.back();
      stack.pop_back();
      for (auto& e : n->next_edges()) {
        if (!e.valid()) continue;
        auto [it, inserted] = state.try_emplace(e.fn.get());
        ++it->second.dependencies;
        if (inserted) stack.push_back(e.fn.get());
      }
    }
  }

  // grad(): only the nodes leading to the requested inputs run, and only their edges towards those get gradients.
  std::unordered_set<const Node*> needed;
  if (task.capture) needed = nodes_leading_to(root_edges, *task.capture);
  NeededScope needed_scope(task.capture ? &needed : nullptr);

  // Seed the root gradients.
  for (std::size_t i = 0; i < root_edges.size(); ++i) {
    Node& fn = *root_edges[i].fn;
    InputBuffer& buffer = state.at(&fn).buffer;
    buffer.resize(fn.outputs().size());
    add_to_buffer(buffer, fn, root_edges[i].input_nr, std::move(root_grads[i]), "the root");
  }

  std::priority_queue<Node*, std::vector<Node*>, ReadyOrder> ready;
  for (const auto& r : root_edges) {
    NodeState& st = state.at(r.fn.get());
    if (st.dependencies == 0) {
      st.dependencies = -1;  // queued
      ready.push(r.fn.get());
    }
  }

  while (!ready.empty()) {
    yield_if_requested();
    Node* node = ready.top();
    ready.pop();
    InputBuffer inputs = std::move(state.at(node).buffer);
    std::vector<Tensor> outputs;
    // In grad(), a node that leads to no requested input is skipped whole (its gradients are never formed).
    if (!task.capture || needed.contains(node)) {
      inputs.resize(node->outputs().size());
      for (std::size_t i = 0; i < inputs.size(); ++i) {
        if (!inputs[i].defined()) {
          const TensorMeta& m = node->outputs()[i];
          inputs[i] = zeros(m.shape, m.dtype, m.device);
        }
      }
      if (task.capture) {
        for (std::size_t k = 0; k < task.capture->size(); ++k) {
          const Edge& c = (*task.capture)[k];
          if (c.fn.get() == node) (*task.captured)[k] = inputs[c.input_nr];
        }
      }
      // grad() never touches .grad. Gradient homes are for plain backwards (no capture, no recorded graph).
      if (!task.capture && task.create == CreateGraph::kNo) {
        const std::vector<GradientHome*> homes = offered_homes(*node, state);
        {
          HomesScope scope(homes.empty() ? nullptr : &homes);
          outputs = node->apply(std::move(inputs));
        }
        for (std::size_t i = 0; i < homes.size() && i < outputs.size(); ++i) {
          if (homes[i] != nullptr && outputs[i].defined() && outputs[i].same(homes[i]->view))
            homes[i]->filled = true;
        }
      } else if (!task.capture || !dynamic_cast<AccumulateGrad*>(node)) {
        outputs = node->apply(std::move(inputs));
      }
    }
    if (release) node->release_saved();

    auto& edges = node->next_edges();
    for (std::size_t i = 0; i < edges.size(); ++i) {
      const Edge& e = edges[i];
      if (!e.valid()) continue;
      Node* next = e.fn.get();
      NodeState& st = state.at(next);
      if (i < outputs.size() && outputs[i].defined() && edge_needed(e)) {
        st.buffer.resize(next->outputs().size());
        add_to_buffer(st.buffer, *next, e.input_nr, std::move(outputs[i]), node->name());
      }
      if (--st.dependencies == 0) ready.push(next);
    }
  }
  callbacks.run();
}

}  // namespace

const GradientHome* BackwardContext::home(std::size_t i) const {
  return t_homes != nullptr && i < t_homes->size() ? (*t_homes)[i] : nullptr;
}

bool edge_needed(const Edge& edge) { return edge.valid() && (t_needed == nullptr || t_needed->contains(edge.fn.get())); }

void yield_between_nodes(bool on) { t_yield_requests += on ? 1 : -1; }

void yield_if_requested() {
  if (t_yield_requests == 0) return;
  sched_yield();
  ++t_yields;
}

std::uint64_t yields_made() { return t_yields; }
bool yielding_between_nodes() { return t_yield_requests > 0; }

void queue_backward_callback(std::function<void()> callback) {
  LOCKSTEP_CHECK(!t_callbacks.empty(), AutogradError,
                 "queue_backward_callback: expected to be called during a backward pass, but none is running");
  t_callbacks.back().push_back(std::move(callback));
}

void run_backward(const std::vector<Tensor>& roots, const std::vector<Tensor>& grad_roots, RetainGraph retain,
                  CreateGraph create) {
  Task task{roots, grad_roots, retain, create};
  execute(task);
}

std::vector<Tensor> grad(const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                         const std::vector<Tensor>& grad_outputs, RetainGraph retain, CreateGraph create) {
  std::vector<Edge> capture;
  for (const auto& in : inputs) {
    LOCKSTEP_CHECK(in.requires_grad(), AutogradError, "grad: expected every input to require grad, but input of shape ",
                   shape_str(in.shape()), " does not");
    capture.push_back(gradient_edge(in));
  }
  std::vector<Tensor> captured(inputs.size());
  Task task{outputs, grad_outputs, retain, create, &capture, &captured};
  execute(task);
  return captured;
}

}  // namespace lockstep
