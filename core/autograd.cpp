#include "reel/core/autograd.h"

#include <unordered_map>

#include "reel/core/ops.h"

namespace reel {

namespace {
thread_local bool g_grad_mode = true;
}  // namespace

bool grad_mode_enabled() { return g_grad_mode; }
void set_grad_mode(bool enabled) { g_grad_mode = enabled; }

bool any_requires_grad(std::initializer_list<const Tensor*> inputs) {
  if (!g_grad_mode) return false;
  for (const Tensor* t : inputs)
    if (t->defined() && t->requires_grad()) return true;
  return false;
}

bool any_requires_grad(const std::vector<Tensor>& inputs) {
  if (!g_grad_mode) return false;
  for (const Tensor& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

std::shared_ptr<Node> record(const char* name, const Tensor& output,
                             const std::vector<Tensor>& inputs) {
  auto node = std::make_shared<Node>();
  node->name = name;
  node->next.resize(inputs.size());
  node->input_shapes.resize(inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& in = inputs[i];
    if (!in.defined()) continue;
    node->input_shapes[i] = in.shape();
    if (!in.requires_grad()) continue;
    if (in.grad_fn())
      node->next[i].node = in.grad_fn();
    else
      node->next[i].leaf = in.impl();
  }
  node->output = output.impl();
  output.impl()->grad_fn = node;
  output.impl()->requires_grad = true;
  return node;
}

namespace {

// Adds g into the gradient held by impl (a leaf, or a non-leaf that retains its gradient).
void accumulate_into(TensorImpl& impl, const Tensor& g) {
  if (!impl.grad) {
    // A private copy: g may share storage with tensors that later accumulate in place.
    impl.grad = g.clone().impl();
  } else {
    Tensor(impl.grad).add_(g);
  }
}

}  // namespace

void run_backward(const Tensor& root, const Tensor& grad_root) {
  NoGradGuard no_grad;
  const std::shared_ptr<Node>& root_node = root.grad_fn();
  if (!root_node) {  // a leaf: its gradient is grad_root itself
    accumulate_into(*root.impl(), grad_root);
    return;
  }
  // Count, for every node reachable from the root, how many edges lead into it (iteratively:
  // graphs of long sequences are deep).
  std::unordered_map<Node*, int> pending;
  std::vector<Node*> stack{root_node.get()};
  pending[root_node.get()] = 0;
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    for (const Edge& e : n->next) {
      if (!e.node) continue;
      auto [it, inserted] = pending.emplace(e.node.get(), 0);
      ++it->second;
      if (inserted) stack.push_back(e.node.get());
    }
  }
  // Kahn's order: a node runs once every consumer has handed it its gradient.
  std::unordered_map<Node*, Tensor> grads;
  grads[root_node.get()] = grad_root;
  std::vector<Node*> ready{root_node.get()};
  while (!ready.empty()) {
    Node* n = ready.back();
    ready.pop_back();
    Tensor g = std::move(grads[n]);
    grads.erase(n);
    if (auto out = n->output.lock(); out && out->retains_grad) accumulate_into(*out, g);
    std::vector<Tensor> in_grads = n->backward(g);
    REEL_CHECK(in_grads.size() == n->next.size(),
               "autograd: backward of " << n->name << " returned " << in_grads.size()
                                        << " gradients for " << n->next.size() << " inputs");
    for (size_t i = 0; i < n->next.size(); ++i) {
      const Edge& e = n->next[i];
      if (!e.active()) continue;
      const Tensor& gi = in_grads[i];
      REEL_CHECK(gi.defined() && gi.shape() == n->input_shapes[i],
                 "autograd: backward of " << n->name << " gave input " << i << " a gradient of "
                                          << (gi.defined() ? shape_str(gi.shape()) : "nothing")
                                          << ", expected " << shape_str(n->input_shapes[i]));
      if (e.leaf) {
        accumulate_into(*e.leaf, gi);
        continue;
      }
      Node* m = e.node.get();
      auto it = grads.find(m);
      if (it == grads.end())
        grads.emplace(m, gi);
      else
        it->second = add(it->second, gi);
      if (--pending[m] == 0) ready.push_back(m);
    }
  }
}

}  // namespace reel
