// CUDA batch normalisation over [N, C, HW]. Per-element math: kernels/batchnorm_math.h (shared
// with the CPU).
//
// Training forward and both backwards run one block per channel: the block reduces the channel's
// N * HW values (each thread a fixed strided subset, then a fixed tree: deterministic), and then
// writes the channel's outputs itself, so no statistic makes a round trip through global memory.
// The variance is two-pass, sum((x - mean)^2) after the mean, not E[x^2] - E[x]^2, which loses
// every digit in float when the mean is large against the spread.
#include "reel/kernels/cuda/launch.h"
//
#include "reel/kernels/batchnorm.h"
#include "reel/kernels/cuda/device_utils.h"

namespace reel::cuda {

namespace {

// Element j of channel c's values, j in [0, N * HW): x[n, c, i] with n = j / HW, i = j % HW.
__device__ __forceinline__ int64_t channel_offset(int64_t j, int64_t c, int64_t C, int64_t HW) {
  return ((j / HW) * C + c) * HW + j % HW;
}

unsigned channel_blocks(int64_t C) { return static_cast<unsigned>(C < 65535 ? C : 65535); }

// x, y: [N, C, HW]; weight, bias: [C] or nullptr; mean, invstd: [C] out; running_mean,
// running_var: [C] updated when not nullptr.
__global__ void batchnorm_train_kernel(const float* x, const float* weight, const float* bias,
                                       float* y, float* mean, float* invstd, float* running_mean,
                                       float* running_var, float momentum, float eps, int64_t N,
                                       int64_t C, int64_t HW) {
  __shared__ float scratch[32];
  const int64_t count = N * HW;
  for (int64_t c = blockIdx.x; c < C; c += gridDim.x) {
    float acc = 0.0f;
    for (int64_t j = threadIdx.x; j < count; j += blockDim.x) acc += x[channel_offset(j, c, C, HW)];
    const float m = block_reduce<false>(acc, scratch) / static_cast<float>(count);
    acc = 0.0f;
    for (int64_t j = threadIdx.x; j < count; j += blockDim.x) {
      const float d = x[channel_offset(j, c, C, HW)] - m;
      acc += d * d;
    }
    const float var = block_reduce<false>(acc, scratch) / static_cast<float>(count);
    const float is = math::batchnorm_invstd(var, eps);
    if (threadIdx.x == 0) {
      mean[c] = m;
      invstd[c] = is;
      if (running_mean) running_mean[c] = math::batchnorm_running(running_mean[c], m, momentum);
      if (running_var) {
        const float unbiased = count > 1 ? var * static_cast<float>(count) / (count - 1) : var;
        running_var[c] = math::batchnorm_running(running_var[c], unbiased, momentum);
      }
    }
    const float w = weight ? weight[c] : 1.0f, b = bias ? bias[c] : 0.0f;
    const float scale = math::batchnorm_scale(is, w), shift = math::batchnorm_shift(m, is, w, b);
    for (int64_t j = threadIdx.x; j < count; j += blockDim.x) {
      const int64_t k = channel_offset(j, c, C, HW);
      y[k] = x[k] * scale + shift;
    }
  }
}

// running_mean, running_var: [C] -> mean, invstd: [C], the statistics evaluation uses.
__global__ void batchnorm_eval_stats_kernel(const float* running_mean, const float* running_var,
                                            float* mean, float* invstd, float eps, int64_t C) {
  for (int64_t c = global_thread(); c < C; c += grid_threads()) {
    mean[c] = running_mean[c];
    invstd[c] = math::batchnorm_invstd(running_var[c], eps);
  }
}

// x, y: [N, C, HW], normalised with the running statistics; weight, bias: [C] or nullptr.
__global__ void batchnorm_eval_kernel(const float* x, const float* weight, const float* bias,
                                      const float* running_mean, const float* running_var, float* y,
                                      float eps, int64_t C, int64_t HW, int64_t total) {
  for (int64_t k = global_thread(); k < total; k += grid_threads()) {
    const int64_t c = (k / HW) % C;
    const float is = math::batchnorm_invstd(running_var[c], eps);
    const float w = weight ? weight[c] : 1.0f, b = bias ? bias[c] : 0.0f;
    y[k] = x[k] * math::batchnorm_scale(is, w) + math::batchnorm_shift(running_mean[c], is, w, b);
  }
}

// dy, x: [N, C, HW]; weight: [C] or nullptr; mean, invstd: [C]; dx: [N, C, HW], dweight, dbias:
// [C], each written or skipped when nullptr. One block per channel.
__global__ void batchnorm_backward_kernel(const float* dy, const float* x, const float* weight,
                                          const float* mean, const float* invstd, float* dx,
                                          float* dweight, float* dbias, bool training, int64_t N,
                                          int64_t C, int64_t HW) {
  __shared__ float scratch[32];
  const int64_t count = N * HW;
  for (int64_t c = blockIdx.x; c < C; c += gridDim.x) {
    const float m = mean[c], is = invstd[c], w = weight ? weight[c] : 1.0f;
    // The sums are needed for dweight and dbias, and for dx in training mode only.
    const bool sums = dweight || dbias || (dx && training);
    float sum_dy = 0.0f, sum_dy_xhat = 0.0f;
    if (sums) {
      for (int64_t j = threadIdx.x; j < count; j += blockDim.x) {
        const int64_t k = channel_offset(j, c, C, HW);
        sum_dy += dy[k];
        sum_dy_xhat += dy[k] * ((x[k] - m) * is);
      }
      sum_dy = block_reduce<false>(sum_dy, scratch);
      sum_dy_xhat = block_reduce<false>(sum_dy_xhat, scratch);
      if (threadIdx.x == 0) {
        if (dweight) dweight[c] = sum_dy_xhat;
        if (dbias) dbias[c] = sum_dy;
      }
    }
    if (!dx) continue;
    const float inv_count = 1.0f / static_cast<float>(count);
    const float scale = math::batchnorm_scale(is, w);
    for (int64_t j = threadIdx.x; j < count; j += blockDim.x) {
      const int64_t k = channel_offset(j, c, C, HW);
      dx[k] = training
                  ? math::batchnorm_dx_train(dy[k], x[k], m, is, w, sum_dy, sum_dy_xhat, inv_count)
                  : dy[k] * scale;
    }
  }
}

}  // namespace

void batchnorm_forward_train(const float* x, const float* weight, const float* bias, float* y,
                             float* mean, float* invstd, float* running_mean, float* running_var,
                             float momentum, float eps, int64_t N, int64_t C, int64_t HW,
                             cudaStream_t stream) {
  launch_kernel(batchnorm_train_kernel, dim3(channel_blocks(C)), dim3(kThreadsPerBlock), 0, stream,
                x, weight, bias, y, mean, invstd, running_mean, running_var, momentum, eps, N, C,
                HW);
}

void batchnorm_forward_eval(const float* x, const float* weight, const float* bias,
                            const float* running_mean, const float* running_var, float* y,
                            float* mean, float* invstd, float eps, int64_t N, int64_t C, int64_t HW,
                            cudaStream_t stream) {
  launch_kernel(batchnorm_eval_stats_kernel, dim3(blocks_for(C, kThreadsPerBlock)),
                dim3(kThreadsPerBlock), 0, stream, running_mean, running_var, mean, invstd, eps, C);
  const int64_t total = N * C * HW;
  if (total == 0) return;
  launch_kernel(batchnorm_eval_kernel, dim3(blocks_for(total, kThreadsPerBlock)),
                dim3(kThreadsPerBlock), 0, stream, x, weight, bias, running_mean, running_var, y,
                eps, C, HW, total);
}

void batchnorm_backward(const float* dy, const float* x, const float* weight, const float* mean,
                        const float* invstd, float* dx, float* dweight, float* dbias, bool training,
                        int64_t N, int64_t C, int64_t HW, cudaStream_t stream) {
  if (!dx && !dweight && !dbias) return;
  launch_kernel(batchnorm_backward_kernel, dim3(channel_blocks(C)), dim3(kThreadsPerBlock), 0,
                stream, dy, x, weight, mean, invstd, dx, dweight, dbias, training, N, C, HW);
}

}  // namespace reel::cuda
