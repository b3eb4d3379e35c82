#include "reel/layers/module.h"

#include <algorithm>
#include <sstream>

#include "reel/core/autograd.h"
#include "reel/core/error.h"

namespace reel {

namespace {

void check_name(const char* what, const std::string& name, const NamedTensors& params,
                const NamedTensors& buffers) {
  REEL_CHECK(!name.empty() && name.find('.') == std::string::npos,
             "Module: " << what << " name '" << name << "' must be non-empty and hold no '.'");
  auto taken = [&](const NamedTensors& v) {
    return std::any_of(v.begin(), v.end(), [&](const auto& p) { return p.first == name; });
  };
  REEL_CHECK(!taken(params) && !taken(buffers),
             "Module: " << what << " name '" << name << "' is registered already");
}

}  // namespace

Tensor Module::register_parameter(const std::string& name, Tensor value) {
  check_name("parameter", name, params_, buffers_);
  REEL_CHECK(value.defined(), "Module: parameter '" << name << "' is an undefined tensor");
  if (!value.is_leaf()) value = value.detach();
  value.requires_grad_(true);
  params_.emplace_back(name, value);
  return value;
}

Tensor Module::register_buffer(const std::string& name, Tensor value) {
  check_name("buffer", name, params_, buffers_);
  REEL_CHECK(value.defined(), "Module: buffer '" << name << "' is an undefined tensor");
  buffers_.emplace_back(name, value);
  return value;
}

void Module::add_child(const std::string& name, std::shared_ptr<Module> child) {
  REEL_CHECK(child != nullptr, "Module: child '" << name << "' is null");
  REEL_CHECK(!name.empty() && name.find('.') == std::string::npos,
             "Module: child name '" << name << "' must be non-empty and hold no '.'");
  for (const auto& c : children_)
    REEL_CHECK(c.first != name, "Module: child '" << name << "' is registered already");
  children_.emplace_back(name, std::move(child));
}

void Module::collect(const std::string& prefix, bool params, NamedTensors& out) const {
  for (const auto& [name, t] : params ? params_ : buffers_) out.emplace_back(prefix + name, t);
  for (const auto& [name, child] : children_) child->collect(prefix + name + ".", params, out);
}

NamedTensors Module::named_parameters() const {
  NamedTensors out;
  collect("", true, out);
  return out;
}

std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  for (auto& p : named_parameters()) out.push_back(p.second);
  return out;
}

NamedTensors Module::named_buffers() const {
  NamedTensors out;
  collect("", false, out);
  return out;
}

TensorMap Module::state_dict() const {
  TensorMap out;
  for (auto& [n, t] : named_parameters()) out[n] = t;
  for (auto& [n, t] : named_buffers()) out[n] = t;
  return out;
}

void Module::load_state_dict(const TensorMap& state, bool strict) {
  const TensorMap mine = state_dict();
  std::vector<std::string> missing, unexpected, mismatched;
  for (const auto& [name, t] : mine) {
    auto it = state.find(name);
    if (it == state.end()) {
      missing.push_back(name);
    } else if (!it->second.defined() || it->second.shape() != t.shape()) {
      mismatched.push_back(name + " (checkpoint " +
                           (it->second.defined() ? shape_str(it->second.shape()) : "undefined") +
                           ", module " + shape_str(t.shape()) + ")");
    }
  }
  for (const auto& [name, t] : state)
    if (!mine.count(name)) unexpected.push_back(name);
  const bool bad = !mismatched.empty() || (strict && (!missing.empty() || !unexpected.empty()));
  if (bad) {
    std::ostringstream m;
    m << "load_state_dict: the checkpoint does not fit this module";
    auto list = [&m](const char* what, const std::vector<std::string>& v) {
      if (v.empty()) return;
      m << "; " << what << ": ";
      for (size_t i = 0; i < v.size(); ++i) m << (i ? ", " : "") << v[i];
    };
    if (strict) list("missing keys", missing);
    if (strict) list("unexpected keys", unexpected);
    list("shapes that differ", mismatched);
    throw Error(m.str());
  }
  NoGradGuard guard;
  for (const auto& [name, t] : mine) {
    auto it = state.find(name);
    if (it == state.end()) continue;
    Tensor dst = t;
    dst.copy_(it->second.device() == t.device() ? it->second : it->second.to(t.device()));
  }
}

void Module::train(bool on) {
  training_ = on;
  for (auto& c : children_) c.second->train(on);
}

void Module::to(const Device& device) {
  auto move = [&device](NamedTensors& v) {
    for (auto& [name, t] : v) {
      if (t.device() == device) continue;
      Tensor moved = t.detach().to(device);
      // A graph that saved the old storage must not run backward on it: mark it changed.
      mark_modified(t);
      t.impl()->storage = moved.impl()->storage;  // every handle of t sees the new storage
      t.impl()->grad.reset();
    }
  };
  move(params_);
  move(buffers_);
  for (auto& c : children_) c.second->to(device);
}

void Module::zero_grad(bool set_to_none) {
  for (auto& [name, p] : named_parameters()) p.zero_grad(set_to_none);
}

}  // namespace reel
