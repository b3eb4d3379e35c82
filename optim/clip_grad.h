#pragma once
// Gradient clipping by total norm, as torch.nn.utils.clip_grad_norm_.
#include <limits>
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

}  // namespace reel
