#pragma once
// Gradient clipping by total norm, as torch.nn.utils.clip_grad_norm_, and the check of a
// training step's loss and gradients for NaN and infinity.
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "reel/core/tensor.h"
#include "reel/optim/optimizer.h"

namespace reel {

constexpr double kInfNorm = std::numeric_limits<double>::infinity();

// The norm of all the parameters' gradients together (the norm of the vector of per-parameter
// norms; norm_type > 0, or kInfNorm for the largest magnitude); parameters without a gradient
// count as zero. When it exceeds max_norm, every gradient is multiplied in place by
// max_norm / (total + 1e-6). Returns the total norm before clipping.
// A total that is NaN or infinite throws reel::Error naming the first parameter whose gradient
// is not finite (and changes nothing), unless error_if_nonfinite is false: then the gradients
// are scaled as torch does (and become NaN). The 2-norm is reduced on the gradients' device;
// other norms copy each gradient to the host.
double clip_grad_norm(const std::vector<Tensor>& params, double max_norm, double norm_type = 2.0,
                      bool error_if_nonfinite = true);
// The same, naming parameters by their names in errors (Module::named_parameters()).
double clip_grad_norm(const NamedTensors& params, double max_norm, double norm_type = 2.0,
                      bool error_if_nonfinite = true);

// The first parameter, in order, whose gradient holds a NaN or an infinity, described as
// "<name> of shape [...] (its gradient's norm is nan)"; empty when every gradient is finite.
// One reduction per gradient on its device (a gradient whose 2-norm overflows float counts as
// infinite too).
std::string first_nonfinite_grad(const NamedTensors& params);

// What a training loop does when a step's loss or a gradient is NaN or infinite: by default
// stop with a reel::Error that names the step and the loss or the parameter; with skip, leave
// the parameters as they are (the step's gradients are dropped), count the step and go on.
struct NonFiniteCheck {
  bool skip = false;
  int64_t skipped = 0;       // steps skipped so far
  std::string last_problem;  // what the last skipped step had ("the loss is nan", ...)
  // Call between backward and the optimizer's step. True: the step may go on. False (skip on):
  // the gradients of params were dropped (set to none); do not step.
  bool ok(int64_t step, float loss, const NamedTensors& params);
};

}  // namespace reel
