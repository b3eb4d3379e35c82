#pragma once
// Device-side helpers shared by the CUDA kernel files: grid-stride indices, the n-dimensional
// offset calculator of the strided kernels and block-wide reductions. Include after launch.h.
#include <cstdint>

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

template <int NOps>
NdIndexer<NOps> make_indexer(const int64_t* shape, int ndim, const int64_t* const* strides) {
  NdIndexer<NOps> ix;
  ix.ndim = ndim;
  for (int d = 0; d < ndim; ++d) {
    ix.shape[d] = shape[d];
    for (int k = 0; k < NOps; ++k) ix.strides[k][d] = strides[k][d];
  }
  return ix;
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
