#pragma once
// Strided copies: permute, transpose, expand (broadcast), slice and concat are all this one
// kernel with different strides.
#include <cstdint>

namespace reel::cpu {

// For every index i of `shape` ([ndim] extents): out[i . out_strides] = in[i . in_strides]
// (accumulate: +=). Strides are in elements; an in_stride of 0 broadcasts.
void strided_copy(const float* in, const int64_t* in_strides, float* out,
                  const int64_t* out_strides, const int64_t* shape, int ndim, bool accumulate);

}  // namespace reel::cpu
