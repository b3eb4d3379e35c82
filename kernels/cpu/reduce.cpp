#include "reel/kernels/reduce.h"

#include "reel/kernels/cpu/nd_loop.h"

namespace reel::cpu {

void sum_reduce(const float* in, const int64_t* shape, int ndim, float* out,
                const int64_t* out_strides) {
  int64_t in_strides[kMaxDims];
  contiguous_strides(shape, ndim, in_strides);
  // Several rows can add into the same output element, so this loop stays on one thread.
  for_each_row<2>(
      shape, ndim, {in_strides, out_strides}, false,
      [&](const std::array<int64_t, 2>& off, int64_t n, const std::array<int64_t, 2>& st) {
        const float* pi = in + off[0];
        float* po = out + off[1];
        if (st[1] == 0) {  // the innermost dimension is reduced: one sum
          double acc = 0.0;
          for (int64_t i = 0; i < n; ++i) acc += pi[i];
          *po += static_cast<float>(acc);
        } else {
          for (int64_t i = 0; i < n; ++i) po[i * st[1]] += pi[i];
        }
      });
}

}  // namespace reel::cpu
