// CUDA softmax, log_softmax and softmax cross-entropy. Per-element math:
// kernels/softmax_math.h (shared with the CPU).
//
// A softmax line is the C values of one (outer, inner) position, `inner` apart in memory.
// Three shapes of kernel, each reading its input as few times as the math allows:
//  - rows (inner == 1) of at most 1024 classes: one warp per row, the row held in registers,
//    so the input is read once and the output written once (the classifier's logits, the
//    LSTM's gates);
//  - longer rows: one block per row, an online max and sum of exponentials in one pass over
//    the row, then one pass that writes;
//  - lines with inner > 1 (softmax over the channels of an NCHW tensor): one thread per line,
//    neighbouring threads on neighbouring positions so that every read is coalesced, again
//    an online pass and a writing pass.
// Cross-entropy's forward is the warp kernel with the row's loss added in the same pass.
#include "reel/kernels/cuda/launch.h"
//
#include <type_traits>

#include "reel/kernels/cuda/device_utils.h"
#include "reel/kernels/softmax.h"

namespace reel::cuda {

namespace {

constexpr int kWarpsPerBlock = kThreadsPerBlock / 32;

// The online softmax statistic of a set of values: their max m and the sum s of exp(v - m).
// Adding a larger value rescales the sum to the new max. A set of only -inf
// keeps m = -inf, s = 0 (a row of -inf gives NaN, as in PyTorch).
__device__ __forceinline__ void online_add(float& m, float& s, float v) {
  if (v > m) {
    s = s * expf(m - v) + 1.0f;
    m = v;
  } else if (v != -INFINITY) {
    s += expf(v - m);
  }
}
// Rows handled by one warp each: the warp's first row and the step between rows.
__device__ __forceinline__ int64_t warp_row() {
  return static_cast<int64_t>(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
}
__device__ __forceinline__ int64_t warp_rows_step() {
  return static_cast<int64_t>(gridDim.x) * (blockDim.x / 32);
}

// x, y: [rows, C] with C <= 32 * PerLane; lane l holds columns l, l + 32, ...
// WithLoss: cross-entropy, y = log_softmax, and row_loss: [rows] gets the row's loss
// (0 on an ignored row); targets: [rows].
template <int PerLane, bool Log, bool WithLoss>
__global__ void softmax_warp_kernel(const float* x, float* y, int64_t rows, int64_t C,
                                    const int64_t* targets, float eps, int64_t ignore_index,
                                    float* row_loss) {
  const int lane = threadIdx.x % 32;
  for (int64_t r = warp_row(); r < rows; r += warp_rows_step()) {
    const float* xr = x + r * C;
    float v[PerLane];
    float m = -INFINITY;
    REEL_UNROLL
    for (int k = 0; k < PerLane; ++k) {
      const int64_t c = lane + 32 * k;
      v[k] = c < C ? xr[c] : -INFINITY;
      m = fmaxf(m, v[k]);
    }
    m = warp_max(m);
    float s = 0.0f;
    REEL_UNROLL
    for (int k = 0; k < PerLane; ++k)
      if (lane + 32 * k < C) s += expf(v[k] - m);
    s = warp_sum(s);
    const float lsum = logf(s);
    float* yr = y + r * C;
    const int64_t t = WithLoss ? targets[r] : 0;
    float loss = 0.0f;
    REEL_UNROLL
    for (int k = 0; k < PerLane; ++k) {
      const int64_t c = lane + 32 * k;
      if (c >= C) continue;
      const float out =
          Log ? math::log_softmax_value(v[k], m, lsum) : math::softmax_value(v[k], m, s);
      yr[c] = out;
      if (WithLoss) loss += math::cross_entropy_term(out, c, t, eps, C);
    }
    if (WithLoss) {
      loss = warp_sum(loss);
      if (lane == 0) row_loss[r] = t == ignore_index ? 0.0f : loss;
    }
  }
}

// x, y: [rows, C], one block per row: an online pass, then a writing pass.
// WithLoss as in softmax_warp_kernel.
template <bool Log, bool WithLoss>
__global__ void softmax_block_kernel(const float* x, float* y, int64_t rows, int64_t C,
                                     const int64_t* targets, float eps, int64_t ignore_index,
                                     float* row_loss) {
  __shared__ float scratch[32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float* xr = x + r * C;
    float m = -INFINITY, s = 0.0f;
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) online_add(m, s, xr[c]);
    const float row_max = block_reduce<true>(m, scratch);
    const float sum = block_reduce<false>(m == -INFINITY ? 0.0f : s * expf(m - row_max), scratch);
    const float lsum = logf(sum);
    float* yr = y + r * C;
    const int64_t t = WithLoss ? targets[r] : 0;
    float loss = 0.0f;
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
      const float out = Log ? math::log_softmax_value(xr[c], row_max, lsum)
                            : math::softmax_value(xr[c], row_max, sum);
      yr[c] = out;
      if (WithLoss) loss += math::cross_entropy_term(out, c, t, eps, C);
    }
    if (WithLoss) {
      loss = block_reduce<false>(loss, scratch);
      if (threadIdx.x == 0) row_loss[r] = t == ignore_index ? 0.0f : loss;
    }
  }
}

// x, y: [outer, C, inner], one thread per (outer, inner) line.
template <bool Log>
__global__ void softmax_lines_kernel(const float* x, float* y, int64_t lines, int64_t C,
                                     int64_t inner) {
  for (int64_t l = global_thread(); l < lines; l += grid_threads()) {
    const int64_t base = (l / inner) * C * inner + l % inner;
    float m = -INFINITY, s = 0.0f;
    for (int64_t c = 0; c < C; ++c) online_add(m, s, x[base + c * inner]);
    const float lsum = logf(s);
    for (int64_t c = 0; c < C; ++c) {
      const int64_t k = base + c * inner;
      y[k] = Log ? math::log_softmax_value(x[k], m, lsum) : math::softmax_value(x[k], m, s);
    }
  }
}

// g, y, dx: [rows, C], one warp per row held in registers; dx written.
template <int PerLane, bool Log>
__global__ void softmax_backward_warp_kernel(const float* g, const float* y, float* dx,
                                             int64_t rows, int64_t C) {
  const int lane = threadIdx.x % 32;
  for (int64_t r = warp_row(); r < rows; r += warp_rows_step()) {
    float gv[PerLane], yv[PerLane];
    float acc = 0.0f;  // log: sum_j g_j; softmax: sum_j g_j y_j
    REEL_UNROLL
    for (int k = 0; k < PerLane; ++k) {
      const int64_t c = lane + 32 * k;
      gv[k] = c < C ? g[r * C + c] : 0.0f;
      yv[k] = c < C ? y[r * C + c] : 0.0f;
      acc += Log ? gv[k] : gv[k] * yv[k];
    }
    acc = warp_sum(acc);
    REEL_UNROLL
    for (int k = 0; k < PerLane; ++k) {
      const int64_t c = lane + 32 * k;
      if (c < C)
        dx[r * C + c] =
            Log ? math::log_softmax_grad(gv[k], yv[k], acc) : math::softmax_grad(gv[k], yv[k], acc);
    }
  }
}

// g, y, dx: [rows, C], one block per row; dx written.
template <bool Log>
__global__ void softmax_backward_block_kernel(const float* g, const float* y, float* dx,
                                              int64_t rows, int64_t C) {
  __shared__ float scratch[32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    float acc = 0.0f;
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x)
      acc += Log ? g[r * C + c] : g[r * C + c] * y[r * C + c];
    acc = block_reduce<false>(acc, scratch);
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
      const int64_t k = r * C + c;
      dx[k] = Log ? math::log_softmax_grad(g[k], y[k], acc) : math::softmax_grad(g[k], y[k], acc);
    }
  }
}

