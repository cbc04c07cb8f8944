// The autograd graph: a Node per differentiable op application, Edges from a node to the nodes that
// produced its inputs, tensors saved for backward with in-place modification checks, and the
// gradient accumulator at each leaf.
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "src/tensor/tensor.h"

namespace lockstep {

class Node;

// Input `input_nr` of node `fn`; an invalid edge (no fn) means "no gradient needed there".
struct Edge {
  std::shared_ptr<Node> fn;
  std::uint32_t input_nr = 0;
  bool valid() const { return fn != nullptr; }
};

// Shape, dtype and device of one output of a node: the engine checks incoming gradients against it and
// makes zeros from it for outputs that received no gradient.
struct TensorMeta {
  Shape shape;
  DType dtype = DType::f32;
  Device device;
};

// A tensor kept for backward with the version it had when saved; unpack() refuses it if it has been
// modified in place since, naming the op. Outputs of the saving node are kept detached (no cycle) with a weak
// link to that node: unpacked in grad mode (create_graph) they get their history back, so that gradients
// computed from them can be differentiated again.
class SavedTensor {
 public:
  SavedTensor() = default;
  SavedTensor(const Tensor& tensor, bool is_output, std::uint32_t output_nr = 0);
  // Called by record() once the node exists, for saved outputs.
  void set_output_of(const std::shared_ptr<Node>& node) { output_of_ = node; }
  bool is_output() const { return is_output_; }
  Tensor unpack(const char* op) const;
  void release() { tensor_ = Tensor(); released_ = true; }
  Tensor take() { return std::move(tensor_); }

 private:
  Tensor tensor_;
  std::weak_ptr<Node> output_of_;
  std::uint32_t output_nr_ = 0;
  bool is_output_ = false;
  std::uint64_t version_ = 0;
  bool released_ = false;
};

// One backward function in the graph. Owns its saved tensors and strong edges to its inputs' nodes.
// Destruction is iterative, so chains of any length are freed without deep recursion. Not thread-safe.
class Node {
 public:
  explicit Node(std::vector<TensorMeta> outputs);
  virtual ~Node();
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  virtual const char* name() const = 0;
  // The gradient home this node offers its producer now (AccumulateGrad; see GradientHome), or null.
  virtual GradientHome* offered_home() { return nullptr; }
  // Takes one gradient per output (never undefined: the engine fills zeros) and returns one per input
  // edge (undefined where the input needs none).
  virtual std::vector<Tensor> apply(std::vector<Tensor>&& grad_outputs) = 0;
  // Frees saved tensors after a backward without retain_graph.
  virtual void release_saved() {}

  std::vector<Edge>& next_edges() { return next_edges_; }
  const std::vector<TensorMeta>& outputs() const { return outputs_; }
  // Creation order; the engine runs later nodes first. Leaf accumulators have the highest priority.
  std::uint64_t sequence_nr() const { return sequence_nr_; }

 protected:
  // Hands tensors to the iterative destructor (called from derived destructors for saved tensors).
  static void defer_release(Tensor&& tensor);
  std::uint64_t sequence_nr_;

