#include "reel/core/gradcheck.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "reel/core/autograd.h"
#include "reel/core/random.h"

namespace reel {

namespace {

double project(const Tensor& out, const std::vector<float>& r) {
  const std::vector<float> v = out.to_vector();
  double s = 0.0;
  for (size_t i = 0; i < v.size(); ++i) s += static_cast<double>(v[i]) * r[i];
  return s;
}

}  // namespace

GradcheckResult gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& fn,
                          const std::vector<Tensor>& inputs, const GradcheckOptions& options) {
  REEL_CHECK(options.eps > 0.0f, "gradcheck: eps must be > 0, got " << options.eps);
  bool any = false;
  for (size_t i = 0; i < inputs.size(); ++i) {
    REEL_CHECK(inputs[i].defined() && inputs[i].device().is_cpu(),
               "gradcheck: input " << i << " must be a defined cpu tensor");
    REEL_CHECK(inputs[i].is_leaf() || !inputs[i].requires_grad(),
               "gradcheck: input " << i << " must be a leaf");
    any = any || inputs[i].requires_grad();
  }
  REEL_CHECK(any,
             "gradcheck: no input requires grad; call requires_grad_() on the inputs to check");

  // Analytic: d/dx sum(fn(x) * R) by autograd, with R fixed.
  std::vector<Tensor> saved_grads;
  for (const Tensor& t : inputs) {
    saved_grads.push_back(t.grad());
    t.zero_grad();
  }
  Tensor out = fn(inputs);
  REEL_CHECK(out.defined(), "gradcheck: the function returned an undefined tensor");
  REEL_CHECK(out.requires_grad(),
             "gradcheck: the output does not depend on any input that "
             "requires grad");
  Generator gen(options.seed);
  Tensor r = Tensor::normal(out.shape(), 0.0f, 1.0f, gen);
  const std::vector<float> rv = r.to_vector();
  out.backward(r);

  GradcheckResult res;
  res.max_abs_error.assign(inputs.size(), 0.0);
  res.max_rel_error.assign(inputs.size(), 0.0);
  std::ostringstream report;
  NoGradGuard no_grad;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& x = inputs[i];
    if (!x.requires_grad()) continue;
    const Tensor g = x.grad();
    const std::vector<float> analytic =
        g.defined() ? g.to_vector() : std::vector<float>(static_cast<size_t>(x.numel()), 0.0f);
    float* p = x.data();
    bool failed = false;
    std::string first_failure;
    for (int64_t k = 0; k < x.numel(); ++k) {
      const float orig = p[k];
      p[k] = orig + options.eps;
      const double plus = project(fn(inputs), rv);
      p[k] = orig - options.eps;
      const double minus = project(fn(inputs), rv);
      p[k] = orig;
      const double numeric = (plus - minus) / (2.0 * options.eps);
      const double a = analytic[static_cast<size_t>(k)];
      const double abs_err = std::fabs(a - numeric);
      const double rel_err = abs_err / std::max(std::fabs(numeric), 1.0);
      res.max_abs_error[i] = std::max(res.max_abs_error[i], abs_err);
      res.max_rel_error[i] = std::max(res.max_rel_error[i], rel_err);
      if (!(abs_err <= options.atol + options.rtol * std::fabs(numeric)) && !failed) {
        failed = true;
        std::ostringstream f;
        f << "  first mismatch at element " << k << ": analytic " << a << ", numeric " << numeric
          << "\n";
        first_failure = f.str();
      }
    }
    res.ok = res.ok && !failed;
    report << "input " << i << " " << shape_str(x.shape()) << ": max abs error "
           << res.max_abs_error[i] << ", max rel error " << res.max_rel_error[i]
           << (failed ? " FAILED\n" : " ok\n") << first_failure;
  }
  for (size_t i = 0; i < inputs.size(); ++i) inputs[i].set_grad(saved_grads[i]);
  res.report = report.str();
  return res;
}

}  // namespace reel
