// CUDA inverted dropout. The mask is the counter-based hash of kernels/dropout_math.h, so the
// same (seed, element) is kept or dropped on the CPU and on CUDA, and nothing is stored.
#include "reel/kernels/cuda/launch.h"
//
#include "reel/kernels/cuda/device_utils.h"
#include "reel/kernels/dropout.h"

namespace reel::cuda {

namespace {

// x, y: [n] (may be the same buffer); scale = 1 / (1 - p).
__global__ void dropout_kernel(const float* x, float* y, int64_t n, float p, float scale,
                               uint64_t seed) {
  for (int64_t i = global_thread(); i < n; i += grid_threads())
    y[i] = math::dropout_value(x[i], seed, i, p, scale);
}

}  // namespace

void dropout_apply(const float* x, float* y, int64_t n, float p, uint64_t seed,
                   cudaStream_t stream) {
  if (n == 0) return;
  launch_kernel(dropout_kernel, dim3(blocks_for(n, kThreadsPerBlock)), dim3(kThreadsPerBlock), 0,
                stream, x, y, n, p, 1.0f / (1.0f - p), seed);
}

}  // namespace reel::cuda
