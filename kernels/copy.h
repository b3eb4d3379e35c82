#pragma once
// Strided copies: permute, transpose, expand (broadcast), slice and concat are all this one
// kernel with different strides.
#include <cstdint>

#include "reel/kernels/common.h"

namespace reel::cpu {

// For every index i of `shape` ([ndim] extents, ndim <= 16):
// out[i . out_strides] = in[i . in_strides]. Strides are in elements; an in_stride of 0
// broadcasts; no two indices may write the same output element.
void strided_copy(const float* in, const int64_t* in_strides, float* out,
                  const int64_t* out_strides, const int64_t* shape, int ndim);

}  // namespace reel::cpu

namespace reel::cuda {
// in, out: device pointers; in_strides, out_strides, shape: host arrays of ndim.
void strided_copy(const float* in, const int64_t* in_strides, float* out,
                  const int64_t* out_strides, const int64_t* shape, int ndim, cudaStream_t stream);
}  // namespace reel::cuda
