// CUDA strided copy: permute, transpose, expand, slice and concat.
#include "reel/kernels/cuda/launch.h"
//
#include "reel/kernels/copy.h"
#include "reel/kernels/cuda/device_utils.h"

namespace reel::cuda {

namespace {

// One thread per index of ix.shape: in through ix.strides[0], out through ix.strides[1].
__global__ void strided_copy_kernel(const float* in, float* out, int64_t n, NdIndexer<2> ix) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) {
    int64_t off[2];
    ix.offsets(i, off);
    out[off[1]] = in[off[0]];
  }
}

}  // namespace

void strided_copy(const float* in, const int64_t* in_strides, float* out,
                  const int64_t* out_strides, const int64_t* shape, int ndim, cudaStream_t stream) {
  const int64_t n = shape_product(shape, ndim);
  if (n == 0) return;
  const int64_t* strides[2] = {in_strides, out_strides};
  launch_kernel(strided_copy_kernel, dim3(blocks_for(n, kThreadsPerBlock)), dim3(kThreadsPerBlock),
                0, stream, in, out, n, make_indexer<2>(shape, ndim, strides));
}

}  // namespace reel::cuda
