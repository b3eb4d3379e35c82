#pragma once
// The optimizers' fused steps: one call updates one parameter, its gradient read once and its
// state (momentum buffer, Adam's moments) updated in place, in one pass over the elements.
// Per-element math: kernels/optim_math.h. The CUDA versions take device pointers and the stream
// last.
#include <cstdint>

#include "reel/kernels/common.h"
#include "reel/kernels/optim_math.h"

namespace reel::cpu {

// param: [n] updated in place; grad: [n]
// momentum_buf: [n] updated in place (written, not read, when h.first_step); nullptr when
// h.momentum == 0
void sgd_step(float* param, const float* grad, float* momentum_buf, int64_t n,
              const math::SgdHyper& h);

// param: [n] updated in place; grad: [n]
// exp_avg, exp_avg_sq: [n] the first and second moments, updated in place
// max_exp_avg_sq: [n] updated in place when h.amsgrad, else nullptr
void adam_step(float* param, const float* grad, float* exp_avg, float* exp_avg_sq,
               float* max_exp_avg_sq, int64_t n, const math::AdamHyper& h);

}  // namespace reel::cpu

namespace reel::cuda {

void sgd_step(float* param, const float* grad, float* momentum_buf, int64_t n,
              const math::SgdHyper& h, cudaStream_t stream);
void adam_step(float* param, const float* grad, float* exp_avg, float* exp_avg_sq,
               float* max_exp_avg_sq, int64_t n, const math::AdamHyper& h, cudaStream_t stream);

}  // namespace reel::cuda
