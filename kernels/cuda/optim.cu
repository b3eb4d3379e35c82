// CUDA optimizer steps: one grid-stride pass per parameter, the per-element math shared with
// the CPU (kernels/optim_math.h).
#include "reel/kernels/cuda/launch.h"
//
#include "reel/kernels/cuda/device_utils.h"
#include "reel/kernels/optim.h"

namespace reel::cuda {

namespace {

// param, grad: [n]; buf: [n] or nullptr when h.momentum == 0.
__global__ void sgd_kernel(float* param, const float* grad, float* buf, int64_t n,
                           math::SgdHyper h) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) {
    float unused = 0.0f;
    math::sgd_update(param[i], grad[i], buf != nullptr ? buf[i] : unused, h);
  }
}

// param, grad, m, v: [n]; vmax: [n] or nullptr unless h.amsgrad.
__global__ void adam_kernel(float* param, const float* grad, float* m, float* v, float* vmax,
                            int64_t n, math::AdamHyper h) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) {
    float unused = 0.0f;
    math::adam_update(param[i], grad[i], m[i], v[i], vmax != nullptr ? vmax[i] : unused, h);
  }
}

}  // namespace

void sgd_step(float* param, const float* grad, float* momentum_buf, int64_t n,
              const math::SgdHyper& h, cudaStream_t stream) {
  if (n == 0) return;
  launch_kernel(sgd_kernel, dim3(blocks_for(n, kThreadsPerBlock)), dim3(kThreadsPerBlock), 0,
                stream, param, grad, momentum_buf, n, h);
}

void adam_step(float* param, const float* grad, float* exp_avg, float* exp_avg_sq,
               float* max_exp_avg_sq, int64_t n, const math::AdamHyper& h, cudaStream_t stream) {
  if (n == 0) return;
  launch_kernel(adam_kernel, dim3(blocks_for(n, kThreadsPerBlock)), dim3(kThreadsPerBlock), 0,
                stream, param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, n, h);
}

}  // namespace reel::cuda
