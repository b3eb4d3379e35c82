#pragma once
// SGD, Adam and AdamW with torch.optim's semantics: parameter groups with their own
// hyper-parameters, per-parameter state created at the first step that has a gradient, and a
// state_dict() to resume from. One step of one parameter is one fused kernel (kernels/optim.h)
// that updates the parameter in place (bumping its storage's version) and its state.
//
// Hyper-parameters are given as double but act as float32, as the parameters they update:
// each step rounds them to float first (and computes the bias corrections in double from the
// rounded values). state_dict() stores them as float32, so a run resumed from it repeats the
// uninterrupted run bit for bit.
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "reel/core/serialize.h"
#include "reel/core/tensor.h"

namespace reel {

struct SGDOptions {
  double lr = 1e-3;
  double momentum = 0.0;
  double dampening = 0.0;
  double weight_decay = 0.0;  // L2: weight_decay * p is added to the gradient
  bool nesterov = false;      // needs momentum > 0 and dampening == 0
};

struct AdamOptions {
  double lr = 1e-3;
  double beta1 = 0.9, beta2 = 0.999;  // each in [0, 1)
  double eps = 1e-8;
  // Adam: L2 added to the gradient. AdamW: decoupled, p *= 1 - lr * weight_decay; AdamW's
  // constructors default it to 1e-2 (AdamWOptions) as torch.optim.AdamW.
  double weight_decay = 0.0;
  bool amsgrad = false;
};

// AdamOptions with torch.optim.AdamW's default weight decay.
struct AdamWOptions : AdamOptions {
  AdamWOptions() { weight_decay = 1e-2; }
};

// One parameter group: its parameters (leaf tensors) and its own hyper-parameters.
template <class Options>
struct ParamGroup {
  std::vector<Tensor> params;
  Options options;
};

// What learning-rate schedules, gradient clipping and training loops need of any optimizer.
class Optimizer {
 public:
  virtual ~Optimizer() = default;
  Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  // "SGD", "Adam" or "AdamW".
  virtual const char* name() const = 0;
  // Updates every parameter that has a gradient (the others are skipped, as PyTorch skips
  // them). Throws reel::Error on an invalid hyper-parameter (they can be changed through
  // param_groups() between steps) or a gradient whose shape or device differs.
  virtual void step() = 0;
  // Drops (set_to_none) or zeroes the gradient of every parameter of every group.
  void zero_grad(bool set_to_none = true);

  virtual size_t num_groups() const = 0;
  // The parameters of group g. Every g below throws reel::Error when g >= num_groups().
  virtual const std::vector<Tensor>& group_params(size_t g) const = 0;
  virtual double lr(size_t g) const = 0;
  virtual void set_lr(size_t g, double lr) = 0;
  // What OneCycleLR cycles: SGD's momentum, Adam's beta1.
  virtual double momentum(size_t g) const = 0;
  virtual void set_momentum(size_t g, double momentum) = 0;

  // The state to resume from, under stable keys (handles sharing the optimizer's buffers):
  //   optimizer.<name>                  0-d, 1: which optimizer wrote it
  //   param_groups.<g>.params           [n] the group's parameter indices, counted over the
  //                                     groups in order (0, 1, ... across the groups)
  //   param_groups.<g>.<hyper-parameter>  0-d each (lr, momentum, ...; booleans as 0 or 1)
  //   state.<i>.<buffer>                the state of parameter i: momentum_buffer (SGD);
  //                                     exp_avg, exp_avg_sq, max_exp_avg_sq (Adam, AdamW)
  //   state.<i>.step                    0-d, Adam's step count (exact up to 2^24, as torch's
  //                                     float32 step)
  // Parameters without state (no step yet) have no state.<i> keys.
  virtual TensorMap state_dict() const = 0;
  // Takes a state_dict() of the same optimizer over parameters of the same shapes in the same
  // groups (any device: the state is copied onto each parameter's device). Throws one
  // reel::Error listing everything that does not fit (another optimizer, missing, unexpected
  // or malformed keys, wrong shapes, invalid hyper-parameters) and changes nothing then.
  virtual void load_state_dict(const TensorMap& state) = 0;

 protected:
  static void check_group_index(const char* who, size_t g, size_t n);
};

// Parameter groups of one Options type, per-parameter state, state_dict(). SGD, Adam and
// AdamW derive from it.
template <class Options>
class GroupedOptimizer : public Optimizer {
 public:
  size_t num_groups() const override { return groups_.size(); }
  const std::vector<Tensor>& group_params(size_t g) const override;
  double lr(size_t g) const override;
  void set_lr(size_t g, double lr) override;

