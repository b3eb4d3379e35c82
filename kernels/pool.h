#pragma once
// 2-D max pooling and adaptive average pooling over planes, forward and backward. Index math:
// kernels/pool_math.h.
#include <cstdint>

#include "reel/kernels/common.h"
#include "reel/kernels/pool_math.h"

namespace reel::cpu {

// x: [NC, H, W] -> y: [NC, P, Q] written; argmax: [NC, P, Q] out (h * W + w of the maximum within
// its plane, the first one on ties), or nullptr when no backward will run.
void max_pool2d_forward(const float* x, float* y, int32_t* argmax, const Pool2dShape& s);
// dy, argmax: [NC, P, Q] -> dx: [NC, H, W] written (each input the sum of the dy whose window
// chose it; 0 elsewhere).
void max_pool2d_backward(const float* dy, const int32_t* argmax, float* dx, const Pool2dShape& s);

// x: [NC, H, W] -> y: [NC, P, Q] written, each the mean of its adaptive window.
void adaptive_avg_pool2d_forward(const float* x, float* y, int64_t NC, int64_t H, int64_t W,
                                 int64_t P, int64_t Q);
// dy: [NC, P, Q] -> dx: [NC, H, W] written.
void adaptive_avg_pool2d_backward(const float* dy, float* dx, int64_t NC, int64_t H, int64_t W,
                                  int64_t P, int64_t Q);

}  // namespace reel::cpu

namespace reel::cuda {
// Same contracts; every pointer is device memory.
void max_pool2d_forward(const float* x, float* y, int32_t* argmax, const Pool2dShape& s,
                        cudaStream_t stream);
void max_pool2d_backward(const float* dy, const int32_t* argmax, float* dx, const Pool2dShape& s,
                         cudaStream_t stream);
void adaptive_avg_pool2d_forward(const float* x, float* y, int64_t NC, int64_t H, int64_t W,
                                 int64_t P, int64_t Q, cudaStream_t stream);
void adaptive_avg_pool2d_backward(const float* dy, float* dx, int64_t NC, int64_t H, int64_t W,
                                  int64_t P, int64_t Q, cudaStream_t stream);
}  // namespace reel::cuda
