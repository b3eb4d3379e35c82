#include "reel/core/autograd.h"

#include <unordered_map>
#include <utility>

namespace reel {

namespace {
thread_local bool g_grad_mode = true;
thread_local int g_recomputing = 0;
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

Node::~Node() {
  // Take over the edges whose node this one holds last, and theirs in turn, so that a chain is
  // destroyed in a loop here instead of one nested destructor per node.
  // An edge that is not the last reference is dropped at once, so that a node reached twice
  // from here (y * y) is handed over by its last edge rather than destroyed inside this one.
  std::vector<std::shared_ptr<Node>> stack;
  auto take = [&stack](std::vector<Edge>& edges) {
    for (Edge& e : edges) {
      if (!e.node) continue;
      if (e.node.use_count() == 1)
        stack.push_back(std::move(e.node));
      else
        e.node.reset();
    }
  };
  take(next);
  while (!stack.empty()) {
    std::shared_ptr<Node> n = std::move(stack.back());
    stack.pop_back();
    take(n->next);
    // n dies here with no last references to other nodes left in it.
  }
}

size_t Node::save(const Tensor& t) {
  saved_.push_back(t.defined() ? t.detach() : Tensor());
  saved_versions_.push_back(t.defined() ? t.impl()->storage->version : 0);
  return saved_.size() - 1;
}

Tensor Node::saved(size_t slot) const {
  REEL_CHECK(!released_, "autograd: the tensors " << name << " saved for backward were freed "
                                                  << "by an earlier backward");
  REEL_CHECK(slot < saved_.size(), "autograd: " << name << " has no saved tensor " << slot);
  const Tensor& t = saved_[slot];
  if (!t.defined()) return t;
  const uint64_t now = t.impl()->storage->version;
  REEL_CHECK(now == saved_versions_[slot],
             "autograd: a tensor of shape "
                 << shape_str(t.shape()) << " that " << name
                 << " saved for its backward was modified in place afterwards (version " << now
                 << ", saved at version " << saved_versions_[slot]
                 << "); change a copy (clone()) instead, or change it after backward");
  return t;
}

void Node::release() {
  saved_.clear();
  saved_.shrink_to_fit();
  saved_versions_.clear();
  backward = nullptr;  // frees whatever the function captured
  released_ = true;
}

std::shared_ptr<Node> record(const char* name, const std::vector<Tensor>& outputs,
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
    if (in.grad_fn()) {
      node->next[i].node = in.grad_fn();
      node->next[i].output = in.impl()->output_nr;
    } else {
      node->next[i].leaf = in.impl();
    }
  }
  for (size_t k = 0; k < outputs.size(); ++k) {
    TensorImpl& out = *outputs[k].impl();
    node->outputs.push_back(outputs[k].impl());
    node->output_shapes.push_back(out.shape);
    out.grad_fn = node;
    out.output_nr = static_cast<int>(k);
    out.requires_grad = true;
  }
  return node;
}

std::shared_ptr<Node> record(const char* name, const Tensor& output,
                             const std::vector<Tensor>& inputs) {
  return record(name, std::vector<Tensor>{output}, inputs);
}

namespace {

// True when nobody but this handle sees g's values: no other handle of its TensorImpl and no
// other TensorImpl (a reshape, a saved copy) of its storage.
bool exclusively_owned(const Tensor& g) {
  return g.impl().use_count() == 1 && g.impl()->storage.use_count() == 1;
}

// Adds g into `slot`, a gradient the engine owns: the first arrival is taken as it is; a
// second one adds in place, after copying the first once if someone else still holds it.
void sum_into(Tensor& slot, Tensor&& g) {
  if (!slot.defined()) {
    slot = std::move(g);
    return;
  }
  if (!exclusively_owned(slot)) slot = slot.clone();
  slot.add_(g);
}

// Adds g into the gradient held by impl (a leaf, or a non-leaf that retains its gradient). A
// gradient the user may hold already (impl.grad) accumulates in place, as in PyTorch.
void accumulate_into(TensorImpl& impl, Tensor&& g) {
  if (!impl.grad) {
    impl.grad = (exclusively_owned(g) ? std::move(g) : g.clone()).impl();
  } else {
    Tensor(impl.grad).add_(g);
  }
}

// Runs the grad-ready hooks of a leaf whose last gradient of this backward has arrived. A
// recomputed block's inner backward (checkpoint) hands its gradients to the outer one: only the
// outer accumulation is final.
void grad_ready(const std::shared_ptr<TensorImpl>& leaf) {
  if (!leaf->grad_ready_hooks || g_recomputing > 0) return;
  const Tensor t(leaf);
  for (const auto& hook : *leaf->grad_ready_hooks) hook(t);
}

}  // namespace

void run_backward(const Tensor& root, const Tensor& grad_root, bool retain_graph) {
  NoGradGuard no_grad;
  const std::shared_ptr<Node>& root_node = root.grad_fn();
  if (!root_node) {  // a leaf: its gradient is grad_root itself
    accumulate_into(*root.impl(), Tensor(grad_root));
    grad_ready(root.impl());
    return;
  }
  // Count, for every node reachable from the root, how many edges lead into it (iteratively:
  // graphs of long sequences are deep). A node freed by an earlier backward stops the walk
  // before any gradient has moved.
  std::unordered_map<Node*, int> pending;
  std::unordered_map<TensorImpl*, int> leaf_pending;  // edges into leaves that have hooks
  std::vector<Node*> stack{root_node.get()};
  pending[root_node.get()] = 0;
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    REEL_CHECK(!n->released(),
               "backward: trying to go through the graph a second time at "
                   << n->name
                   << ", whose saved tensors were freed by the first backward; call "
                      "backward(grad, /*retain_graph=*/true) the first time to keep them");
    for (const Edge& e : n->next) {
      if (e.leaf && e.leaf->grad_ready_hooks) ++leaf_pending[e.leaf.get()];
      if (!e.node) continue;
      auto [it, inserted] = pending.emplace(e.node.get(), 0);
      ++it->second;
      if (inserted) stack.push_back(e.node.get());
    }
  }
  // Kahn's order: a node runs once every consumer has handed it its gradients, one slot per
  // output of the node.
  std::unordered_map<Node*, std::vector<Tensor>> grads;
  grads[root_node.get()].resize(root_node->outputs.size());
  grads[root_node.get()][root.impl()->output_nr] = grad_root;
  std::vector<Node*> ready{root_node.get()};
  while (!ready.empty()) {
    Node* n = ready.back();
    ready.pop_back();
    std::vector<Tensor> g_out = std::move(grads[n]);
    grads.erase(n);
    for (size_t k = 0; k < g_out.size(); ++k) {
      if (!g_out[k].defined()) continue;
      if (auto out = n->outputs[k].lock(); out && out->retains_grad)
        accumulate_into(*out, Tensor(g_out[k]));
    }
    REEL_CHECK(n->backward, "autograd: " << n->name << " has no backward");
    std::vector<Tensor> in_grads = n->backward(*n, g_out);
    g_out.clear();  // the upstream gradients may be stolen below when nobody else holds them
    if (!retain_graph) n->release();
    REEL_CHECK(in_grads.size() == n->next.size(),
               "autograd: backward of " << n->name << " returned " << in_grads.size()
                                        << " gradients for " << n->next.size() << " inputs");
    for (size_t i = 0; i < n->next.size(); ++i) {
      const Edge& e = n->next[i];
      if (!e.active()) continue;
      Tensor gi = std::move(in_grads[i]);
      REEL_CHECK(gi.defined() && gi.shape() == n->input_shapes[i],
                 "autograd: backward of " << n->name << " gave input " << i << " a gradient of "
                                          << (gi.defined() ? shape_str(gi.shape()) : "nothing")
                                          << ", expected " << shape_str(n->input_shapes[i]));
      if (e.leaf) {
        accumulate_into(*e.leaf, std::move(gi));
        if (e.leaf->grad_ready_hooks && --leaf_pending[e.leaf.get()] == 0) grad_ready(e.leaf);
        continue;
      }
      Node* m = e.node.get();
      std::vector<Tensor>& slots = grads[m];
      if (slots.empty()) slots.resize(m->outputs.size());
      sum_into(slots[e.output], std::move(gi));
      if (--pending[m] == 0) ready.push_back(m);
    }
  }
}

