#pragma once
// The index math of a 2-D convolution (cross-correlation, as PyTorch's conv2d), shared by the CPU
// and CUDA kernels of kernels/conv.h.
#include <cstdint>

#include "reel/kernels/common.h"

namespace reel {
namespace math {

// Output extent along one axis: input extent `in`, kernel extent `k`, stride, zero padding on both
// sides and dilation (PyTorch's formula; < 1 means the kernel does not fit).
REEL_HD int64_t conv_out_extent(int64_t in, int64_t k, int64_t stride, int64_t pad, int64_t dil) {
  return (in + 2 * pad - dil * (k - 1) - 1) / stride + 1;
}

// The input coordinate that output position p reads through kernel tap r (may fall in the
// padding: < 0 or >= the input extent).
REEL_HD int64_t conv_in_coord(int64_t p, int64_t r, int64_t stride, int64_t pad, int64_t dil) {
  return p * stride - pad + r * dil;
}

}  // namespace math

// One convolution's sizes. Input x: [N, C, H, W]; weight: [K, C, R, S]; output y: [N, K, P, Q].
struct Conv2dShape {
  int64_t N, C, H, W;
  int64_t K, R, S;
  int64_t stride_h, stride_w, pad_h, pad_w, dil_h, dil_w;
  int64_t P, Q;
};

}  // namespace reel
