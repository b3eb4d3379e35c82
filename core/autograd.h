#pragma once
// Define-by-run autograd. Every differentiable op records a Node when grad mode is on and one
// of its inputs requires grad; Tensor::backward() walks the recorded nodes in reverse
// topological order and accumulates into the leaves' grad().
//
// The gradient contract (DESIGN.md): a node's backward returns fresh gradients, one per input.
// The engine sums fan-in in place into a gradient that it alone owns: it takes the first one
// that arrives without copying it, and copies it once only if someone else still holds it.
// What a node saved for backward is freed as soon as its backward has run, unless the caller
// asked backward(grad, /*retain_graph=*/true); a saved tensor remembers its storage's version,
// and a change in place before backward is an error, not a wrong gradient.
#include <functional>
#include <memory>
#include <vector>

#include "reel/core/tensor.h"

namespace reel {

// Where the gradient of one input of a node goes next.
struct Edge {
  std::shared_ptr<Node> node;        // the op that made the input (non-leaf), or
  int output = 0;                    // which of node's outputs the input is
  std::shared_ptr<TensorImpl> leaf;  // the input itself (a leaf that requires grad)
  bool active() const { return node != nullptr || leaf != nullptr; }
};

struct Node {
  // grad_outputs[k]: d(loss)/d(output k), undefined where no gradient reached output k
  // (meaning zero). Returns d(loss)/d(input i) for every input, fresh tensors (an undefined
  // Tensor where next[i] is inactive). Runs with grad mode off. The node is passed in so that
  // the function reads its saved tensors and shapes through it, never through a capture of
  // the node itself.
  using Backward =
      std::function<std::vector<Tensor>(Node& self, const std::vector<Tensor>& grad_outputs)>;

  const char* name = "";
  std::vector<Edge> next;                          // one per input of the op, in the op's order
  std::vector<Shape> input_shapes;                 // checked against what backward returns
  std::vector<Shape> output_shapes;                // one per output
  std::vector<std::weak_ptr<TensorImpl>> outputs;  // for retain_grad(); weak, so no cycle
  Backward backward;

  Node() = default;
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;
  // Frees long chains of nodes without recursion (a graph of 10^5 steps would overflow the
  // stack if each node's destructor destroyed the next).
  ~Node();

  bool needs_grad(size_t i) const { return i < next.size() && next[i].active(); }

  // Keeps t (detached: the graph holds no cycle) for backward, with its storage's version.
  // Returns its slot for saved().
  size_t save(const Tensor& t);
  // The tensor saved in `slot`. Throws reel::Error when its storage was changed in place
  // after it was saved (naming this op), or when the node's saved tensors were freed.
  Tensor saved(size_t slot) const;

  // True once a backward has run through this node without retain_graph: its saved tensors
  // and backward function are gone, and a second backward through it is an error.
  bool released() const { return released_; }
  // Drops the saved tensors and the backward function (and all they captured).
  void release();

 private:
  std::vector<Tensor> saved_;
  std::vector<uint64_t> saved_versions_;
  bool released_ = false;
};

bool grad_mode_enabled();
void set_grad_mode(bool enabled);

// Turns recording off in its scope (evaluation, optimizer steps), restoring it after.
class NoGradGuard {
 public:
  NoGradGuard() : prev_(grad_mode_enabled()) { set_grad_mode(false); }
  ~NoGradGuard() { set_grad_mode(prev_); }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool prev_;
};

// Turns recording on in its scope (the recomputation inside a checkpoint's backward, which runs
// while the engine has it off), restoring it after.
class EnableGradGuard {
 public:
  EnableGradGuard() : prev_(grad_mode_enabled()) { set_grad_mode(true); }
  ~EnableGradGuard() { set_grad_mode(prev_); }
  EnableGradGuard(const EnableGradGuard&) = delete;
  EnableGradGuard& operator=(const EnableGradGuard&) = delete;

 private:
  bool prev_;
};

// True when an op on these inputs must be recorded.
bool any_requires_grad(std::initializer_list<const Tensor*> inputs);
bool any_requires_grad(const std::vector<Tensor>& inputs);

// Records `outputs` as made by op `name` from `inputs` (all inputs, in order; those not
// requiring grad get an inactive edge). Returns the node so that the op can save tensors and
// set its backward.
std::shared_ptr<Node> record(const char* name, const std::vector<Tensor>& outputs,
                             const std::vector<Tensor>& inputs);
// The common case of one output.
std::shared_ptr<Node> record(const char* name, const Tensor& output,
                             const std::vector<Tensor>& inputs);

// The engine behind Tensor::backward(). retain_graph keeps every node's saved tensors so that
// the graph can be walked again.
void run_backward(const Tensor& root, const Tensor& grad_root, bool retain_graph = false);

// Recomputation ("activation checkpointing"), for memory: y = fn(x) is computed with recording
// off, so that none of fn's intermediate tensors is kept, and one node keeps only x. Its
// backward runs fn(x) again with recording on and back-propagates the incoming gradient through
// that, handing the gradients of x and of `params` (every tensor fn reads that may need a
// gradient: a block's parameters) to the engine as any node's backward does. fn must compute the
// same values twice: it may not draw random numbers. Modules whose forward changes state (the
// running statistics of BatchNorm) ask recomputing() and skip the change the second time.
// Without grad mode or any input requiring grad this is fn(x).
Tensor checkpoint(const std::function<Tensor(const Tensor&)>& fn, const Tensor& x,
                  const std::vector<Tensor>& params);
// True inside a checkpoint's recomputation.
bool recomputing();

}  // namespace reel
