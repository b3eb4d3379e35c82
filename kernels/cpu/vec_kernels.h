#pragma once
// The contiguous vector bodies behind the CPU pointwise, reduction, softmax and copy kernels, one
// table per instruction set: AVX-512 (vec_avx512.cpp), AVX2 + FMA (vec_avx2.cpp) and baseline
// x86-64 (vec_generic.cpp), all three the same templates (vec_body.h). The kernels in
// elementwise.cpp, reduce.cpp, softmax.cpp and copy.cpp split the work across threads and call
// the table chosen at run time (vec_table()). Every body runs on the calling thread.
#include <cstdint>

#include "reel/kernels/cpu/isa.h"

namespace reel::cpu {

constexpr int kUnaryOps = 6;   // math::Unary: Neg, Exp, Log, Tanh, Sigmoid, Relu
constexpr int kBinaryOps = 4;  // math::Binary: Add, Sub, Mul, Div

struct VecKernels {
  // x: [n] in, y: [n] out (y may alias x); indexed by math::Unary
  void (*unary[kUnaryOps])(const float* x, float* y, int64_t n);
  // g, x, y: [n] (x or y unread where the derivative does not need it), dx: [n] written
  void (*unary_backward[kUnaryOps])(const float* g, const float* x, const float* y, float* dx,
                                    int64_t n);
  // out: [n]; a: [n] when sa == 1, one value when sa == 0; b likewise; indexed by math::Binary
  void (*binary[kBinaryOps])(const float* a, int64_t sa, const float* b, int64_t sb, float* out,
                             int64_t n);
  // [side][op]: out[i] = d(a op b)/d(side) * g[i]; g: [n], out: [n]; a, b as in binary
  void (*binary_backward[2][kBinaryOps])(const float* g, const float* a, int64_t sa, const float* b,
                                         int64_t sb, float* out, int64_t n);
  void (*fill)(float* y, float value, int64_t n);                  // y: [n] = value
  void (*axpy)(float alpha, const float* x, float* y, int64_t n);  // y: [n] += alpha * x: [n]
  void (*scale)(float alpha, float* y, int64_t n);                 // y: [n] *= alpha
  void (*copy)(const float* x, float* y, int64_t n);               // y: [n] = x: [n]
  // The sum of x: [n], in float within blocks of 4096 and double across them.
  double (*sum)(const float* x, int64_t n);
  // x, y: [rows, C]: softmax (or log_softmax) of each row. row_sums: [rows] out, the sum of each
  // output row (log_softmax only; may be null).
  void (*softmax_rows)(const float* x, float* y, int64_t rows, int64_t C, bool log,
                       double* row_sums);
  // g, y, dx: [rows, C]; dx written
  void (*softmax_backward_rows)(const float* g, const float* y, float* dx, int64_t rows, int64_t C,
                                bool log);
  // log_probs, d: [rows, C]: d = w * exp(log_probs) - offset (the caller then fixes each row's
  // target element)
  void (*exp_scale_sub)(const float* log_probs, float* d, int64_t n, float w, float offset);
  // out[c * ld_out + r] = in[r * ld_in + c] for r < rows, c < cols (in: rows x cols at row
  // stride ld_in, out: cols x rows at row stride ld_out)
  void (*transpose)(const float* in, int64_t ld_in, float* out, int64_t ld_out, int64_t rows,
                    int64_t cols);
  // One LSTM step of one active batch row (kernels/lstm.h, kernels/lstm_math.h). a: [4H]
  // pre-activations in, the activations i, f, g, o out; c_prev: [H]; c, h, out: [H] out.
  void (*lstm_forward_row)(float* a, const float* c_prev, float* c, float* h, float* out,
                           int64_t H);
  // Its backward. a: [4H] activations; c, c_prev: [H]; dh: [H]; dout: [H] or nullptr (added to
  // dh); dc: [H] in, d(loss)/dc_prev out; da: [4H] out; dh_carry: [H] out, 0 (may alias dh).
  void (*lstm_backward_row)(const float* a, const float* c, const float* c_prev, const float* dh,
                            const float* dout, float* dc, float* da, float* dh_carry, int64_t H);
};

const VecKernels& vec_kernels_avx512();
const VecKernels& vec_kernels_avx2();
const VecKernels& vec_kernels_generic();

// The table for `isa` (which this CPU must have).
const VecKernels& vec_kernels(Isa isa);

// The table the kernels use: vec_force_isa()'s choice, else REEL_VEC_ISA when set to an ISA this
// CPU has, else best_isa(). Declared for users in kernels/elementwise.h as vec_isa().
const VecKernels& vec_table();

}  // namespace reel::cpu
