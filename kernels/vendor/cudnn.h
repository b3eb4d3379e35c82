#pragma once
// cuDNN versions of reel's CNN ops: the reference our own CUDA kernels (kernels/cuda/conv.cu,
// kernels/cuda/batchnorm.cu) are tested and benchmarked against. Only in builds with the real
// CUDA backend and cuDNN 9 (REEL_WITH_CUDNN). Every pointer is device memory; the contracts are
// those of reel::cuda's functions of the same name in kernels/conv.h and kernels/batchnorm.h,
// except that the convolutions take no workspace: cuDNN says how much its algorithm needs and
// reel keeps one buffer per device for it, which only grows.
//
// Notes on cuDNN's behaviour that the contracts rely on:
//  - the running variance is updated with the unbiased batch variance, as reel's and PyTorch's;
//  - eps must be >= CUDNN_BN_MIN_EPSILON (0 in cuDNN 9; 1e-5 in old versions): less throws;
//  - the convolutions run with CUDNN_FMA_MATH (no TF32 on Ampere and later), so that they are
//    an fp32 reference; the algorithm is cuDNN's heuristic first choice among deterministic ones;
//  - cuDNN has no evaluation-mode batchnorm backward: batchnorm_backward with training == false
//    runs reel's own kernel.
#include <cstdint>

#include "reel/kernels/common.h"
#include "reel/kernels/conv_math.h"

namespace reel::vendor {

// x: [N, C, H, W], w: [K, C, R, S], bias: [K] or nullptr -> y: [N, K, P, Q] written.
void cudnn_conv2d_forward(const float* x, const float* w, const float* bias, float* y,
                          const Conv2dShape& s, cudaStream_t stream);
// dy: [N, K, P, Q], w: [K, C, R, S] -> dx: [N, C, H, W] written.
void cudnn_conv2d_backward_data(const float* dy, const float* w, float* dx, const Conv2dShape& s,
                                cudaStream_t stream);
// dy: [N, K, P, Q], x: [N, C, H, W] -> dw: [K, C, R, S] written (the sum over the batch);
// db: [K] or nullptr, written.
void cudnn_conv2d_backward_weight(const float* dy, const float* x, float* dw, float* db,
                                  const Conv2dShape& s, cudaStream_t stream);

// x, y: [N, C, HW]; weight, bias: [C] or nullptr (1 and 0); mean, invstd: [C] out;
// running_mean, running_var: [C] updated when not nullptr.
void cudnn_batchnorm_forward_train(const float* x, const float* weight, const float* bias, float* y,
                                   float* mean, float* invstd, float* running_mean,
                                   float* running_var, float momentum, float eps, int64_t N,
                                   int64_t C, int64_t HW, cudaStream_t stream);
// running_mean, running_var: [C] -> y: [N, C, HW]; mean, invstd: [C] out.
void cudnn_batchnorm_forward_eval(const float* x, const float* weight, const float* bias,
                                  const float* running_mean, const float* running_var, float* y,
                                  float* mean, float* invstd, float eps, int64_t N, int64_t C,
                                  int64_t HW, cudaStream_t stream);
// dy, x: [N, C, HW]; mean, invstd: [C] from the forward; dx: [N, C, HW], dweight, dbias: [C],
// each written or skipped when nullptr.
void cudnn_batchnorm_backward(const float* dy, const float* x, const float* weight,
                              const float* mean, const float* invstd, float* dx, float* dweight,
                              float* dbias, bool training, int64_t N, int64_t C, int64_t HW,
                              cudaStream_t stream);

}  // namespace reel::vendor
