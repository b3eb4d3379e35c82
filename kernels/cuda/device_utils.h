#pragma once
// Device-side helpers shared by the CUDA kernel files: grid-stride indices, the n-dimensional
// offset calculator of the strided kernels and block-wide reductions. Include after launch.h.
#include <cstdint>
#include <initializer_list>

#include "reel/kernels/common.h"

namespace reel::cuda {

constexpr unsigned kThreadsPerBlock = 256;

// Shapes and strides passed to a kernel by value (kernel arguments live in constant memory).
template <int NOps>
struct NdIndexer {
  int ndim = 0;
  int64_t shape[kMaxDims];
  int64_t strides[NOps][kMaxDims];

  // Element offsets, one per operand, of the linear index i of `shape` (row-major).
  __device__ __forceinline__ void offsets(int64_t i, int64_t* off) const {
    for (int k = 0; k < NOps; ++k) off[k] = 0;
    for (int d = ndim - 1; d >= 0; --d) {
      const int64_t idx = i % shape[d];
      i /= shape[d];
      for (int k = 0; k < NOps; ++k) off[k] += idx * strides[k][d];
    }
  }
};

// Shapes and strides for a kernel, with dimensions merged where every operand walks them as one
// (stride[d] == stride[d + 1] * shape[d + 1] for all operands) and extents of 1 dropped: fewer
// divisions per element, and the same linear order over the shape. Strides are in elements.
template <int NOps>
NdIndexer<NOps> make_indexer(const int64_t* shape, int ndim, const int64_t* const* strides) {
  NdIndexer<NOps> ix;
  ix.ndim = 0;
  for (int d = 0; d < ndim; ++d) {
    if (shape[d] == 1) continue;
    if (ix.ndim > 0) {
      const int last = ix.ndim - 1;
      bool merge = true;
      for (int k = 0; k < NOps; ++k)
        merge = merge && ix.strides[k][last] == strides[k][d] * shape[d];
      if (merge) {
        ix.shape[last] *= shape[d];
        for (int k = 0; k < NOps; ++k) ix.strides[k][last] = strides[k][d];
        continue;
      }
    }
    ix.shape[ix.ndim] = shape[d];
    for (int k = 0; k < NOps; ++k) ix.strides[k][ix.ndim] = strides[k][d];
    ++ix.ndim;
  }
  return ix;
}

// How an operand of a broadcasting op is read, seen from the host: every element in order
// (contiguous over the output's shape), one element for all (a scalar), or through strides.
enum class Access : int { Contiguous, Scalar, Strided };
inline Access access_of(const int64_t* shape, int ndim, const int64_t* strides) {
  bool scalar = true, contiguous = true;
  int64_t expect = 1;
  for (int d = ndim - 1; d >= 0; --d) {
    if (shape[d] == 1) continue;
    scalar = scalar && strides[d] == 0;
    contiguous = contiguous && strides[d] == expect;
    expect *= shape[d];
  }
  return scalar ? Access::Scalar : contiguous ? Access::Contiguous : Access::Strided;
}

// True when every pointer is 16-byte aligned: float4 loads and stores may be used.
inline bool aligned16(std::initializer_list<const void*> ptrs) {
  for (const void* p : ptrs)
    if (reinterpret_cast<uintptr_t>(p) % 16 != 0) return false;
  return true;
}

__device__ __forceinline__ int64_t global_thread() {
  return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ int64_t grid_threads() {
  return static_cast<int64_t>(gridDim.x) * blockDim.x;
}

// Sum of v over the warp; every lane gets it.
__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o /= 2) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Block-wide sum (or max) for blockDim.x a multiple of 32, at most 1024. Every thread of the
// block must call it; every thread gets the result. scratch: [32] shared floats.
template <bool Max>
__device__ __forceinline__ float block_reduce(float v, float* scratch) {
  const unsigned lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const unsigned warps = blockDim.x / 32;
  v = Max ? warp_max(v) : warp_sum(v);
  __syncthreads();  // scratch may still be read by a previous call
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  float r = Max ? -INFINITY : 0.0f;
  if (lane < warps) r = scratch[lane];
  // Every warp reduces the per-warp partials itself, so no second barrier is needed.
  return Max ? warp_max(r) : warp_sum(r);
}

}  // namespace reel::cuda
