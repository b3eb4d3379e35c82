#pragma once
// Index math of 2-D pooling, shared by the CPU and CUDA kernels of kernels/pool.h.
#include <cstdint>

#include "reel/kernels/common.h"

namespace reel {

// Max pooling's sizes: planes [NC, H, W] -> [NC, P, Q]; window kh x kw at stride sh, sw, with
// implicit -inf padding ph, pw (dilation 1, floor mode, as PyTorch's defaults).
struct Pool2dShape {
  int64_t NC, H, W;
  int64_t P, Q;
  int64_t kh, kw, sh, sw, ph, pw;
};

namespace math {

// Adaptive average pooling: output cell i of `out` cells over an input extent `in` averages the
// input range [adaptive_start, adaptive_end) (PyTorch's floor / ceil split; cells may overlap).
REEL_HD int64_t adaptive_start(int64_t i, int64_t in, int64_t out) { return (i * in) / out; }
REEL_HD int64_t adaptive_end(int64_t i, int64_t in, int64_t out) {
  return ((i + 1) * in + out - 1) / out;
}

// Whether v replaces the running maximum m: larger, or NaN (NaN propagates, as in PyTorch).
REEL_HD bool max_pool_takes(float v, float m) { return v > m || v != v; }

}  // namespace math

}  // namespace reel
