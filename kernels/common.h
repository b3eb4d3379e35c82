#pragma once
// Macros and shape helpers shared by the CPU and CUDA builds of every kernel family.
//
// The gradient contract every kernel header follows (DESIGN.md): a backward kernel *writes* its
// gradient into a fresh buffer (`=`, never `+=`), so the op that calls it can hand it to the
// autograd engine, which sums fan-in itself. A kernel accumulates (`+=`, GEMM beta = 1) only
// inside one op, where a gradient is a sum over steps or positions (the LSTM's weight gradients
// over T, a convolution's weight gradient over the batch, a batched matmul's shared operand);
// its header says so where it does.

// REEL_HD marks the per-element math in kernels/*_math.h: one definition that both the host
// compiler and nvcc (or the SIMT emulation) inline.
#if defined(__CUDACC__)
#define REEL_HD __host__ __device__ __forceinline__
#else
#define REEL_HD inline
#endif

// The CUDA stream type, declared exactly as cuda_runtime.h does, so that kernel headers can
// declare the CUDA versions of each op without including CUDA.
typedef struct CUstream_st* cudaStream_t;

#include <cstdint>

namespace reel {

// The most dimensions a strided kernel (copy, broadcast, reduction) handles; core checks
// every tensor against it before calling one.
constexpr int kMaxDims = 16;

// Product of shape: [ndim] extents (1 when ndim == 0).
REEL_HD int64_t shape_product(const int64_t* shape, int ndim) {
  int64_t n = 1;
  for (int d = 0; d < ndim; ++d) n *= shape[d];
  return n;
}

// strides: [ndim] out, the element strides of a contiguous row-major tensor of extents
// shape: [ndim].
REEL_HD void contiguous_strides(const int64_t* shape, int ndim, int64_t* strides) {
  int64_t s = 1;
  for (int d = ndim - 1; d >= 0; --d) {
    strides[d] = s;
    s *= shape[d];
  }
}

}  // namespace reel
