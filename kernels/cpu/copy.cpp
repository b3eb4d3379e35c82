#include "reel/kernels/copy.h"

#include "reel/kernels/cpu/nd_loop.h"

namespace reel::cpu {

void strided_copy(const float* in, const int64_t* in_strides, float* out,
                  const int64_t* out_strides, const int64_t* shape, int ndim) {
  // Rows may be split across threads only when no two rows write the same output element;
  // callers never pass an out_stride of 0, so every output element is written once.
  for_each_row<2>(
      shape, ndim, {in_strides, out_strides}, true,
      [&](const std::array<int64_t, 2>& off, int64_t n, const std::array<int64_t, 2>& st) {
        const float* pi = in + off[0];
        float* po = out + off[1];
        if (st[0] == 1 && st[1] == 1) {
          for (int64_t i = 0; i < n; ++i) po[i] = pi[i];
        } else {
          for (int64_t i = 0; i < n; ++i) po[i * st[1]] = pi[i * st[0]];
        }
      });
}

}  // namespace reel::cpu
