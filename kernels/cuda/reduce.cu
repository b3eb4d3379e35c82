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
  int nk = 0, nr = 0;        // kept and reduced dimensions (after merging)
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
  // Input offset of reduced index r over the first `dims` reduced dimensions.
  __device__ __forceinline__ int64_t reduced_offset(int64_t r, int dims) const {
    int64_t off = 0;
    for (int d = dims - 1; d >= 0; --d) {
      off += (r % rshape[d]) * r_in[d];
      r /= rshape[d];
    }
    return off;
  }
};

// Appends dimension (extent, strides) to a list, merged into its last entry when both walk it
// as one (last stride == stride * extent for every operand). nops: 1 (input) or 2 (input and
// output).
void push_dim(int& n, int64_t* shape, int64_t* s0, int64_t* s1, int64_t extent, int64_t st0,
              int64_t st1, int nops) {
  if (extent == 1) return;
  if (n > 0 && s0[n - 1] == st0 * extent && (nops == 1 || s1[n - 1] == st1 * extent)) {
    shape[n - 1] *= extent;
    s0[n - 1] = st0;
    if (nops == 2) s1[n - 1] = st1;
    return;
  }
  shape[n] = extent;
  s0[n] = st0;
  if (nops == 2) s1[n] = st1;
  ++n;
}

// One thread per output: neighbouring threads read neighbouring inputs (the reduced
// dimensions are the outer ones). in: input; out: += sums; n_out outputs of n_red elements.
__global__ void reduce_per_thread_kernel(const float* in, float* out, int64_t n_out, int64_t n_red,
                                         ReducePlan p) {
  for (int64_t o = global_thread(); o < n_out; o += grid_threads()) {
    int64_t in_off, out_off;
    p.kept_offsets(o, &in_off, &out_off);
    float acc = 0.0f;
    if (p.nr == 1) {  // the usual case after merging: one stride
      for (int64_t r = 0; r < n_red; ++r) acc += in[in_off + r * p.r_in[0]];
    } else {
      for (int64_t r = 0; r < n_red; ++r) acc += in[in_off + p.reduced_offset(r, p.nr)];
    }
    out[out_off] += acc;
  }
}

// One block per output, the reduced elements read coalesced: the innermost reduced dimension
// is contiguous (stride 1, extent `inner`), and the block's threads walk it row by row over the
// other reduced dimensions (for an NCHW tensor summed over N, H, W: a channel's N planes of
// H*W). Warp shuffles, then one value per warp, make the block's sum.
__global__ void __launch_bounds__(1024)
    reduce_per_block_kernel(const float* in, float* out, int64_t n_out, int64_t n_red,
                            ReducePlan p) {
  __shared__ float scratch[32];
  const int64_t inner = p.rshape[p.nr - 1];
  const int64_t rows = n_red / inner;
  for (int64_t o = blockIdx.x; o < n_out; o += gridDim.x) {
    int64_t in_off, out_off;
    p.kept_offsets(o, &in_off, &out_off);
    float acc = 0.0f;
    for (int64_t row = 0; row < rows; ++row) {
      const float* line = in + in_off + p.reduced_offset(row, p.nr - 1);
      for (int64_t j = threadIdx.x; j < inner; j += blockDim.x) acc += line[j];
    }
    acc = block_reduce<false>(acc, scratch);
    if (threadIdx.x == 0) out[out_off] += acc;
  }
}

}  // namespace

void sum_reduce(const float* in, const int64_t* shape, int ndim, float* out,
                const int64_t* out_strides, cudaStream_t stream) {
  ReducePlan p;
  int64_t n_out = 1, n_red = 1;
  int64_t in_strides[kMaxDims];
  contiguous_strides(shape, ndim, in_strides);
  for (int d = 0; d < ndim; ++d) {
    if (out_strides[d] == 0) {
      push_dim(p.nr, p.rshape, p.r_in, nullptr, shape[d], in_strides[d], 0, 1);
      n_red *= shape[d];
    } else {
      push_dim(p.nk, p.kshape, p.k_in, p.k_out, shape[d], in_strides[d], out_strides[d], 2);
      n_out *= shape[d];
    }
  }
  if (n_out == 0 || n_red == 0) return;
  if (p.nr == 0) {  // nothing reduced (every reduced extent is 1): one element per output
    p.rshape[0] = 1;
    p.r_in[0] = 0;
    p.nr = 1;
  }
  const bool inner_contiguous = p.r_in[p.nr - 1] == 1 && p.rshape[p.nr - 1] >= 32;
  if (inner_contiguous && n_red >= 64) {
    // Few outputs over many elements (BatchNorm's per-channel sums): wide blocks.
    const unsigned threads = n_red >= (1 << 16) && n_out <= 4096 ? 1024 : kThreadsPerBlock;
    const unsigned blocks = static_cast<unsigned>(n_out < 65535 * 16 ? n_out : 65535 * 16);
    launch_kernel(reduce_per_block_kernel, dim3(blocks), dim3(threads), 0, stream, in, out, n_out,
                  n_red, p);
  } else {
    launch_kernel(reduce_per_thread_kernel, dim3(blocks_for(n_out, kThreadsPerBlock)),
                  dim3(kThreadsPerBlock), 0, stream, in, out, n_out, n_red, p);
  }
}

}  // namespace reel::cuda
