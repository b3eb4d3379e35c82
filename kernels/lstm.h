#pragma once
// The LSTM's fused pointwise kernels, one call per time step (the GEMMs around them are
// kernels/gemm.h's). Layout of one step: B batch rows, H hidden units, the four gates of a row
// side by side in PyTorch's order i, f, g, o ([B, 4H], gate k of unit j at column k H + j).
// Per-element math: kernels/lstm_math.h.
//
// Variable lengths: lengths: [B] or nullptr. Row b is active at time t while t < lengths[b];
// an inactive row keeps its state (c = c_prev, h = h_prev), outputs 0, has its gates set to 0
// and receives no gradient through them.
#include <cstdint>

#include "reel/kernels/common.h"
#include "reel/kernels/lstm_math.h"

namespace reel::cpu {

// gates: [B, 4H] pre-activations in (x W_ih^T + b_ih + b_hh + h_prev W_hh^T), the
//        activations i, f, g, o out (in place: what the backward reads)
// c_prev, h_prev: [B, H] the state before the step
// c, h: [B, H] out, the state after the step; out: [B, H] out, h or 0 where inactive
void lstm_cell_forward(float* gates, const float* c_prev, const float* h_prev, float* c, float* h,
                       float* out, const int64_t* lengths, int64_t t, int64_t B, int64_t H);

// One step backward. gates: [B, 4H] the forward's activations; c, c_prev: [B, H] the state after
// and before the step. dh: [B, H] in, d(loss)/dh arriving from later steps; dout: [B, H] or
// nullptr, d(loss)/d(out) of this step (added where active). dc: [B, H] in d(loss)/dc, out
// d(loss)/dc_prev (in place). dgates: [B, 4H] out, the pre-activation gradients (0 where
// inactive). dh_carry: [B, H] out: dh where inactive (the state passed through unchanged), 0
// where active; the caller adds dgates W_hh to it (GEMM beta = 1) to get d(loss)/dh_prev.
// dh and dh_carry may be the same buffer.
void lstm_cell_backward(const float* gates, const float* c, const float* c_prev, const float* dh,
                        const float* dout, float* dc, float* dgates, float* dh_carry,
                        const int64_t* lengths, int64_t t, int64_t B, int64_t H);

}  // namespace reel::cpu

namespace reel::cuda {
// Same contracts; every pointer is device memory (lengths too).
void lstm_cell_forward(float* gates, const float* c_prev, const float* h_prev, float* c, float* h,
                       float* out, const int64_t* lengths, int64_t t, int64_t B, int64_t H,
                       cudaStream_t stream);
void lstm_cell_backward(const float* gates, const float* c, const float* c_prev, const float* dh,
                        const float* dout, float* dc, float* dgates, float* dh_carry,
                        const int64_t* lengths, int64_t t, int64_t B, int64_t H,
                        cudaStream_t stream);
}  // namespace reel::cuda
