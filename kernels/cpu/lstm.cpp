#include "reel/kernels/lstm.h"

#include "reel/kernels/cpu/nd_loop.h"
#include "reel/kernels/cpu/vec_kernels.h"

namespace reel::cpu {

namespace {
// A step of B rows of H units is small (8192 units for B 32, H 256): split it over threads only
// when it is large enough to pay for a parallel region.
bool go_parallel(int64_t units) { return units >= (1 << 14) && num_threads() > 1; }
}  // namespace

void lstm_cell_forward(float* gates, const float* c_prev, const float* h_prev, float* c, float* h,
                       float* out, const int64_t* lengths, int64_t t, int64_t B, int64_t H) {
  const VecKernels& vk = vec_table();
#pragma omp parallel for if (go_parallel(B * H)) num_threads(num_threads()) schedule(static)
  for (int64_t b = 0; b < B; ++b) {
    float* a = gates + b * 4 * H;  // [4H]: a_i, a_f, a_g, a_o
    const float* cp = c_prev + b * H;
    const float* hp = h_prev + b * H;
    float* cb = c + b * H;
    float* hb = h + b * H;
    float* ob = out + b * H;
    if (!math::lstm_active(lengths, b, t)) {
      for (int64_t j = 0; j < H; ++j) {
        cb[j] = cp[j];
        hb[j] = hp[j];
        ob[j] = 0.0f;
      }
      for (int64_t j = 0; j < 4 * H; ++j) a[j] = 0.0f;  // no gates at a step not taken
      continue;
    }
    // The vector body of math::lstm_unit_forward for this CPU (vec_body.h).
    vk.lstm_forward_row(a, cp, cb, hb, ob, H);
  }
}

void lstm_cell_backward(const float* gates, const float* c, const float* c_prev, const float* dh,
                        const float* dout, float* dc, float* dgates, float* dh_carry,
                        const int64_t* lengths, int64_t t, int64_t B, int64_t H) {
  const VecKernels& vk = vec_table();
#pragma omp parallel for if (go_parallel(B * H)) num_threads(num_threads()) schedule(static)
  for (int64_t b = 0; b < B; ++b) {
    const float* a = gates + b * 4 * H;  // [4H] activations i, f, g, o
    float* da = dgates + b * 4 * H;
    const bool active = math::lstm_active(lengths, b, t);
    const int64_t k = b * H;
    if (!active) {  // the state went through unchanged: so do its gradients
      for (int64_t j = 0; j < H; ++j) {
        dh_carry[k + j] = dh[k + j];
        da[j] = da[H + j] = da[2 * H + j] = da[3 * H + j] = 0.0f;
      }
      continue;
    }
    // The vector body of math::lstm_unit_backward for this CPU (vec_body.h).
    vk.lstm_backward_row(a, c + k, c_prev + k, dh + k, dout ? dout + k : nullptr, dc + k, da,
                         dh_carry + k, H);
  }
}

}  // namespace reel::cpu
