#pragma once
// Pointwise kernels: unary ops, broadcasting binary ops, fills and accumulation.
// The CUDA versions take the same arguments (device pointers; strides and shapes in host
// memory) plus the stream last.
#include <cstdint>

#include "reel/kernels/common.h"
#include "reel/kernels/elementwise_math.h"

namespace reel::cpu {

// x: [n] in, y: [n] out (y may alias x)
void unary_forward(math::Unary op, const float* x, float* y, int64_t n);
// g: [n] d(loss)/dy, x: [n] input, y: [n] output of the forward, dx: [n] written (a fresh
// gradient, see the contract in kernels/common.h)
void unary_backward(math::Unary op, const float* g, const float* x, const float* y, float* dx,
                    int64_t n);

// Broadcasting binary op over an output of `ndim` (<= 16) dimensions:
// shape: [ndim] output extents; out: [prod(shape)] contiguous
// a, b: addressed by element strides a_strides, b_strides: [ndim] (0 on a broadcast dimension)
void binary_forward(math::Binary op, const float* a, const int64_t* a_strides, const float* b,
                    const int64_t* b_strides, float* out, const int64_t* shape, int ndim);

// The gradient of a broadcasting binary op for one input (side 0: a, side 1: b), over the
// output's extents shape: [ndim]: out[i] = d(f)/d(side)(a[i], b[i]) * g[i].
// g: addressed by g_strides; a, b: by a_strides, b_strides (0 on broadcast dimensions; unread
// by add and sub); out: [prod(shape)] contiguous, written (a temporary that sum_reduce then
// folds into the input's shape).
void binary_backward(math::Binary op, int side, const float* g, const int64_t* g_strides,
                     const float* a, const int64_t* a_strides, const float* b,
                     const int64_t* b_strides, float* out, const int64_t* shape, int ndim);

// The vector bodies that the CPU pointwise, reduction, softmax and copy kernels run: "avx512",
// "avx2" or "generic" (baseline x86-64), the best this CPU has unless REEL_VEC_ISA names another
// that it has (CPU detection shared with the GEMM's, kernels/cpu/isa.h).
const char* vec_isa();
// Forces the vector bodies ("avx512", "avx2" or "generic"); nullptr or "auto" restores the
// run-time choice. Returns false, and changes nothing, for an unknown name or an ISA this CPU
// lacks. For tests and benchmarks; not safe to call while another thread runs a kernel.
bool vec_force_isa(const char* isa);

// y: [n] = value
void fill(float* y, float value, int64_t n);
// y: [n] += alpha * x: [n]
void axpy(float alpha, const float* x, float* y, int64_t n);
// y: [n] *= alpha
void scale(float alpha, float* y, int64_t n);

}  // namespace reel::cpu

namespace reel::cuda {

void unary_forward(math::Unary op, const float* x, float* y, int64_t n, cudaStream_t stream);
void unary_backward(math::Unary op, const float* g, const float* x, const float* y, float* dx,
                    int64_t n, cudaStream_t stream);
void binary_forward(math::Binary op, const float* a, const int64_t* a_strides, const float* b,
                    const int64_t* b_strides, float* out, const int64_t* shape, int ndim,
                    cudaStream_t stream);
void binary_backward(math::Binary op, int side, const float* g, const int64_t* g_strides,
                     const float* a, const int64_t* a_strides, const float* b,
                     const int64_t* b_strides, float* out, const int64_t* shape, int ndim,
                     cudaStream_t stream);
void fill(float* y, float value, int64_t n, cudaStream_t stream);
void axpy(float alpha, const float* x, float* y, int64_t n, cudaStream_t stream);
void scale(float alpha, float* y, int64_t n, cudaStream_t stream);

}  // namespace reel::cuda
