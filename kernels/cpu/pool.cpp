// Pooling on the CPU: planes split over threads.
#include "reel/kernels/pool.h"

#include <cstring>
#include <limits>

#include "reel/kernels/cpu/nd_loop.h"

namespace reel::cpu {

void max_pool2d_forward(const float* x, float* y, int32_t* argmax, const Pool2dShape& s) {
  const int64_t HW = s.H * s.W, PQ = s.P * s.Q;
  for_each_range(s.NC, PQ * s.kh * s.kw, 1, [&](int64_t b, int64_t e) {
    for (int64_t plane = b; plane < e; ++plane) {
      const float* xp = x + plane * HW;  // [H, W]
      for (int64_t p = 0; p < s.P; ++p)
        for (int64_t q = 0; q < s.Q; ++q) {
          float best = -std::numeric_limits<float>::infinity();
          int64_t at = -1;
          for (int64_t r = 0; r < s.kh; ++r) {
            const int64_t ih = p * s.sh - s.ph + r;
            if (ih < 0 || ih >= s.H) continue;
            for (int64_t t = 0; t < s.kw; ++t) {
              const int64_t iw = q * s.sw - s.pw + t;
              if (iw < 0 || iw >= s.W) continue;
              const float v = xp[ih * s.W + iw];
              if (at < 0 || math::max_pool_takes(v, best)) {
                best = v;
                at = ih * s.W + iw;
              }
            }
          }
          y[plane * PQ + p * s.Q + q] = best;
          if (argmax) argmax[plane * PQ + p * s.Q + q] = static_cast<int32_t>(at);
        }
    }
  });
}

void max_pool2d_backward(const float* dy, const int32_t* argmax, float* dx, const Pool2dShape& s) {
  const int64_t HW = s.H * s.W, PQ = s.P * s.Q;
  for_each_range(s.NC, PQ + HW, 1, [&](int64_t b, int64_t e) {
    for (int64_t plane = b; plane < e; ++plane) {
      float* d = dx + plane * HW;
      std::memset(d, 0, sizeof(float) * HW);
      for (int64_t i = 0; i < PQ; ++i) {
        const int32_t at = argmax[plane * PQ + i];
        if (at >= 0) d[at] += dy[plane * PQ + i];
      }
    }
  });
}

void adaptive_avg_pool2d_forward(const float* x, float* y, int64_t NC, int64_t H, int64_t W,
                                 int64_t P, int64_t Q) {
  for_each_range(NC, H * W + P * Q, 1, [&](int64_t b, int64_t e) {
    for (int64_t plane = b; plane < e; ++plane) {
      const float* xp = x + plane * H * W;
      for (int64_t p = 0; p < P; ++p) {
        const int64_t h0 = math::adaptive_start(p, H, P), h1 = math::adaptive_end(p, H, P);
        for (int64_t q = 0; q < Q; ++q) {
          const int64_t w0 = math::adaptive_start(q, W, Q), w1 = math::adaptive_end(q, W, Q);
          float acc = 0.0f;
          for (int64_t h = h0; h < h1; ++h)
            for (int64_t w = w0; w < w1; ++w) acc += xp[h * W + w];
          y[(plane * P + p) * Q + q] = acc / static_cast<float>((h1 - h0) * (w1 - w0));
        }
      }
    }
  });
}

void adaptive_avg_pool2d_backward(const float* dy, float* dx, int64_t NC, int64_t H, int64_t W,
                                  int64_t P, int64_t Q) {
  for_each_range(NC, H * W + P * Q, 1, [&](int64_t b, int64_t e) {
    for (int64_t plane = b; plane < e; ++plane) {
      float* d = dx + plane * H * W;
      std::memset(d, 0, sizeof(float) * H * W);
      for (int64_t p = 0; p < P; ++p) {
        const int64_t h0 = math::adaptive_start(p, H, P), h1 = math::adaptive_end(p, H, P);
        for (int64_t q = 0; q < Q; ++q) {
          const int64_t w0 = math::adaptive_start(q, W, Q), w1 = math::adaptive_end(q, W, Q);
          const float g = dy[(plane * P + p) * Q + q] / static_cast<float>((h1 - h0) * (w1 - w0));
          for (int64_t h = h0; h < h1; ++h)
            for (int64_t w = w0; w < w1; ++w) d[h * W + w] += g;
        }
      }
    }
  });
}

}  // namespace reel::cpu
