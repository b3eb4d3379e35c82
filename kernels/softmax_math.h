#pragma once
// Per-element formulas of softmax, log_softmax and cross-entropy, written once for every device.
#include <cmath>

#include "reel/kernels/common.h"

namespace reel::math {

// y = softmax(x): exp(x - max) / sum. log_softmax: x - max - log(sum).
REEL_HD float softmax_value(float x, float row_max, float row_sum) {
  return expf(x - row_max) / row_sum;
}
REEL_HD float log_softmax_value(float x, float row_max, float log_row_sum) {
  return x - row_max - log_row_sum;
}
// softmax backward: dx = y * (g - sum_j g_j y_j)
REEL_HD float softmax_grad(float g, float y, float dot_gy) { return y * (g - dot_gy); }
// log_softmax backward: dx = g - exp(y) * sum_j g_j
REEL_HD float log_softmax_grad(float g, float y, float sum_g) { return g - expf(y) * sum_g; }

// Smoothed one-hot target of class c when the label is t: (1 - eps) [c == t] + eps / C.
REEL_HD float smoothed_target(int64_t c, int64_t t, float eps, int64_t C) {
  return (c == t ? 1.0f - eps : 0.0f) + eps / static_cast<float>(C);
}

}  // namespace reel::math
