#include "reel/optim/optimizer.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <sstream>
#include <type_traits>

#include "reel/core/autograd.h"
#include "reel/core/dispatch.h"
#include "reel/kernels/optim.h"

namespace reel {

namespace {

// Every hyper-parameter of an Options type with its state_dict name: f(name, double& or bool&).
template <class F>
void visit_fields(SGDOptions& o, F&& f) {
  f("lr", o.lr);
  f("momentum", o.momentum);
  f("dampening", o.dampening);
  f("weight_decay", o.weight_decay);
  f("nesterov", o.nesterov);
}

template <class F>
void visit_fields(AdamOptions& o, F&& f) {
  f("lr", o.lr);
  f("beta1", o.beta1);
  f("beta2", o.beta2);
  f("eps", o.eps);
  f("weight_decay", o.weight_decay);
  f("amsgrad", o.amsgrad);
}

// A hyper-parameter as the kernels see it.
float as_float(double v) { return static_cast<float>(v); }
// The float value back in double: what the host's per-step scalars are computed from.
double rounded(double v) { return static_cast<double>(static_cast<float>(v)); }

bool is_scalar_tensor(const Tensor& t) { return t.defined() && t.numel() == 1; }

// "state.12.exp_avg" -> (12, "exp_avg"); false when key is not of that form.
bool parse_indexed(const std::string& key, const std::string& prefix, size_t* index,
                   std::string* rest) {
  if (key.compare(0, prefix.size(), prefix) != 0) return false;
  const size_t dot = key.find('.', prefix.size());
  if (dot == std::string::npos || dot == prefix.size()) return false;
  const std::string digits = key.substr(prefix.size(), dot - prefix.size());
  for (char c : digits)
    if (c < '0' || c > '9') return false;
  if (digits.size() > 9) return false;
  *index = std::stoul(digits);
  *rest = key.substr(dot + 1);
  return !rest->empty();
}

}  // namespace

// ---- Optimizer ----

void Optimizer::zero_grad(bool set_to_none) {
  for (size_t g = 0; g < num_groups(); ++g)
    for (const Tensor& p : group_params(g)) p.zero_grad(set_to_none);
}

void Optimizer::check_group_index(const char* who, size_t g, size_t n) {
  REEL_CHECK(g < n, who << ": parameter group " << g << " does not exist (the optimizer has " << n
                        << (n == 1 ? " group)" : " groups)"));
}

// ---- GroupedOptimizer ----

template <class Options>
void GroupedOptimizer<Options>::add_groups(std::vector<ParamGroup<Options>> groups) {
  size_t total = 0;
  for (const auto& g : groups) total += g.params.size();
  REEL_CHECK(total > 0, name() << ": got an empty parameter list");
  for (auto& g : groups) add_param_group(std::move(g));
}

template <class Options>
const std::vector<Tensor>& GroupedOptimizer<Options>::group_params(size_t g) const {
  check_group_index(name(), g, groups_.size());
  return groups_[g].params;
}

template <class Options>
double GroupedOptimizer<Options>::lr(size_t g) const {
  check_group_index(name(), g, groups_.size());
  return groups_[g].options.lr;
}

template <class Options>
void GroupedOptimizer<Options>::set_lr(size_t g, double lr) {
  check_group_index(name(), g, groups_.size());
  REEL_CHECK(lr >= 0.0,
             name() << ": invalid learning rate " << lr << " for group " << g << " (must be >= 0)");
  groups_[g].options.lr = lr;
}

template <class Options>
void GroupedOptimizer<Options>::add_param_group(ParamGroup<Options> group) {
  const std::string who =
      std::string(name()) + ": parameter group " + std::to_string(groups_.size());
  validate(group.options, who);
  std::set<const TensorImpl*> seen;
  for (const auto& g : groups_)
    for (const Tensor& p : g.params) seen.insert(p.impl().get());
  for (size_t i = 0; i < group.params.size(); ++i) {
    const Tensor& p = group.params[i];
    REEL_CHECK(p.defined(), who << ": parameter " << i << " is an undefined tensor");
    REEL_CHECK(p.is_leaf(), who << ": parameter " << i << " of shape " << shape_str(p.shape())
                                << " is not a leaf tensor (an optimizer updates leaves)");
    REEL_CHECK(seen.insert(p.impl().get()).second,
               who << ": parameter " << i << " of shape " << shape_str(p.shape())
                   << " appears in more than one parameter group (or twice in this one)");
  }
  groups_.push_back(std::move(group));
}

template <class Options>
Tensor GroupedOptimizer<Options>::checked_grad(const Tensor& p, size_t g) const {
  Tensor grad = p.grad();
  if (!grad.defined()) return grad;
  REEL_CHECK(grad.shape() == p.shape() && grad.device() == p.device(),
             name() << ".step: a parameter of group " << g << " of shape " << shape_str(p.shape())
                    << " on " << p.device().str() << " has a gradient of shape "
                    << shape_str(grad.shape()) << " on " << grad.device().str());
  return grad;
}

template <class Options>
Tensor& GroupedOptimizer<Options>::buffer(ParamState& s, const std::string& name, const Tensor& p,
                                          bool* created) {
  Tensor& b = s.buffers[name];
  if (created != nullptr) *created = !b.defined();
  if (!b.defined()) {
    b = Tensor::zeros(p.shape(), p.device());
  } else if (b.device() != p.device()) {  // the module moved since (Module::to)
    b = b.to(p.device()).detach();
  }
  return b;
}

template <class Options>
TensorMap GroupedOptimizer<Options>::state_dict() const {
  TensorMap out;
  out["optimizer." + std::string(name())] = Tensor::scalar(1.0f);
  int64_t index = 0;
  for (size_t g = 0; g < groups_.size(); ++g) {
    const std::string prefix = "param_groups." + std::to_string(g) + ".";
    std::vector<float> ids;
    for (const Tensor& p : groups_[g].params) {
      ids.push_back(static_cast<float>(index));
      auto it = state_.find(p.impl().get());
      if (it != state_.end()) {
        const std::string sp = "state." + std::to_string(index) + ".";
        for (const auto& [k, v] : it->second.buffers)
          if (v.defined()) out[sp + k] = v;
        if (counts_steps()) out[sp + "step"] = Tensor::scalar(static_cast<float>(it->second.step));
      }
      ++index;
    }
    out[prefix + "params"] = Tensor::from_vector(ids, {static_cast<int64_t>(ids.size())});
    Options o = groups_[g].options;
    visit_fields(o, [&](const char* field, auto& v) {
      out[prefix + field] = Tensor::scalar(static_cast<float>(v));
    });
  }
  return out;
}

template <class Options>
void GroupedOptimizer<Options>::load_state_dict(const TensorMap& state) {
  std::vector<std::string> problems;
  auto problem = [&](const std::string& s) { problems.push_back(s); };
  std::set<std::string> used;

  // Which optimizer wrote it.
  const std::string marker = "optimizer." + std::string(name());
  if (state.count(marker)) {
    used.insert(marker);
  } else {
    std::string other;
    for (const auto& [k, v] : state)
      if (k.rfind("optimizer.", 0) == 0) other = k.substr(10);
    problem(other.empty() ? "no key '" + marker + "' (not an optimizer state)"
                          : "it is the state of " + other + ", not of " + name());
    if (!other.empty()) used.insert("optimizer." + other);
  }

  // Groups: the parameter indices and every hyper-parameter.
  std::vector<Options> options(groups_.size());
  std::vector<const Tensor*> params;  // by global index
  for (size_t g = 0; g < groups_.size(); ++g) {
    const std::string prefix = "param_groups." + std::to_string(g) + ".";
    const int64_t first = static_cast<int64_t>(params.size());
    for (const Tensor& p : groups_[g].params) params.push_back(&p);
    auto it = state.find(prefix + "params");
    if (it == state.end()) {
      problem("missing '" + prefix + "params'");
    } else {
      used.insert(it->first);
      const std::vector<float> ids = it->second.to_vector();
      bool ok = static_cast<size_t>(it->second.numel()) == groups_[g].params.size();
      for (size_t i = 0; ok && i < ids.size(); ++i) ok = ids[i] == static_cast<float>(first + i);
      if (!ok) {
        std::ostringstream os;
        os << "'" << prefix << "params' holds " << it->second.numel()
           << " parameter indices; group " << g << " has " << groups_[g].params.size()
           << " parameters, indices " << first << " to " << first + groups_[g].params.size() - 1;
        problem(os.str());
      }
    }
    options[g] = groups_[g].options;
    bool all = true;
    visit_fields(options[g], [&](const char* field, auto& v) {
      auto f = state.find(prefix + field);
      if (f == state.end()) {
        problem("missing '" + prefix + field + "'");
        all = false;
        return;
      }
      used.insert(f->first);
      if (!is_scalar_tensor(f->second)) {
        problem("'" + prefix + field + "' has shape " + shape_str(f->second.shape()) +
                ", expected one value");
        all = false;
        return;
      }
      using T = std::decay_t<decltype(v)>;
      const float x = f->second.item();
      if constexpr (std::is_same_v<T, bool>) {
        if (x != 0.0f && x != 1.0f) {
          problem("'" + prefix + field + "' is " + std::to_string(x) + ", expected 0 or 1");
          all = false;
        }
        v = x != 0.0f;
      } else {
        v = static_cast<double>(x);
      }
    });
    if (all) {
      try {
        validate(options[g], "group " + std::to_string(g));
      } catch (const Error& e) {
        problem(e.what());
      }
    }
  }

  // Per-parameter state.
  const std::vector<std::string> names = buffer_names();
  struct Entry {
    size_t index;
    std::string field;
    const Tensor* value;
  };
  std::vector<Entry> entries;
  for (const auto& [k, v] : state) {
    size_t i = 0;
    std::string field;
    if (!parse_indexed(k, "state.", &i, &field)) continue;
    used.insert(k);
    const bool is_step = counts_steps() && field == "step";
    if (!is_step && std::find(names.begin(), names.end(), field) == names.end()) {
      problem("unexpected key '" + k + "'");
      continue;
    }
    if (i >= params.size()) {
      problem("'" + k + "' is for parameter " + std::to_string(i) + ", but there are only " +
              std::to_string(params.size()) + " parameters");
      continue;
    }
    if (is_step) {
      if (!is_scalar_tensor(v) || !(v.item() >= 0.0f) || v.item() != std::floor(v.item())) {
        problem("'" + k + "' must be one integer >= 0");
        continue;
      }
    } else if (v.shape() != params[i]->shape()) {
      problem("'" + k + "' has shape " + shape_str(v.shape()) + ", parameter " + std::to_string(i) +
              " has shape " + shape_str(params[i]->shape()));
      continue;
    }
    entries.push_back({i, field, &v});
  }
  for (const auto& [k, v] : state)
    if (!used.count(k)) problem("unexpected key '" + k + "'");

  if (!problems.empty()) {
    std::ostringstream os;
    os << name() << ".load_state_dict: the state does not fit this optimizer (" << groups_.size()
       << (groups_.size() == 1 ? " group, " : " groups, ") << params.size() << " parameters):";
    for (const std::string& p : problems) os << "\n  " << p;
    throw Error(os.str());
  }

  // Everything fits: apply.
  NoGradGuard no_grad;
  for (size_t g = 0; g < groups_.size(); ++g) groups_[g].options = options[g];
  for (const Tensor* p : params) state_.erase(p->impl().get());
  for (const Entry& e : entries) {
    const Tensor& p = *params[e.index];
    ParamState& s = state_[p.impl().get()];
    if (e.field == "step") {
      s.step = static_cast<int64_t>(e.value->item());
    } else {
      Tensor b = Tensor::empty(p.shape(), p.device());
      b.copy_(*e.value);
      s.buffers[e.field] = b;
    }
  }
}

template class GroupedOptimizer<SGDOptions>;
template class GroupedOptimizer<AdamOptions>;

// ---- SGD ----

SGD::SGD(std::vector<Tensor> params, SGDOptions options)
    : SGD(std::vector<ParamGroup<SGDOptions>>{{std::move(params), options}}, options) {}

SGD::SGD(std::vector<ParamGroup<SGDOptions>> groups, SGDOptions defaults)
    : GroupedOptimizer(defaults) {
  add_groups(std::move(groups));
}

void SGD::validate(const SGDOptions& o, const std::string& who) const {
  REEL_CHECK(o.lr >= 0.0, who << ": invalid learning rate " << o.lr << " (must be >= 0)");
  REEL_CHECK(o.momentum >= 0.0, who << ": invalid momentum " << o.momentum << " (must be >= 0)");
  REEL_CHECK(o.weight_decay >= 0.0,
             who << ": invalid weight_decay " << o.weight_decay << " (must be >= 0)");
  REEL_CHECK(std::isfinite(o.dampening), who << ": invalid dampening " << o.dampening);
  REEL_CHECK(!o.nesterov || (o.momentum > 0.0 && o.dampening == 0.0),
             who << ": Nesterov momentum needs momentum > 0 and dampening 0 (got momentum "
                 << o.momentum << ", dampening " << o.dampening << ")");
}

double SGD::momentum(size_t g) const {
  check_group_index(name(), g, groups_.size());
  return groups_[g].options.momentum;
}

void SGD::set_momentum(size_t g, double momentum) {
  check_group_index(name(), g, groups_.size());
  REEL_CHECK(momentum >= 0.0, "SGD: invalid momentum " << momentum << " for group " << g);
  groups_[g].options.momentum = momentum;
}

void SGD::step() {
  NoGradGuard no_grad;
  for (size_t g = 0; g < groups_.size(); ++g) {
    const SGDOptions& o = groups_[g].options;
    validate(o, "SGD.step: parameter group " + std::to_string(g));
    math::SgdHyper h;
    h.lr = as_float(o.lr);
    h.momentum = as_float(o.momentum);
    h.dampening = as_float(o.dampening);
    h.weight_decay = as_float(o.weight_decay);
    h.nesterov = o.nesterov;
    for (const Tensor& p : groups_[g].params) {
      const Tensor grad = checked_grad(p, g);
      if (!grad.defined()) continue;
      float* buf = nullptr;
      h.first_step = false;
      if (h.momentum != 0.0f) {
        ParamState& s = state_of(p);
        buf = buffer(s, "momentum_buffer", p, &h.first_step).data();
      }
      const Device dev = p.device();
      REEL_KERNEL(dev, sgd_step, p.data(), grad.data(), buf, p.numel(), h);
      mark_modified(p);
    }
  }
}

// ---- Adam, AdamW ----

Adam::Adam(std::vector<Tensor> params, AdamOptions options)
    : Adam(std::vector<ParamGroup<AdamOptions>>{{std::move(params), options}}, options, false) {}

Adam::Adam(std::vector<ParamGroup<AdamOptions>> groups, AdamOptions defaults)
    : Adam(std::move(groups), defaults, false) {}

Adam::Adam(std::vector<ParamGroup<AdamOptions>> groups, AdamOptions defaults, bool decoupled)
    : GroupedOptimizer(defaults), decoupled_(decoupled) {
  add_groups(std::move(groups));
}

AdamW::AdamW(std::vector<Tensor> params, AdamOptions options)
    : Adam(std::vector<ParamGroup<AdamOptions>>{{std::move(params), options}}, options, true) {}

AdamW::AdamW(std::vector<ParamGroup<AdamOptions>> groups, AdamOptions defaults)
    : Adam(std::move(groups), defaults, true) {}

void Adam::validate(const AdamOptions& o, const std::string& who) const {
  REEL_CHECK(o.lr >= 0.0, who << ": invalid learning rate " << o.lr << " (must be >= 0)");
  REEL_CHECK(o.eps >= 0.0, who << ": invalid eps " << o.eps << " (must be >= 0)");
  REEL_CHECK(o.beta1 >= 0.0 && o.beta1 < 1.0,
             who << ": invalid beta1 " << o.beta1 << " (must be in [0, 1))");
  REEL_CHECK(o.beta2 >= 0.0 && o.beta2 < 1.0,
             who << ": invalid beta2 " << o.beta2 << " (must be in [0, 1))");
  REEL_CHECK(o.weight_decay >= 0.0,
             who << ": invalid weight_decay " << o.weight_decay << " (must be >= 0)");
}

double Adam::momentum(size_t g) const {
  check_group_index(name(), g, groups_.size());
  return groups_[g].options.beta1;
}

void Adam::set_momentum(size_t g, double beta1) {
  check_group_index(name(), g, groups_.size());
  REEL_CHECK(beta1 >= 0.0 && beta1 < 1.0,
             name() << ": invalid beta1 " << beta1 << " for group " << g << " (must be in [0, 1))");
  groups_[g].options.beta1 = beta1;
}

void Adam::step() {
  NoGradGuard no_grad;
  for (size_t g = 0; g < groups_.size(); ++g) {
    const AdamOptions& o = groups_[g].options;
    validate(o, std::string(name()) + ".step: parameter group " + std::to_string(g));
    const double lr = rounded(o.lr), wd = rounded(o.weight_decay);
    const double beta1 = rounded(o.beta1), beta2 = rounded(o.beta2);
    math::AdamHyper h;
    h.beta1 = as_float(beta1);
    h.beta2 = as_float(beta2);
    h.eps = as_float(o.eps);
    h.amsgrad = o.amsgrad;
    if (decoupled_) {
      h.weight_decay = 0.0f;
      h.decay_factor = as_float(1.0 - lr * wd);
    } else {
      h.weight_decay = as_float(wd);
      h.decay_factor = 1.0f;
    }
    for (const Tensor& p : groups_[g].params) {
      const Tensor grad = checked_grad(p, g);
      if (!grad.defined()) continue;
      ParamState& s = state_of(p);
      float* m = buffer(s, "exp_avg", p).data();
      float* v = buffer(s, "exp_avg_sq", p).data();
      float* vmax = o.amsgrad ? buffer(s, "max_exp_avg_sq", p).data() : nullptr;
      const double t = static_cast<double>(++s.step);
      h.step_size = as_float(lr / (1.0 - std::pow(beta1, t)));
      h.bias_correction2_sqrt = as_float(std::sqrt(1.0 - std::pow(beta2, t)));
      const Device dev = p.device();
      REEL_KERNEL(dev, adam_step, p.data(), grad.data(), m, v, vmax, p.numel(), h);
      mark_modified(p);
    }
  }
}

}  // namespace reel