// g, y, dx: [outer, C, inner], one thread per line; dx written.
template <bool Log>
__global__ void softmax_backward_lines_kernel(const float* g, const float* y, float* dx,
                                              int64_t lines, int64_t C, int64_t inner) {
  for (int64_t l = global_thread(); l < lines; l += grid_threads()) {
    const int64_t base = (l / inner) * C * inner + l % inner;
    float acc = 0.0f;
    for (int64_t c = 0; c < C; ++c) {
      const int64_t k = base + c * inner;
      acc += Log ? g[k] : g[k] * y[k];
    }
    for (int64_t c = 0; c < C; ++c) {
      const int64_t k = base + c * inner;
      dx[k] = Log ? math::log_softmax_grad(g[k], y[k], acc) : math::softmax_grad(g[k], y[k], acc);
    }
  }
}

// row_loss: [N]; loss: [1] = sum / count, summed in a fixed order by one block (deterministic).
__global__ void mean_loss_kernel(const float* row_loss, float* loss, int64_t N, int64_t count) {
  __shared__ float scratch[32];
  float acc = 0.0f;
  for (int64_t r = threadIdx.x; r < N; r += blockDim.x) acc += row_loss[r];
  acc = block_reduce<false>(acc, scratch);
  if (threadIdx.x == 0) loss[0] = acc / static_cast<float>(count);  // count 0: NaN, as PyTorch
}

