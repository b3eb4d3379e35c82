// Pooling on the CPU: planes split over threads.
#include "reel/kernels/pool.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "reel/kernels/cpu/nd_loop.h"

namespace reel::cpu {

void max_pool2d_forward(const float* x, float* y, int32_t* argmax, const Pool2dShape& s) {
  const int64_t HW = s.H * s.W, PQ = s.P * s.Q;
  // The output columns whose window lies inside the row: [q_in0, q_in1). They skip the bounds
  // checks (most of them, for ResNet's 3x3 stride-2 pooling); the scan order and the rule of
  // math::max_pool_takes are the same everywhere, so the first maximum wins as before.
  int64_t q_in0 = s.Q, q_in1 = s.Q;
  for (int64_t q = 0; q < s.Q; ++q)
    if (q * s.sw - s.pw >= 0 && q * s.sw - s.pw + s.kw <= s.W) {
      q_in0 = std::min(q_in0, q);
      q_in1 = q + 1;
    }
  if (q_in0 >= q_in1) q_in0 = q_in1 = s.Q;
  for_each_range(s.NC, PQ * s.kh * s.kw, 1, [&](int64_t b, int64_t e) {
    for (int64_t plane = b; plane < e; ++plane) {
      const float* xp = x + plane * HW;  // [H, W]
      float* yp = y + plane * PQ;        // [P, Q]
      int32_t* ap = argmax ? argmax + plane * PQ : nullptr;
      for (int64_t p = 0; p < s.P; ++p) {
        const int64_t r0 = std::max<int64_t>(0, s.ph - p * s.sh);
        const int64_t r1 = std::min<int64_t>(s.kh, s.H + s.ph - p * s.sh);
        auto general = [&](int64_t q) {
          float best = -std::numeric_limits<float>::infinity();
          int64_t at = -1;
          for (int64_t r = r0; r < r1; ++r) {
            const int64_t ih = p * s.sh - s.ph + r;
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
          yp[p * s.Q + q] = best;
          if (ap) ap[p * s.Q + q] = static_cast<int32_t>(at);
        };
        for (int64_t q = 0; q < q_in0; ++q) general(q);
        if (r0 < r1) {
          const int64_t ih0 = p * s.sh - s.ph + r0;
          for (int64_t q = q_in0; q < q_in1; ++q) {
            const int64_t iw0 = q * s.sw - s.pw;
            int64_t at = ih0 * s.W + iw0;
            float best = xp[at];
            for (int64_t r = r0; r < r1; ++r) {
              const float* row = xp + (p * s.sh - s.ph + r) * s.W + iw0;
              for (int64_t t = (r == r0 ? 1 : 0); t < s.kw; ++t)
                if (math::max_pool_takes(row[t], best)) {
                  best = row[t];
                  at = (row - xp) + t;
                }
            }
            yp[p * s.Q + q] = best;
            if (ap) ap[p * s.Q + q] = static_cast<int32_t>(at);
          }
        } else {
          for (int64_t q = q_in0; q < q_in1; ++q) general(q);
        }
        for (int64_t q = q_in1; q < s.Q; ++q) general(q);
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
