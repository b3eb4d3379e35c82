#include "reel/kernels/dropout.h"

#include "reel/kernels/cpu/nd_loop.h"

namespace reel::cpu {

void dropout_apply(const float* x, float* y, int64_t n, float p, uint64_t seed) {
  const float scale = 1.0f / (1.0f - p);
  for_each_range(n, 8, 1024, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) y[i] = math::dropout_value(x[i], seed, i, p, scale);
  });
}

}  // namespace reel::cpu
