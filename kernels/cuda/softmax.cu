// CUDA softmax, log_softmax and softmax cross-entropy. One block per softmax line (a line is
// the C values of one (outer, inner) position, inner apart in memory). Per-element math:
// kernels/softmax_math.h (shared with the CPU).
#include "reel/kernels/cuda/launch.h"
//
#include "reel/kernels/cuda/device_utils.h"
#include "reel/kernels/softmax.h"

namespace reel::cuda {

namespace {

unsigned line_blocks(int64_t lines) {
  return static_cast<unsigned>(lines < 65535 * 16 ? lines : 65535 * 16);
}

// x, y: [outer, C, inner]
__global__ void softmax_forward_kernel(const float* x, float* y, int64_t lines, int64_t C,
                                       int64_t inner, bool log) {
  __shared__ float scratch[32];
  for (int64_t line = blockIdx.x; line < lines; line += gridDim.x) {
    const int64_t base = (line / inner) * C * inner + line % inner;
    float mx = -INFINITY;
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) mx = fmaxf(mx, x[base + c * inner]);
    mx = block_reduce<true>(mx, scratch);
    float sum = 0.0f;
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) sum += expf(x[base + c * inner] - mx);
    sum = block_reduce<false>(sum, scratch);
    const float lsum = logf(sum);
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
      const int64_t k = base + c * inner;
      y[k] = log ? math::log_softmax_value(x[k], mx, lsum) : math::softmax_value(x[k], mx, sum);
    }
  }
}

// g, y, dx: [outer, C, inner]; dx written
__global__ void softmax_backward_kernel(const float* g, const float* y, float* dx, int64_t lines,
                                        int64_t C, int64_t inner, bool log) {
  __shared__ float scratch[32];
  for (int64_t line = blockIdx.x; line < lines; line += gridDim.x) {
    const int64_t base = (line / inner) * C * inner + line % inner;
    float acc = 0.0f;  // log: sum_j g_j; softmax: sum_j g_j y_j
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
      const int64_t k = base + c * inner;
      acc += log ? g[k] : g[k] * y[k];
    }
    acc = block_reduce<false>(acc, scratch);
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
      const int64_t k = base + c * inner;
      dx[k] = log ? math::log_softmax_grad(g[k], y[k], acc) : math::softmax_grad(g[k], y[k], acc);
    }
  }
}

// log_probs: [N, C], targets: [N], row_loss: [N] out
__global__ void cross_entropy_rows_kernel(const float* log_probs, const int64_t* targets,
                                          float* row_loss, int64_t N, int64_t C, float eps,
                                          int64_t ignore_index) {
  __shared__ float scratch[32];
  for (int64_t r = blockIdx.x; r < N; r += gridDim.x) {
    const int64_t t = targets[r];
    float acc = 0.0f;
    if (t != ignore_index)
      for (int64_t c = threadIdx.x; c < C; c += blockDim.x)
        acc += math::cross_entropy_term(log_probs[r * C + c], c, t, eps, C);
    acc = block_reduce<false>(acc, scratch);
    if (threadIdx.x == 0) row_loss[r] = acc;
  }
}

// row_loss: [N]; loss: [1] = sum / count (one block)
__global__ void mean_loss_kernel(const float* row_loss, float* loss, int64_t N, int64_t count) {
  __shared__ float scratch[32];
  float acc = 0.0f;
  for (int64_t r = threadIdx.x; r < N; r += blockDim.x) acc += row_loss[r];
  acc = block_reduce<false>(acc, scratch);
  if (threadIdx.x == 0) loss[0] = acc / static_cast<float>(count);  // count 0: NaN, as PyTorch
}

// g: [1]; log_probs, dlogits: [N, C]; dlogits written (0 on ignored rows)
__global__ void cross_entropy_backward_kernel(const float* g, const float* log_probs,
                                              const int64_t* targets, float* dlogits, int64_t N,
                                              int64_t C, float eps, int64_t ignore_index,
                                              int64_t count) {
  const float w = count > 0 ? g[0] / static_cast<float>(count) : 0.0f;
  for (int64_t i = global_thread(); i < N * C; i += grid_threads()) {
    const int64_t t = targets[i / C];
    dlogits[i] = t == ignore_index || count == 0
                     ? 0.0f
                     : math::cross_entropy_grad(log_probs[i], i % C, t, eps, C, w);
  }
}

}  // namespace

void softmax_forward(const float* x, float* y, int64_t outer, int64_t C, int64_t inner, bool log,
                     cudaStream_t stream) {
  const int64_t lines = outer * inner;
  if (lines == 0 || C == 0) return;
  launch_kernel(softmax_forward_kernel, dim3(line_blocks(lines)), dim3(kThreadsPerBlock), 0, stream,
                x, y, lines, C, inner, log);
}

void softmax_backward(const float* g, const float* y, float* dx, int64_t outer, int64_t C,
                      int64_t inner, bool log, cudaStream_t stream) {
  const int64_t lines = outer * inner;
  if (lines == 0 || C == 0) return;
  launch_kernel(softmax_backward_kernel, dim3(line_blocks(lines)), dim3(kThreadsPerBlock), 0,
                stream, g, y, dx, lines, C, inner, log);
}

void cross_entropy_forward(const float* logits, const int64_t* targets, float* log_probs,
                           float* loss, float* workspace, int64_t N, int64_t C,
                           float label_smoothing, int64_t ignore_index, int64_t count,
                           cudaStream_t stream) {
  float* row_loss = workspace;
  softmax_forward(logits, log_probs, N, C, 1, true, stream);
  if (N > 0)
    launch_kernel(cross_entropy_rows_kernel, dim3(line_blocks(N)), dim3(kThreadsPerBlock), 0,
                  stream, log_probs, targets, row_loss, N, C, label_smoothing, ignore_index);
  launch_kernel(mean_loss_kernel, dim3(1), dim3(kThreadsPerBlock), 0, stream, row_loss, loss, N,
                count);
}

void cross_entropy_backward(const float* g, const float* log_probs, const int64_t* targets,
                            float* dlogits, int64_t N, int64_t C, float label_smoothing,
                            int64_t ignore_index, int64_t count, cudaStream_t stream) {
  if (N * C == 0) return;
  launch_kernel(cross_entropy_backward_kernel, dim3(blocks_for(N * C, kThreadsPerBlock)),
                dim3(kThreadsPerBlock), 0, stream, g, log_probs, targets, dlogits, N, C,
                label_smoothing, ignore_index, count);
}

}  // namespace reel::cuda
