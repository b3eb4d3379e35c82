#include "reel/optim/clip_grad.h"

#include <cmath>
#include <string>

#include "reel/core/autograd.h"
#include "reel/core/ops.h"

namespace reel {

namespace {

// The norm_type-norm of one gradient.
double grad_norm(const Tensor& g, double norm_type) {
  if (g.numel() == 0) return 0.0;
  if (norm_type == 2.0) return std::sqrt(static_cast<double>(sum(g * g).item()));
  const std::vector<float> v = g.to_vector();
  double acc = 0.0;
  if (std::isinf(norm_type)) {
    for (float x : v) {
      const double a = std::fabs(static_cast<double>(x));
      if (std::isnan(a)) return a;
      acc = std::max(acc, a);
    }
    return acc;
  }
  for (float x : v) acc += std::pow(std::fabs(static_cast<double>(x)), norm_type);
  return std::pow(acc, 1.0 / norm_type);
}

std::string describe_nonfinite(const std::string& name, const Tensor& p, double norm) {
  return name + " of shape " + shape_str(p.shape()) + " (its gradient's norm is " +
         (std::isnan(norm) ? "nan" : "inf") + ")";
}

}  // namespace

double clip_grad_norm(const NamedTensors& params, double max_norm, double norm_type,
                      bool error_if_nonfinite) {
  REEL_CHECK(norm_type > 0.0 && !std::isnan(norm_type),
             "clip_grad_norm: norm_type " << norm_type << " must be > 0 (or inf)");
  REEL_CHECK(max_norm >= 0.0, "clip_grad_norm: max_norm " << max_norm << " must be >= 0");
  NoGradGuard no_grad;
  std::vector<Tensor> grads;
  double total = 0.0;
  std::string nonfinite;
  for (const auto& [name, p] : params) {
    REEL_CHECK(p.defined(), "clip_grad_norm: parameter " << name << " is an undefined tensor");
    const Tensor g = p.grad();
    if (!g.defined()) continue;
    const double n = grad_norm(g, norm_type);
    if (!std::isfinite(n) && nonfinite.empty()) nonfinite = describe_nonfinite(name, p, n);
    if (std::isinf(norm_type))
      total = std::isnan(n) || std::isnan(total) ? NAN : std::max(total, n);
    else
      total += std::pow(n, norm_type);
    grads.push_back(g);
  }
  if (!std::isinf(norm_type)) total = std::pow(total, 1.0 / norm_type);
  if (!std::isfinite(total) && error_if_nonfinite)
    throw Error("clip_grad_norm: the total norm of order " + std::to_string(norm_type) +
                " of the gradients is " + (std::isnan(total) ? "nan" : "inf") +
                ": the gradient of parameter " +
                (nonfinite.empty() ? std::string("(none alone; the sum overflowed)") : nonfinite) +
                " is not finite");
  const double coef = max_norm / (total + 1e-6);
  if (!(coef >= 1.0))  // also scales by NaN, as torch, when the total is not finite
    for (Tensor& g : grads) g.mul_(static_cast<float>(coef));
  return total;
}

double clip_grad_norm(const std::vector<Tensor>& params, double max_norm, double norm_type,
                      bool error_if_nonfinite) {
  NamedTensors named;
  for (size_t i = 0; i < params.size(); ++i) named.emplace_back(std::to_string(i), params[i]);
  return clip_grad_norm(named, max_norm, norm_type, error_if_nonfinite);
}

std::string first_nonfinite_grad(const NamedTensors& params) {
  NoGradGuard no_grad;
  for (const auto& [name, p] : params) {
    if (!p.defined() || !p.grad().defined()) continue;
    const double n = grad_norm(p.grad(), 2.0);
    if (!std::isfinite(n)) return describe_nonfinite(name, p, n);
  }
  return "";
}

bool NonFiniteCheck::ok(int64_t step, float loss, const NamedTensors& params) {
  std::string problem;
  if (!std::isfinite(loss))
    problem = std::string("the loss is ") + (std::isnan(loss) ? "nan" : "inf");
  else if (std::string p = first_nonfinite_grad(params); !p.empty())
    problem = "the gradient of " + p + " is not finite";
  if (problem.empty()) return true;
  if (!skip)
    throw Error("step " + std::to_string(step) + ": " + problem +
                " (lower the learning rate, clip the gradients, or skip such steps)");
  for (const auto& [name, p] : params) p.zero_grad(true);
  ++skipped;
  last_problem = problem;
  return false;
}

}  // namespace reel