 private:
  std::vector<Edge> next_edges_;
  std::vector<TensorMeta> outputs_;
};

// Where a leaf's gradient may be written by the kernel that computes it, multiplied by `scale`: the
// data-parallel reducer's bucket slot (view: the leaf's shape and dtype, contiguous), so that the gradient
// needs no copy into the bucket and the average no separate pass. The engine offers it to a backward function
// (through BackwardContext::home) only while `open`, when the leaf's .grad is undefined and the function's
// gradient is the only one the leaf receives in this backward, and never while recording a graph
// (create_graph) or in grad(). A function that takes the offer returns `view` itself as that input's gradient, holding scale x the
// gradient; the engine then sets `filled` and the leaf's .grad becomes `view`.
struct GradientHome {
  Tensor view;
  double scale = 1.0;
  bool open = false;
  bool filled = false;
};
// Attaches `home` to the leaf `leaf` (null detaches); the leaf's home, or null.
void set_gradient_home(const Tensor& leaf, std::shared_ptr<GradientHome> home);
std::shared_ptr<GradientHome> gradient_home(const Tensor& leaf);

// Whether the backward running on this thread wants a gradient along `edge`: every valid edge, except in
// grad(), which wants only the edges towards the requested inputs (src/autograd/engine.cpp).
bool edge_needed(const Edge& edge);

// What a backward function sees: its op's name, the gradients of the outputs and the saved tensors.
class BackwardContext {
 public:
  BackwardContext(const char* op, std::vector<Tensor>&& grads, const std::vector<SavedTensor>& saved,
                  const std::vector<Edge>& edges)
      : op_(op), grads_(std::move(grads)), saved_(saved), edges_(edges) {}
  const Tensor& grad(std::size_t i = 0) const { return grads_.at(i); }
  Tensor saved(std::size_t i) const { return saved_.at(i).unpack(op_); }
  bool needs_input_grad(std::size_t i) const { return i < edges_.size() && edge_needed(edges_[i]); }
  // The home offered for input i's gradient in this backward (see GradientHome), or null.
  const GradientHome* home(std::size_t i) const;

 private:
  const char* op_;
  std::vector<Tensor> grads_;
  const std::vector<SavedTensor>& saved_;
  const std::vector<Edge>& edges_;
};

using BackwardFn = std::function<std::vector<Tensor>(BackwardContext&)>;

// The node every op records: a name, saved tensors, and a backward function written with ops (so that
// with create_graph its own computation is recorded, which is how higher-order gradients come in).
// Backward functions must not capture tensors in their closure; they save them instead.
class FunctionNode final : public Node {
 public:
  FunctionNode(const char* name, std::vector<TensorMeta> outputs, std::vector<SavedTensor> saved, BackwardFn fn)
      : Node(std::move(outputs)), name_(name), saved_(std::move(saved)), fn_(std::move(fn)) {}
  ~FunctionNode() override;
  const char* name() const override { return name_; }
  std::vector<Tensor> apply(std::vector<Tensor>&& grad_outputs) override;
  void release_saved() override;
  // Links the saved outputs back to `self` (this node, as owned by the graph); called once by record().
  void link_saved_outputs(const std::shared_ptr<Node>& self);

 private:
  const char* name_;
  std::vector<SavedTensor> saved_;
  BackwardFn fn_;
  bool released_ = false;
};

// Adds incoming gradients into a leaf's .grad, then runs the leaf's post-accumulate hooks in order.
// Reaches the leaf through a weak pointer: the leaf owns this node, not the other way round.
class AccumulateGrad final : public Node {
 public:
  explicit AccumulateGrad(const Tensor& leaf);
  const char* name() const override { return "AccumulateGrad"; }
  GradientHome* offered_home() override;
  std::vector<Tensor> apply(std::vector<Tensor>&& grad_outputs) override;
  Tensor leaf() const { return Tensor(leaf_.lock()); }

 private:
  std::weak_ptr<TensorImpl> leaf_;
};

// True when grad mode is on and any of `inputs` requires grad.
bool needs_grad(std::initializer_list<Tensor> inputs);
bool needs_grad(const std::vector<Tensor>& inputs);

// The edge through which a gradient reaches `t`: its grad_fn, or its leaf accumulator (created on first
// use), or an invalid edge when `t` does not require grad.
Edge gradient_edge(const Tensor& t);

// Records the op `name` producing `outputs` from `inputs`: when needs_grad(inputs), attaches a FunctionNode
// with `saved` tensors and `fn` to every output. Returns whether it recorded.
bool record(const char* name, const std::vector<Tensor>& inputs, const std::vector<Tensor>& outputs,
            const std::vector<Tensor>& saved, BackwardFn fn);

}  // namespace lockstep
