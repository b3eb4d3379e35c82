#include "reel/kernels/optim.h"

#include <cmath>

#include "reel/kernels/cpu/nd_loop.h"

namespace reel::cpu {

void sgd_step(float* param, const float* grad, float* momentum_buf, int64_t n,
              const math::SgdHyper& h) {
  for_each_range(n, 2, 1024, [&](int64_t b, int64_t e) {
    if (momentum_buf == nullptr) {
      float unused = 0.0f;
      for (int64_t i = b; i < e; ++i) math::sgd_update(param[i], grad[i], unused, h);
    } else {
      for (int64_t i = b; i < e; ++i) math::sgd_update(param[i], grad[i], momentum_buf[i], h);
    }
  });
}

void adam_step(float* param, const float* grad, float* exp_avg, float* exp_avg_sq,
               float* max_exp_avg_sq, int64_t n, const math::AdamHyper& h) {
  for_each_range(n, 8, 1024, [&](int64_t b, int64_t e) {
    if (max_exp_avg_sq == nullptr) {
      float unused = 0.0f;
      for (int64_t i = b; i < e; ++i)
        math::adam_update(param[i], grad[i], exp_avg[i], exp_avg_sq[i], unused, h);
    } else {
      for (int64_t i = b; i < e; ++i)
        math::adam_update(param[i], grad[i], exp_avg[i], exp_avg_sq[i], max_exp_avg_sq[i], h);
    }
  });
}

}  // namespace reel::cpu
