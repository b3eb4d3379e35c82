// CUDA sum over any set of dimensions. Each output element is owned by one thread (reduced
// dimensions strided in memory: neighbouring threads read neighbouring elements) or by one
// block (the innermost, contiguous dimension is reduced: the block reads it coalesced).
#include "reel/kernels/cuda/launch.h"
//
#include "reel/kernels/cuda/device_utils.h"
#include "reel/kernels/reduce.h"

namespace reel::cuda {

namespace {

struct ReducePlan {
  int nk = 0, nr = 0;        // kept and reduced dimensions
  int64_t kshape[kMaxDims];  // kept extents
  int64_t k_in[kMaxDims];    // their input strides
  int64_t k_out[kMaxDims];   // their output strides
  int64_t rshape[kMaxDims];  // reduced extents
  int64_t r_in[kMaxDims];    // their input strides

  __device__ __forceinline__ void kept_offsets(int64_t o, int64_t* in_off, int64_t* out_off) const {
    *in_off = 0;
    *out_off = 0;
    for (int d = nk - 1; d >= 0; --d) {
      const int64_t idx = o % kshape[d];
      o /= kshape[d];
      *in_off += idx * k_in[d];
      *out_off += idx * k_out[d];
    }
  }
  __device__ __forceinline__ int64_t reduced_offset(int64_t r) const {
    int64_t off = 0;
    for (int d = nr - 1; d >= 0; --d) {
      off += (r % rshape[d]) * r_in[d];
      r /= rshape[d];
    }
    return off;
  }
};

// in: input; out: += sums; n_out outputs of n_red elements each.
__global__ void reduce_per_thread_kernel(const float* in, float* out, int64_t n_out, int64_t n_red,
                                         ReducePlan p) {
  for (int64_t o = global_thread(); o < n_out; o += grid_threads()) {
    int64_t in_off, out_off;
    p.kept_offsets(o, &in_off, &out_off);
    float acc = 0.0f;
    for (int64_t r = 0; r < n_red; ++r) acc += in[in_off + p.reduced_offset(r)];
    out[out_off] += acc;
  }
}

__global__ void reduce_per_block_kernel(const float* in, float* out, int64_t n_out, int64_t n_red,
                                        ReducePlan p) {
  __shared__ float scratch[32];
  for (int64_t o = blockIdx.x; o < n_out; o += gridDim.x) {
    int64_t in_off, out_off;
    p.kept_offsets(o, &in_off, &out_off);
    float acc = 0.0f;
    for (int64_t r = threadIdx.x; r < n_red; r += blockDim.x)
      acc += in[in_off + p.reduced_offset(r)];
    acc = block_reduce<false>(acc, scratch);
    if (threadIdx.x == 0) out[out_off] += acc;
  }
}

}  // namespace

void sum_reduce(const float* in, const int64_t* shape, int ndim, float* out,
                const int64_t* out_strides, cudaStream_t stream) {
  ReducePlan p;
  int64_t in_stride = 1, n_out = 1, n_red = 1;
  int64_t in_strides[kMaxDims];
  for (int d = ndim - 1; d >= 0; --d) {
    in_strides[d] = in_stride;
    in_stride *= shape[d];
  }
  for (int d = 0; d < ndim; ++d) {
    if (out_strides[d] == 0) {
      p.rshape[p.nr] = shape[d];
      p.r_in[p.nr++] = in_strides[d];
      n_red *= shape[d];
    } else {
      p.kshape[p.nk] = shape[d];
      p.k_in[p.nk] = in_strides[d];
      p.k_out[p.nk++] = out_strides[d];
      n_out *= shape[d];
    }
  }
  if (n_out == 0 || n_red == 0) return;
  const bool inner_reduced = ndim > 0 && out_strides[ndim - 1] == 0;
  if (inner_reduced && n_red >= 64) {
    const unsigned blocks = static_cast<unsigned>(n_out < 65535 * 16 ? n_out : 65535 * 16);
    launch_kernel(reduce_per_block_kernel, dim3(blocks), dim3(kThreadsPerBlock), 0, stream, in, out,
                  n_out, n_red, p);
  } else {
    launch_kernel(reduce_per_thread_kernel, dim3(blocks_for(n_out, kThreadsPerBlock)),
                  dim3(kThreadsPerBlock), 0, stream, in, out, n_out, n_red, p);
  }
}

}  // namespace reel::cuda
