#pragma once
// Inverted dropout (training only): y = x / (1 - p) where dropout_keep(seed, i, p), else x * 0. The
// backward is the same call on the upstream gradient with the same seed. Math:
// kernels/dropout_math.h.
#include <cstdint>

#include "reel/kernels/common.h"
#include "reel/kernels/dropout_math.h"

namespace reel::cpu {
// x, y: [n] (may be the same buffer); 0 <= p < 1.
void dropout_apply(const float* x, float* y, int64_t n, float p, uint64_t seed);
}  // namespace reel::cpu

namespace reel::cuda {
void dropout_apply(const float* x, float* y, int64_t n, float p, uint64_t seed,
                   cudaStream_t stream);
}  // namespace reel::cuda
