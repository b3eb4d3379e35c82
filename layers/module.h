#pragma once
// Module: the base of every layer. It holds named parameters, buffers and children, registered
// in order with PyTorch's names, so that state_dict() keys are torch's ("lstm.weight_ih_l0",
// "cnn.layer1.0.bn1.running_mean") and checkpoints move both ways without renaming. A module
// stays thin: bookkeeping here, the math in one call into an op.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "reel/core/serialize.h"
#include "reel/core/tensor.h"

namespace reel {

class Module {
 public:
  virtual ~Module() = default;
  Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // Every parameter of this module and its children, depth first in registration order, named
  // "child.grandchild.name" as PyTorch's named_parameters().
  NamedTensors named_parameters() const;
  std::vector<Tensor> parameters() const;
  // Buffers (running statistics and the like), named the same way.
  NamedTensors named_buffers() const;
  // The direct children, in registration order.
  const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& children() const {
    return children_;
  }

  // Parameters and buffers by name (handles sharing storage with the module's tensors).
  TensorMap state_dict() const;
  // Copies each tensor of `state` into the parameter or buffer of the same name (any device;
  // values converted to the module's device). Throws one reel::Error listing every missing
  // key, every unexpected key (those two only when strict) and every key whose shape differs,
  // and changes nothing then.
  void load_state_dict(const TensorMap& state, bool strict = true);

  // Training mode (dropout active, batch statistics) or evaluation, for this module and its
  // children.
  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }

  // Moves every parameter and buffer to `device` in place: handles held elsewhere (an
  // optimizer's) see the new storage. Gradients are dropped.
  void to(const Device& device);
  // Drops (set_to_none) or zeroes every parameter's gradient.
  void zero_grad(bool set_to_none = true);

 protected:
  // Registers a parameter (it gets requires_grad) and returns a handle to it.
  Tensor register_parameter(const std::string& name, Tensor value);
  Tensor register_buffer(const std::string& name, Tensor value);
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> child) {
    add_child(name, child);
    return child;
  }

 private:
  void add_child(const std::string& name, std::shared_ptr<Module> child);
  void collect(const std::string& prefix, bool params, NamedTensors& out) const;

  NamedTensors params_, buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
};

}  // namespace reel
