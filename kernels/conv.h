#pragma once
// 2-D convolution (groups = 1), forward and both backwards, as an im2col/col2im lowering onto the
// GEMM of kernels/gemm.h. Index math: kernels/conv_math.h. Every call takes a workspace of
// conv2d_workspace_floats(shape) floats from the caller (core's pools), so that a call in
// steady state allocates nothing.
#include <cstdint>

#include "reel/kernels/common.h"
#include "reel/kernels/conv_math.h"

namespace reel::cpu {

// Floats of scratch that the calls below need for this shape (may be 0).
int64_t conv2d_workspace_floats(const Conv2dShape& s);

// x: [C, H, W] one image -> col: [C * R * S, P * Q], row (c, r, s) holding the input that tap
// (r, s) of channel c reads at each output position (0 in the padding).
void im2col(const float* x, float* col, const Conv2dShape& s);
// The adjoint: col: [C * R * S, P * Q] -> dx: [C, H, W] written (=), each input element the sum
// of the col entries that read it.
void col2im(const float* col, float* dx, const Conv2dShape& s);

// x: [N, C, H, W], w: [K, C, R, S], bias: [K] or nullptr -> y: [N, K, P, Q] written.
void conv2d_forward(const float* x, const float* w, const float* bias, float* y, float* workspace,
                    const Conv2dShape& s);
// dy: [N, K, P, Q], w: [K, C, R, S] -> dx: [N, C, H, W] written.
void conv2d_backward_data(const float* dy, const float* w, float* dx, float* workspace,
                          const Conv2dShape& s);
// dy: [N, K, P, Q], x: [N, C, H, W] -> dw: [K, C, R, S] written, the sum over the batch (the
// kernel accumulates over images inside this one op); db: [K] or nullptr, written, the sum of dy
// over N, P and Q.
void conv2d_backward_weight(const float* dy, const float* x, float* dw, float* db, float* workspace,
                            const Conv2dShape& s);

}  // namespace reel::cpu

namespace reel::cuda {
// Same contracts; every pointer is device memory. The workspace size may differ from the CPU's.
int64_t conv2d_workspace_floats(const Conv2dShape& s);
void im2col(const float* x, float* col, const Conv2dShape& s, cudaStream_t stream);
void col2im(const float* col, float* dx, const Conv2dShape& s, cudaStream_t stream);
void conv2d_forward(const float* x, const float* w, const float* bias, float* y, float* workspace,
                    const Conv2dShape& s, cudaStream_t stream);
void conv2d_backward_data(const float* dy, const float* w, float* dx, float* workspace,
                          const Conv2dShape& s, cudaStream_t stream);
void conv2d_backward_weight(const float* dy, const float* x, float* dw, float* db, float* workspace,
                            const Conv2dShape& s, cudaStream_t stream);
}  // namespace reel::cuda
