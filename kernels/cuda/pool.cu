// CUDA 2-D max pooling and adaptive average pooling. Index math: kernels/pool_math.h (shared with
// the CPU).
//
// Forward: one thread per output element. Backward: one thread per input element, a gather over
// the output windows that contain it, in a fixed order (no atomics: deterministic, and windows
// that overlap need no care).
#include "reel/kernels/cuda/launch.h"
//
#include "reel/kernels/cuda/device_utils.h"
#include "reel/kernels/pool.h"

namespace reel::cuda {

namespace {

// The output windows along one axis (window k at stride st, padding pd, out of them) that contain
// input coordinate h: [*first, *last], empty when *first > *last. Window p covers
// [p * st - pd, p * st - pd + k).
__device__ __forceinline__ void windows_containing(int64_t h, int64_t k, int64_t st, int64_t pd,
                                                   int64_t out, int64_t* first, int64_t* last) {
  const int64_t hi = h + pd;      // p * st <= hi
  const int64_t lo = hi - k + 1;  // p * st >= lo
  *first = lo <= 0 ? 0 : (lo + st - 1) / st;
  *last = hi / st < out - 1 ? hi / st : out - 1;
}

// x: [NC, H, W] -> y: [NC, P, Q]; argmax: [NC, P, Q] or nullptr.
__global__ void max_pool_forward_kernel(const float* x, float* y, int32_t* argmax, Pool2dShape s) {
  const int64_t total = s.NC * s.P * s.Q;
  for (int64_t i = global_thread(); i < total; i += grid_threads()) {
    const int64_t plane = i / (s.P * s.Q), p = (i / s.Q) % s.P, q = i % s.Q;
    const int64_t h0 = p * s.sh - s.ph, w0 = q * s.sw - s.pw;
    const int64_t hs = h0 < 0 ? 0 : h0, ws = w0 < 0 ? 0 : w0;
    const int64_t he = h0 + s.kh < s.H ? h0 + s.kh : s.H, we = w0 + s.kw < s.W ? w0 + s.kw : s.W;
    const float* xp = x + plane * s.H * s.W;
    float m = -INFINITY;
    int64_t at = hs * s.W + ws;  // a window of -inf only: its first element
    for (int64_t h = hs; h < he; ++h)
      for (int64_t w = ws; w < we; ++w) {
        const float v = xp[h * s.W + w];
        if (math::max_pool_takes(v, m)) {
          m = v;
          at = h * s.W + w;
        }
      }
    y[i] = m;
    if (argmax) argmax[i] = static_cast<int32_t>(at);
  }
}

// dy, argmax: [NC, P, Q] -> dx: [NC, H, W] written.
__global__ void max_pool_backward_kernel(const float* dy, const int32_t* argmax, float* dx,
                                         Pool2dShape s) {
  const int64_t total = s.NC * s.H * s.W;
  for (int64_t i = global_thread(); i < total; i += grid_threads()) {
    const int64_t plane = i / (s.H * s.W), h = (i / s.W) % s.H, w = i % s.W;
    int64_t p0, p1, q0, q1;
    windows_containing(h, s.kh, s.sh, s.ph, s.P, &p0, &p1);
    windows_containing(w, s.kw, s.sw, s.pw, s.Q, &q0, &q1);
    const int64_t base = plane * s.P * s.Q;
    const int32_t self = static_cast<int32_t>(h * s.W + w);
    float acc = 0.0f;
    for (int64_t p = p0; p <= p1; ++p)
      for (int64_t q = q0; q <= q1; ++q)
        if (argmax[base + p * s.Q + q] == self) acc += dy[base + p * s.Q + q];
    dx[i] = acc;
  }
}

// x: [NC, H, W] -> y: [NC, P, Q].
__global__ void adaptive_avg_forward_kernel(const float* x, float* y, int64_t NC, int64_t H,
                                            int64_t W, int64_t P, int64_t Q) {
  const int64_t total = NC * P * Q;
  for (int64_t i = global_thread(); i < total; i += grid_threads()) {
    const int64_t plane = i / (P * Q), p = (i / Q) % P, q = i % Q;
    const int64_t hs = math::adaptive_start(p, H, P), he = math::adaptive_end(p, H, P);
    const int64_t ws = math::adaptive_start(q, W, Q), we = math::adaptive_end(q, W, Q);
    const float* xp = x + plane * H * W;
    float acc = 0.0f;
    for (int64_t h = hs; h < he; ++h)
      for (int64_t w = ws; w < we; ++w) acc += xp[h * W + w];
    y[i] = acc / static_cast<float>((he - hs) * (we - ws));
  }
}

// The adaptive cells along one axis (out of them, over an input extent `in`) whose range
// contains input coordinate h: [*first, *last]. end(i) > h from i >= h * out / in on, and
// start(i) <= h up to i <= ((h + 1) * out - 1) / in.
__device__ __forceinline__ void cells_containing(int64_t h, int64_t in, int64_t out, int64_t* first,
                                                 int64_t* last) {
  *first = (h * out) / in;
  const int64_t l = ((h + 1) * out - 1) / in;
  *last = l < out - 1 ? l : out - 1;
}

// dy: [NC, P, Q] -> dx: [NC, H, W] written, each input the sum of dy / window size over the
// cells whose window contains it.
__global__ void adaptive_avg_backward_kernel(const float* dy, float* dx, int64_t NC, int64_t H,
                                             int64_t W, int64_t P, int64_t Q) {
  const int64_t total = NC * H * W;
  for (int64_t i = global_thread(); i < total; i += grid_threads()) {
    const int64_t plane = i / (H * W), h = (i / W) % H, w = i % W;
    int64_t p0, p1, q0, q1;
    cells_containing(h, H, P, &p0, &p1);
    cells_containing(w, W, Q, &q0, &q1);
    const float* g = dy + plane * P * Q;
    float acc = 0.0f;
    for (int64_t p = p0; p <= p1; ++p) {
      const int64_t rows = math::adaptive_end(p, H, P) - math::adaptive_start(p, H, P);
      for (int64_t q = q0; q <= q1; ++q) {
        const int64_t cols = math::adaptive_end(q, W, Q) - math::adaptive_start(q, W, Q);
        acc += g[p * Q + q] / static_cast<float>(rows * cols);
      }
    }
    dx[i] = acc;
  }
}

dim3 grid_for(int64_t n) { return dim3(blocks_for(n, kThreadsPerBlock)); }

}  // namespace

void max_pool2d_forward(const float* x, float* y, int32_t* argmax, const Pool2dShape& s,
                        cudaStream_t stream) {
  const int64_t total = s.NC * s.P * s.Q;
  if (total == 0) return;
  launch_kernel(max_pool_forward_kernel, grid_for(total), dim3(kThreadsPerBlock), 0, stream, x, y,
                argmax, s);
}

void max_pool2d_backward(const float* dy, const int32_t* argmax, float* dx, const Pool2dShape& s,
                         cudaStream_t stream) {
  const int64_t total = s.NC * s.H * s.W;
  if (total == 0) return;
  launch_kernel(max_pool_backward_kernel, grid_for(total), dim3(kThreadsPerBlock), 0, stream, dy,
                argmax, dx, s);
}

void adaptive_avg_pool2d_forward(const float* x, float* y, int64_t NC, int64_t H, int64_t W,
                                 int64_t P, int64_t Q, cudaStream_t stream) {
  const int64_t total = NC * P * Q;
  if (total == 0) return;
  launch_kernel(adaptive_avg_forward_kernel, grid_for(total), dim3(kThreadsPerBlock), 0, stream, x,
                y, NC, H, W, P, Q);
}

void adaptive_avg_pool2d_backward(const float* dy, float* dx, int64_t NC, int64_t H, int64_t W,
                                  int64_t P, int64_t Q, cudaStream_t stream) {
  const int64_t total = NC * H * W;
  if (total == 0) return;
  launch_kernel(adaptive_avg_backward_kernel, grid_for(total), dim3(kThreadsPerBlock), 0, stream,
                dy, dx, NC, H, W, P, Q);
}

}  // namespace reel::cuda
