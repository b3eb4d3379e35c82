#pragma once
// Sum reductions over any set of dimensions.
#include <cstdint>

#include "reel/kernels/common.h"

namespace reel::cpu {

// in: [prod(shape)] contiguous with extents shape: [ndim] (ndim <= 16)
// out: addressed by out_strides: [ndim], 0 on every reduced dimension; out += sum over them.
// The caller zeroes `out` first: the sum over positions is this one op's own accumulation.
void sum_reduce(const float* in, const int64_t* shape, int ndim, float* out,
                const int64_t* out_strides);

}  // namespace reel::cpu

namespace reel::cuda {
// in, out: device pointers; shape, out_strides: host arrays of ndim.
void sum_reduce(const float* in, const int64_t* shape, int ndim, float* out,
                const int64_t* out_strides, cudaStream_t stream);
}  // namespace reel::cuda
