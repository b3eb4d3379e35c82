#pragma once
// gradcheck: compares autograd's gradients of a function with central finite differences, for
// users who write a new op.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "reel/core/tensor.h"

namespace reel {

struct GradcheckOptions {
  float eps = 1e-3f;   // finite-difference step
  double atol = 5e-3;  // element passes when |analytic - numeric| <= atol + rtol * |numeric|
  double rtol = 1e-2;
  uint64_t seed = 0;  // for the random projection of a non-scalar output
};

struct GradcheckResult {
  bool ok = true;
  // Per input (0 for inputs that do not require grad): the worst |analytic - numeric| and the
  // worst relative error |analytic - numeric| / max(|numeric|, 1).
  std::vector<double> max_abs_error;
  std::vector<double> max_rel_error;
  // One line per input, and the first failing element of each input that fails.
  std::string report;
};

// fn maps the inputs to one output tensor. Every input with requires_grad() is checked: the
// output is projected onto a fixed random tensor R (so non-scalar outputs are covered), the
// gradient of sum(fn(x) * R) by autograd is compared with (L(x + eps e_k) - L(x - eps e_k)) /
// (2 eps) for every element k. Inputs are restored afterwards. CPU tensors only.
GradcheckResult gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& fn,
                          const std::vector<Tensor>& inputs, const GradcheckOptions& options = {});

}  // namespace reel