bool recomputing() { return g_recomputing > 0; }

Tensor checkpoint(const std::function<Tensor(const Tensor&)>& fn, const Tensor& x,
                  const std::vector<Tensor>& params) {
  std::vector<Tensor> inputs{x};
  inputs.insert(inputs.end(), params.begin(), params.end());
  if (!any_requires_grad(inputs)) return fn(x);
  Tensor y;
  {
    NoGradGuard no_grad;
    y = fn(x);
  }
  auto node = record("checkpoint", y, inputs);
  node->save(x);
  // The parameters are leaves owned by a module; holding handles to them here keeps no
  // activation alive.
  node->backward = [fn, params](Node& self, const std::vector<Tensor>& g) {
    std::vector<Tensor> grads(self.next.size());
    Tensor xr = self.saved(0).detach();
    if (self.needs_grad(0)) xr.requires_grad_(true);
    // The recomputed graph's backward accumulates into the parameters' own grad(): set theirs
    // aside, take what this backward adds as the returned gradients, and put them back (also
    // when fn throws), so that the engine adds them as it adds any node's.
    std::vector<std::shared_ptr<TensorImpl>> kept(params.size());
    for (size_t i = 0; i < params.size(); ++i) kept[i] = std::move(params[i].impl()->grad);
    struct Restore {
      const std::vector<Tensor>& params;
      std::vector<std::shared_ptr<TensorImpl>>& kept;
      ~Restore() {
        for (size_t i = 0; i < params.size(); ++i) params[i].impl()->grad = std::move(kept[i]);
      }
    } restore{params, kept};
    {
      EnableGradGuard grad_on;
      ++g_recomputing;
      struct Leave {
        ~Leave() { --g_recomputing; }
      } leave;
      Tensor yr = fn(xr);
      if (g[0].defined() && yr.requires_grad()) run_backward(yr, g[0]);
    }
    auto take = [](const Tensor& t, const Shape& shape) {
      Tensor gt = t.grad();
      return gt.defined() ? gt : Tensor::zeros(shape, t.device());
    };
    if (self.needs_grad(0)) grads[0] = take(xr, xr.shape());
    for (size_t i = 0; i < params.size(); ++i) {
      if (!self.needs_grad(i + 1)) continue;
      grads[i + 1] = take(params[i], params[i].shape());
      params[i].impl()->grad.reset();
    }
    return grads;
  };
  return y;
}

}  // namespace reel
