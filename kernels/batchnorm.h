#pragma once
// Batch normalisation over [N, C, HW] (BatchNorm2d with HW = H * W), forward in training and in
// evaluation mode, and backward. Per-element math: kernels/batchnorm_math.h.
#include <cstdint>

#include "reel/kernels/batchnorm_math.h"
#include "reel/kernels/common.h"

namespace reel::cpu {

// Training mode. x, y: [N, C, HW]; weight, bias: [C] or nullptr (1 and 0).
// mean, invstd: [C] out, the batch mean and 1 / sqrt(biased variance + eps) (what backward reads).
// running_mean, running_var: [C] updated in place when not nullptr, with momentum and the
// unbiased batch variance (N * HW >= 2, checked by the caller).
void batchnorm_forward_train(const float* x, const float* weight, const float* bias, float* y,
                             float* mean, float* invstd, float* running_mean, float* running_var,
                             float momentum, float eps, int64_t N, int64_t C, int64_t HW);
// Evaluation mode: normalises with running_mean, running_var: [C]. mean, invstd: [C] out, the
// statistics used (running_mean and 1 / sqrt(running_var + eps)), for the backward.
void batchnorm_forward_eval(const float* x, const float* weight, const float* bias,
                            const float* running_mean, const float* running_var, float* y,
                            float* mean, float* invstd, float eps, int64_t N, int64_t C,
                            int64_t HW);
// dy, x: [N, C, HW]; mean, invstd: [C] from the forward. training: the statistics were the
// batch's (the gradient flows through them too); else they were constants.
// dx: [N, C, HW], dweight, dbias: [C]; each written, or skipped when nullptr.
void batchnorm_backward(const float* dy, const float* x, const float* weight, const float* mean,
                        const float* invstd, float* dx, float* dweight, float* dbias, bool training,
                        int64_t N, int64_t C, int64_t HW);

}  // namespace reel::cpu

namespace reel::cuda {
// Same contracts; every pointer is device memory.
void batchnorm_forward_train(const float* x, const float* weight, const float* bias, float* y,
                             float* mean, float* invstd, float* running_mean, float* running_var,
                             float momentum, float eps, int64_t N, int64_t C, int64_t HW,
                             cudaStream_t stream);
void batchnorm_forward_eval(const float* x, const float* weight, const float* bias,
                            const float* running_mean, const float* running_var, float* y,
                            float* mean, float* invstd, float eps, int64_t N, int64_t C, int64_t HW,
                            cudaStream_t stream);
void batchnorm_backward(const float* dy, const float* x, const float* weight, const float* mean,
                        const float* invstd, float* dx, float* dweight, float* dbias, bool training,
                        int64_t N, int64_t C, int64_t HW, cudaStream_t stream);
}  // namespace reel::cuda
