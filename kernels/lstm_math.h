#pragma once
// The LSTM cell's per-element math, written once for every device (kernels/cpu/lstm.cpp,
// kernels/cuda/lstm.cu). One hidden unit j of one batch row, PyTorch's gate order i, f, g, o:
//
//   i = sigmoid(a_i)   f = sigmoid(a_f)   g = tanh(a_g)   o = sigmoid(a_o)
//   c = f * c_prev + i * g
//   h = o * tanh(c)
//
// where a_* = W_i* x_t + b_i* + W_h* h_prev + b_h* are the pre-activations (lstm_layer in
// layers/lstm.cpp computes them with GEMMs). docs/lstm.md derives the backward below step by
// step.
#include <cmath>

#include "reel/kernels/common.h"
#include "reel/kernels/elementwise_math.h"

namespace reel::math {

// Forward of one unit. a_i..a_o: pre-activations; c_prev: the cell state before the step.
// Writes the activations i, f, g, o (what the backward reads) and the new c and h.
REEL_HD void lstm_unit_forward(float a_i, float a_f, float a_g, float a_o, float c_prev, float* i,
                               float* f, float* g, float* o, float* c, float* h) {
  *i = sigmoid(a_i);
  *f = sigmoid(a_f);
  *g = tanhf(a_g);
  *o = sigmoid(a_o);
  *c = *f * c_prev + *i * *g;
  *h = *o * tanhf(*c);
}

// Backward of one unit through one step. dh: d(loss)/dh of this step (from the output and from
// the next step); dc: d(loss)/dc from the next step. i, f, g, o: the forward's activations;
// c, c_prev: the cell state after and before the step. Writes the gradients of the four
// pre-activations and d(loss)/dc_prev:
//   dc_total = dc + dh * o * (1 - tanh(c)^2)
//   da_o = dh * tanh(c) * o (1 - o)        da_i = dc_total * g * i (1 - i)
//   da_g = dc_total * i * (1 - g^2)        da_f = dc_total * c_prev * f (1 - f)
//   dc_prev = dc_total * f
REEL_HD void lstm_unit_backward(float dh, float dc, float i, float f, float g, float o, float c,
                                float c_prev, float* da_i, float* da_f, float* da_g, float* da_o,
                                float* dc_prev) {
  const float tc = tanhf(c);
  const float dct = dc + dh * o * (1.0f - tc * tc);
  *da_o = dh * tc * o * (1.0f - o);
  *da_i = dct * g * i * (1.0f - i);
  *da_g = dct * i * (1.0f - g * g);
  *da_f = dct * c_prev * f * (1.0f - f);
  *dc_prev = dct * f;
}

// Whether batch row b takes part in step t: always without lengths, else while t < lengths[b].
REEL_HD bool lstm_active(const int64_t* lengths, int64_t b, int64_t t) {
  return lengths == nullptr || t < lengths[b];
}

}  // namespace reel::math
