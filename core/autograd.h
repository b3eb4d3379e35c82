#pragma once
// Define-by-run autograd. Every differentiable op in core/ops.cpp records a Node when grad mode
// is on and one of its inputs requires grad; Tensor::backward() walks the recorded nodes in
// reverse topological order and accumulates into the leaves' grad().
#include <functional>
#include <memory>
#include <vector>

#include "reel/core/tensor.h"

namespace reel {

// Where the gradient of one input of a node goes next.
struct Edge {
  std::shared_ptr<Node> node;        // the op that made the input (non-leaf), or
  std::shared_ptr<TensorImpl> leaf;  // the input itself (a leaf that requires grad)
  bool active() const { return node != nullptr || leaf != nullptr; }
};

struct Node {
  const char* name = "";
  std::vector<Edge> next;             // one per input of the op, in the op's order
  std::vector<Shape> input_shapes;    // checked against what backward returns
  std::weak_ptr<TensorImpl> output;   // for retain_grad(); weak, so no cycle
  // grad_out: d(loss)/d(output). Returns d(loss)/d(input) for every input (an undefined Tensor
  // where next[i] is inactive). Runs with grad mode off.
  std::function<std::vector<Tensor>(const Tensor& grad_out)> backward;
  bool needs_grad(size_t i) const { return i < next.size() && next[i].active(); }
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

// True when an op on these inputs must be recorded.
bool any_requires_grad(std::initializer_list<const Tensor*> inputs);
bool any_requires_grad(const std::vector<Tensor>& inputs);

// Records `output` as made by op `name` from `inputs` (all inputs, in order; those not requiring
// grad get an inactive edge). Returns the node so that the op can set its backward.
std::shared_ptr<Node> record(const char* name, const Tensor& output,
                             const std::vector<Tensor>& inputs);

// The engine behind Tensor::backward().
void run_backward(const Tensor& root, const Tensor& grad_root);

}  // namespace reel