// g: [1]; log_probs, dlogits: [N, C]; dlogits written (0 on ignored rows), in one pass.
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

unsigned line_blocks(int64_t lines) {
  return static_cast<unsigned>(lines < 65535 * 16 ? lines : 65535 * 16);
}
dim3 warp_grid(int64_t rows) {
  return dim3(blocks_for(rows, static_cast<unsigned>(kWarpsPerBlock)));
}

// Calls f(std::integral_constant<int, P>) with the smallest P in 1, 2, 4, ..., 32 such that
// C <= 32 P; returns false (calling nothing) when C > 1024.
template <class F>
bool with_per_lane(int64_t C, F&& f) {
  if (C <= 32) return f(std::integral_constant<int, 1>{}), true;
  if (C <= 64) return f(std::integral_constant<int, 2>{}), true;
  if (C <= 128) return f(std::integral_constant<int, 4>{}), true;
  if (C <= 256) return f(std::integral_constant<int, 8>{}), true;
  if (C <= 512) return f(std::integral_constant<int, 16>{}), true;
  if (C <= 1024) return f(std::integral_constant<int, 32>{}), true;
  return false;
}

// Forward over rows (inner == 1), with or without the loss.
template <bool Log, bool WithLoss>
void rows_forward(const float* x, float* y, int64_t rows, int64_t C, const int64_t* targets,
                  float eps, int64_t ignore_index, float* row_loss, cudaStream_t stream) {
  const bool done = with_per_lane(C, [&](auto per_lane) {
    launch_kernel(softmax_warp_kernel<decltype(per_lane)::value, Log, WithLoss>, warp_grid(rows),
                  dim3(kThreadsPerBlock), 0, stream, x, y, rows, C, targets, eps, ignore_index,
                  row_loss);
  });
  if (!done)
    launch_kernel(softmax_block_kernel<Log, WithLoss>, dim3(line_blocks(rows)),
                  dim3(kThreadsPerBlock), 0, stream, x, y, rows, C, targets, eps, ignore_index,
                  row_loss);
}

}  // namespace

void softmax_forward(const float* x, float* y, int64_t outer, int64_t C, int64_t inner, bool log,
                     cudaStream_t stream) {
  const int64_t lines = outer * inner;
  if (lines == 0 || C == 0) return;
  if (inner > 1) {
    if (log)
      launch_kernel(softmax_lines_kernel<true>, dim3(blocks_for(lines, kThreadsPerBlock)),
                    dim3(kThreadsPerBlock), 0, stream, x, y, lines, C, inner);
    else
      launch_kernel(softmax_lines_kernel<false>, dim3(blocks_for(lines, kThreadsPerBlock)),
                    dim3(kThreadsPerBlock), 0, stream, x, y, lines, C, inner);
    return;
  }
  if (log)
    rows_forward<true, false>(x, y, outer, C, nullptr, 0.0f, 0, nullptr, stream);
  else
    rows_forward<false, false>(x, y, outer, C, nullptr, 0.0f, 0, nullptr, stream);
}

void softmax_backward(const float* g, const float* y, float* dx, int64_t outer, int64_t C,
                      int64_t inner, bool log, cudaStream_t stream) {
  const int64_t lines = outer * inner;
  if (lines == 0 || C == 0) return;
  auto run = [&](auto log_tag) {
    constexpr bool Log = decltype(log_tag)::value;
    if (inner > 1) {
      launch_kernel(softmax_backward_lines_kernel<Log>, dim3(blocks_for(lines, kThreadsPerBlock)),
                    dim3(kThreadsPerBlock), 0, stream, g, y, dx, lines, C, inner);
      return;
    }
    const bool done = with_per_lane(C, [&](auto per_lane) {
      launch_kernel(softmax_backward_warp_kernel<decltype(per_lane)::value, Log>, warp_grid(outer),
                    dim3(kThreadsPerBlock), 0, stream, g, y, dx, outer, C);
    });
    if (!done)
      launch_kernel(softmax_backward_block_kernel<Log>, dim3(line_blocks(outer)),
                    dim3(kThreadsPerBlock), 0, stream, g, y, dx, outer, C);
  };
  if (log)
    run(std::true_type{});
  else
    run(std::false_type{});
}

void cross_entropy_forward(const float* logits, const int64_t* targets, float* log_probs,
                           float* loss, float* workspace, int64_t N, int64_t C,
                           float label_smoothing, int64_t ignore_index, int64_t count,
                           cudaStream_t stream) {
  float* row_loss = workspace;  // [N]
  if (N > 0 && C > 0)
    rows_forward<true, true>(logits, log_probs, N, C, targets, label_smoothing, ignore_index,
                             row_loss, stream);
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
