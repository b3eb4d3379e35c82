#pragma once
// The per-element updates of the optimizers (optim/): torch.optim.SGD's and torch.optim.Adam's
// (AdamW is Adam with decoupled weight decay), one parameter element per call, written once for
// the CPU and CUDA kernels of kernels/optim.h. Every per-step scalar (the bias corrections, the
// step size) is computed once per parameter on the host, in double, and passed in as float.
#include <cmath>

#include "reel/kernels/common.h"

namespace reel::math {

// The hyper-parameters of one SGD step of one parameter.
struct SgdHyper {
  float lr = 0.0f;
  float momentum = 0.0f;  // 0: no momentum buffer
  float dampening = 0.0f;
  float weight_decay = 0.0f;  // L2, added to the gradient
  bool nesterov = false;
  bool first_step = false;  // the momentum buffer is empty: it starts as the gradient (undampened)
};

// One element of torch.optim.SGD's step:
//   d = g + weight_decay * p
//   buf = d on the first step, else momentum * buf + (1 - dampening) * d
//   d = nesterov ? d + momentum * buf : buf        (only with momentum)
//   p = p - lr * d
// buf is unread and unwritten when momentum is 0.
REEL_HD void sgd_update(float& p, float g, float& buf, const SgdHyper& h) {
  float d = g;
  if (h.weight_decay != 0.0f) d += h.weight_decay * p;
  if (h.momentum != 0.0f) {
    buf = h.first_step ? d : buf * h.momentum + (1.0f - h.dampening) * d;
    d = h.nesterov ? d + h.momentum * buf : buf;
  }
  p -= h.lr * d;
}

// The hyper-parameters of one Adam or AdamW step of one parameter, at step t (counted from 1).
struct AdamHyper {
  float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f;
  float weight_decay = 0.0f;  // Adam: L2 added to the gradient; unused by AdamW (decay_factor)
  float decay_factor = 1.0f;  // AdamW: p is first multiplied by 1 - lr * weight_decay
  float step_size = 0.0f;     // lr / (1 - beta1^t)
  float bias_correction2_sqrt = 1.0f;  // sqrt(1 - beta2^t)
  bool amsgrad = false;
};

// One element of torch.optim.Adam's (and AdamW's) step:
//   p = p * decay_factor                             (AdamW)
//   g = g + weight_decay * p                         (Adam)
//   m = m + (1 - beta1) (g - m)                      (a lerp, as torch)
//   v = beta2 v + (1 - beta2) g^2
//   vmax = max(vmax, v)                              (amsgrad; then vmax stands for v below)
//   p = p - step_size * m / (sqrt(v) / bias_correction2_sqrt + eps)
// vmax is unread and unwritten unless amsgrad.
REEL_HD void adam_update(float& p, float g, float& m, float& v, float& vmax, const AdamHyper& h) {
  p *= h.decay_factor;
  if (h.weight_decay != 0.0f) g += h.weight_decay * p;
  m += (1.0f - h.beta1) * (g - m);
  v = v * h.beta2 + (1.0f - h.beta2) * g * g;
  float second = v;
  if (h.amsgrad) {
    vmax = vmax > v ? vmax : v;
    second = vmax;
  }
  p -= h.step_size * (m / (sqrtf(second) / h.bias_correction2_sqrt + h.eps));
}

}  // namespace reel::math
