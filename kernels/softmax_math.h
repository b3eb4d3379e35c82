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

// One class's term of a row's cross-entropy: -target_c * log p_c, and 0 where target_c is 0
// (a class masked with a logit of -inf has log p_c = -inf, and 0 * -inf would be NaN).
REEL_HD float cross_entropy_term(float log_prob, int64_t c, int64_t t, float eps, int64_t C) {
  const float w = smoothed_target(c, t, eps, C);
  return w == 0.0f ? 0.0f : -w * log_prob;
}
// The cross-entropy of one row, -sum_c smoothed_target(c) * log_prob_c, from the target's
// log-probability lp_t and the row's sum of log-probabilities sum_lp. Without smoothing only lp_t
// counts, so a class of probability 0 (log-probability -inf) elsewhere gives no NaN (PyTorch).
REEL_HD double cross_entropy_row(float lp_t, double sum_lp, float eps, int64_t C) {
  const double own = -(1.0 - static_cast<double>(eps)) * static_cast<double>(lp_t);
  return eps == 0.0f ? own : own - static_cast<double>(eps) / static_cast<double>(C) * sum_lp;
}
// d(loss)/d(logit_c) of one row, times w = g / count: the smoothed targets sum to 1, so it is
// softmax_c - target_c.
REEL_HD float cross_entropy_grad(float log_prob, int64_t c, int64_t t, float eps, int64_t C,
                                 float w) {
  return w * (expf(log_prob) - smoothed_target(c, t, eps, C));
}

}  // namespace reel::math
