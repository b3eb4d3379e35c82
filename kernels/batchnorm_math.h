#pragma once
// The per-element math of batch normalisation (PyTorch's BatchNorm2d), shared by the CPU and CUDA
// kernels of kernels/batchnorm.h. Per channel: mean and invstd = 1 / sqrt(var + eps), with the
// biased variance in training and the running variance in evaluation.
#include <cmath>
#include <cstdint>

#include "reel/kernels/common.h"

namespace reel::math {

// y = (x - mean) * invstd * weight + bias, folded to one FMA: y = x * scale + shift.
REEL_HD float batchnorm_scale(float invstd, float weight) { return invstd * weight; }
REEL_HD float batchnorm_shift(float mean, float invstd, float weight, float bias) {
  return bias - mean * invstd * weight;
}

// 1 / sqrt(var + eps).
REEL_HD float batchnorm_invstd(float var, float eps) { return 1.0f / sqrtf(var + eps); }

// One running statistic after a training step: (1 - momentum) * running + momentum * batch,
// where the batch variance is the unbiased one (count / (count - 1) times the biased).
REEL_HD float batchnorm_running(float running, float batch, float momentum) {
  return (1.0f - momentum) * running + momentum * batch;
}

// d(loss)/dx of one element in training mode, where the batch statistics depend on x:
// invstd * weight * (dy - mean(dy) - xhat * mean(dy * xhat)), xhat = (x - mean) * invstd, the
// means over the channel's `count` elements. sum_dy = sum(dy), sum_dy_xhat = sum(dy * xhat).
REEL_HD float batchnorm_dx_train(float dy, float x, float mean, float invstd, float weight,
                                 float sum_dy, float sum_dy_xhat, float inv_count) {
  const float xhat = (x - mean) * invstd;
  return invstd * weight * (dy - sum_dy * inv_count - xhat * sum_dy_xhat * inv_count);
}

}  // namespace reel::math
