// CUDA LSTM step kernels: one thread per (row, unit), the four gates of a unit read and written
// by the same thread (coalesced across the warp: neighbouring threads, neighbouring units).
// Per-element math: kernels/lstm_math.h (shared with the CPU).
#include "reel/kernels/cuda/launch.h"
//
#include "reel/kernels/cuda/device_utils.h"
#include "reel/kernels/lstm.h"

namespace reel::cuda {

namespace {

// gates: [B, 4H] in/out; c_prev, h_prev, c, h, out: [B, H]; lengths: [B] or nullptr
__global__ void lstm_forward_kernel(float* gates, const float* c_prev, const float* h_prev,
                                    float* c, float* h, float* out, const int64_t* lengths,
                                    int64_t t, int64_t B, int64_t H) {
  for (int64_t k = global_thread(); k < B * H; k += grid_threads()) {
    const int64_t b = k / H, j = k % H;
    if (!math::lstm_active(lengths, b, t)) {
      c[k] = c_prev[k];
      h[k] = h_prev[k];
      out[k] = 0.0f;
      float* a = gates + b * 4 * H;  // no gates at a step not taken
      a[j] = 0.0f;
      a[H + j] = 0.0f;
      a[2 * H + j] = 0.0f;
      a[3 * H + j] = 0.0f;
      continue;
    }
    float* a = gates + b * 4 * H;
    math::lstm_unit_forward(a[j], a[H + j], a[2 * H + j], a[3 * H + j], c_prev[k], &a[j], &a[H + j],
                            &a[2 * H + j], &a[3 * H + j], &c[k], &h[k]);
    out[k] = h[k];
  }
}

// gates, dgates: [B, 4H]; c, c_prev, dh, dout (or nullptr), dc, dh_carry: [B, H]
__global__ void lstm_backward_kernel(const float* gates, const float* c, const float* c_prev,
                                     const float* dh, const float* dout, float* dc, float* dgates,
                                     float* dh_carry, const int64_t* lengths, int64_t t, int64_t B,
                                     int64_t H) {
  for (int64_t k = global_thread(); k < B * H; k += grid_threads()) {
    const int64_t b = k / H, j = k % H;
    const float* a = gates + b * 4 * H;
    float* da = dgates + b * 4 * H;
    if (!math::lstm_active(lengths, b, t)) {
      dh_carry[k] = dh[k];
      da[j] = 0.0f;
      da[H + j] = 0.0f;
      da[2 * H + j] = 0.0f;
      da[3 * H + j] = 0.0f;
      continue;
    }
    const float dhk = dh[k] + (dout ? dout[k] : 0.0f);
    math::lstm_unit_backward(dhk, dc[k], a[j], a[H + j], a[2 * H + j], a[3 * H + j], c[k],
                             c_prev[k], &da[j], &da[H + j], &da[2 * H + j], &da[3 * H + j], &dc[k]);
    dh_carry[k] = 0.0f;
  }
}

}  // namespace

void lstm_cell_forward(float* gates, const float* c_prev, const float* h_prev, float* c, float* h,
                       float* out, const int64_t* lengths, int64_t t, int64_t B, int64_t H,
                       cudaStream_t stream) {
  if (B * H == 0) return;
  launch_kernel(lstm_forward_kernel, dim3(blocks_for(B * H, kThreadsPerBlock)),
                dim3(kThreadsPerBlock), 0, stream, gates, c_prev, h_prev, c, h, out, lengths, t, B,
                H);
}

void lstm_cell_backward(const float* gates, const float* c, const float* c_prev, const float* dh,
                        const float* dout, float* dc, float* dgates, float* dh_carry,
                        const int64_t* lengths, int64_t t, int64_t B, int64_t H,
                        cudaStream_t stream) {
  if (B * H == 0) return;
  launch_kernel(lstm_backward_kernel, dim3(blocks_for(B * H, kThreadsPerBlock)),
                dim3(kThreadsPerBlock), 0, stream, gates, c, c_prev, dh, dout, dc, dgates, dh_carry,
                lengths, t, B, H);
}

}  // namespace reel::cuda