  // The groups, their parameters and hyper-parameters; a change is checked at the next step().
  std::vector<ParamGroup<Options>>& param_groups() { return groups_; }
  const std::vector<ParamGroup<Options>>& param_groups() const { return groups_; }
  // Adds a group. Throws reel::Error on an invalid hyper-parameter, an undefined or non-leaf
  // parameter, or a parameter that is already in a group.
  void add_param_group(ParamGroup<Options> group);
  // Adds a group with the optimizer's default hyper-parameters.
  void add_param_group(std::vector<Tensor> params) {
    add_param_group({std::move(params), defaults_});
  }
  const Options& defaults() const { return defaults_; }

  TensorMap state_dict() const override;
  void load_state_dict(const TensorMap& state) override;

 protected:
  // Per parameter: named buffers shaped like it, and a step count where the optimizer has one.
  struct ParamState {
    TensorMap buffers;
    int64_t step = 0;
  };

  explicit GroupedOptimizer(Options defaults) : defaults_(defaults) {}
  // Adds the groups given to a constructor (derived constructors call it, once validate() is
  // theirs); they must hold at least one parameter in all, as torch.optim asks.
  void add_groups(std::vector<ParamGroup<Options>> groups);
  // Throws reel::Error naming `who`, the group and the hyper-parameter that is invalid.
  virtual void validate(const Options& o, const std::string& who) const = 0;
  // The buffers this optimizer keeps per parameter, and whether it counts steps.
  virtual std::vector<std::string> buffer_names() const = 0;
  virtual bool counts_steps() const = 0;

  // The state of p (created empty when it has none).
  ParamState& state_of(const Tensor& p) { return state_[p.impl().get()]; }
  // The gradient of p, checked against p; undefined when p has none.
  Tensor checked_grad(const Tensor& p, size_t g) const;
  // buffers[name] on p's device and of p's shape, created as zeros (or moved) when needed.
  // Sets *created when it was created.
  Tensor& buffer(ParamState& s, const std::string& name, const Tensor& p, bool* created = nullptr);

  std::vector<ParamGroup<Options>> groups_;
  Options defaults_;
  std::unordered_map<const TensorImpl*, ParamState> state_;
};

class SGD : public GroupedOptimizer<SGDOptions> {
 public:
  // One group of params with `options`.
  explicit SGD(std::vector<Tensor> params, SGDOptions options = {});
  // Several groups; `defaults` is what add_param_group(params) uses later.
  explicit SGD(std::vector<ParamGroup<SGDOptions>> groups, SGDOptions defaults = {});
  const char* name() const override { return "SGD"; }
  void step() override;
  double momentum(size_t g) const override;
  void set_momentum(size_t g, double momentum) override;

 protected:
  void validate(const SGDOptions& o, const std::string& who) const override;
  std::vector<std::string> buffer_names() const override { return {"momentum_buffer"}; }
  bool counts_steps() const override { return false; }
};

class Adam : public GroupedOptimizer<AdamOptions> {
 public:
  explicit Adam(std::vector<Tensor> params, AdamOptions options = {});
  explicit Adam(std::vector<ParamGroup<AdamOptions>> groups, AdamOptions defaults = {});
  const char* name() const override { return decoupled_ ? "AdamW" : "Adam"; }
  void step() override;
  double momentum(size_t g) const override;
  void set_momentum(size_t g, double beta1) override;

 protected:
  Adam(std::vector<ParamGroup<AdamOptions>> groups, AdamOptions defaults, bool decoupled);
  void validate(const AdamOptions& o, const std::string& who) const override;
  std::vector<std::string> buffer_names() const override {
    return {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"};
  }
  bool counts_steps() const override { return true; }

 private:
  bool decoupled_ = false;
};

// Adam with decoupled weight decay (torch.optim.AdamW).
class AdamW : public Adam {
 public:
  explicit AdamW(std::vector<Tensor> params, AdamOptions options = AdamWOptions());
  explicit AdamW(std::vector<ParamGroup<AdamOptions>> groups,
                 AdamOptions defaults = AdamWOptions());
};

// Splits named parameters (Module::named_parameters()) into two groups: group 0, the
// parameters of two or more dimensions (convolution, linear and LSTM weights), with `options`;
// group 1, the others (biases, BatchNorm's weight and bias) with `options` but no weight decay.
// Either group may be empty.
template <class Options>
std::vector<ParamGroup<Options>> weight_decay_groups(const NamedTensors& named,
                                                     const Options& options) {
  ParamGroup<Options> decay{{}, options}, no_decay{{}, options};
  no_decay.options.weight_decay = 0.0;
  for (const auto& [name, p] : named) (p.dim() >= 2 ? decay : no_decay).params.push_back(p);
  return {decay, no_decay};
}

}  // namespace reel
