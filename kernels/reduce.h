#pragma once
// Sum reductions over any set of dimensions.
#include <cstdint>

namespace reel::cpu {

// in: [prod(shape)] contiguous with extents shape: [ndim]
// out: addressed by out_strides: [ndim], 0 on every reduced dimension; out += sum over them.
// The caller zeroes `out` first for a plain sum (backward kernels accumulate).
void sum_reduce(const float* in, const int64_t* shape, int ndim, float* out,
                const int64_t* out_strides);

}  // namespace reel::cpu
