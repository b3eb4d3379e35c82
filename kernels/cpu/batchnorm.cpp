// Batch normalisation on the CPU: channels split over threads; within a channel the N planes of
// HW contiguous floats are walked twice (statistics, then the normalisation), summed in double.
#include "reel/kernels/batchnorm.h"

#include "reel/kernels/cpu/nd_loop.h"

namespace reel::cpu {

namespace {

// Mean and biased variance of channel c (two passes: the variance sums squared deviations from
// the mean, which stays accurate when the mean is large against the spread).
void channel_stats(const float* x, int64_t N, int64_t C, int64_t HW, int64_t c, double* mean,
                   double* var) {
  double s = 0.0;
  for (int64_t n = 0; n < N; ++n) {
    const float* p = x + (n * C + c) * HW;  // [HW]
    float part = 0.0f;
    for (int64_t i = 0; i < HW; ++i) part += p[i];
    s += part;
  }
  const double count = static_cast<double>(N * HW);
  const double m = s / count;
  double ss = 0.0;
  for (int64_t n = 0; n < N; ++n) {
    const float* p = x + (n * C + c) * HW;
    const float mf = static_cast<float>(m);
    float part = 0.0f;
    for (int64_t i = 0; i < HW; ++i) {
      const float d = p[i] - mf;
      part += d * d;
    }
    ss += part;
  }
  *mean = m;
  *var = ss / count;
}

// y = x * scale + shift over channel c.
void channel_affine(const float* x, float* y, int64_t N, int64_t C, int64_t HW, int64_t c,
                    float scale, float shift) {
  for (int64_t n = 0; n < N; ++n) {
    const float* p = x + (n * C + c) * HW;
    float* q = y + (n * C + c) * HW;
    for (int64_t i = 0; i < HW; ++i) q[i] = p[i] * scale + shift;
  }
}

}  // namespace

void batchnorm_forward_train(const float* x, const float* weight, const float* bias, float* y,
                             float* mean, float* invstd, float* running_mean, float* running_var,
                             float momentum, float eps, int64_t N, int64_t C, int64_t HW) {
  const int64_t count = N * HW;
  for_each_range(C, 2 * count, 1, [&](int64_t b, int64_t e) {
    for (int64_t c = b; c < e; ++c) {
      double m, v;
      channel_stats(x, N, C, HW, c, &m, &v);
      const float is = math::batchnorm_invstd(static_cast<float>(v), eps);
      mean[c] = static_cast<float>(m);
      invstd[c] = is;
      if (running_mean)
        running_mean[c] = math::batchnorm_running(running_mean[c], mean[c], momentum);
      if (running_var) {
        const double unbiased = count > 1 ? v * count / (count - 1) : v;
        running_var[c] =
            math::batchnorm_running(running_var[c], static_cast<float>(unbiased), momentum);
      }
      const float w = weight ? weight[c] : 1.0f, bb = bias ? bias[c] : 0.0f;
      channel_affine(x, y, N, C, HW, c, math::batchnorm_scale(is, w),
                     math::batchnorm_shift(mean[c], is, w, bb));
    }
  });
}

void batchnorm_forward_eval(const float* x, const float* weight, const float* bias,
                            const float* running_mean, const float* running_var, float* y,
                            float* mean, float* invstd, float eps, int64_t N, int64_t C,
                            int64_t HW) {
  for (int64_t c = 0; c < C; ++c) {
    mean[c] = running_mean[c];
    invstd[c] = math::batchnorm_invstd(running_var[c], eps);
  }
  // Split over (n, c) planes: evaluation has no per-channel reduction.
  for_each_range(N * C, HW, 1, [&](int64_t b, int64_t e) {
    for (int64_t plane = b; plane < e; ++plane) {
      const int64_t c = plane % C;
      const float w = weight ? weight[c] : 1.0f, bb = bias ? bias[c] : 0.0f;
      const float scale = math::batchnorm_scale(invstd[c], w);
      const float shift = math::batchnorm_shift(mean[c], invstd[c], w, bb);
      const float* p = x + plane * HW;
      float* q = y + plane * HW;
      for (int64_t i = 0; i < HW; ++i) q[i] = p[i] * scale + shift;
    }
  });
}

void batchnorm_backward(const float* dy, const float* x, const float* weight, const float* mean,
                        const float* invstd, float* dx, float* dweight, float* dbias, bool training,
                        int64_t N, int64_t C, int64_t HW) {
  const int64_t count = N * HW;
  for_each_range(C, 2 * count, 1, [&](int64_t b, int64_t e) {
    for (int64_t c = b; c < e; ++c) {
      const float m = mean[c], is = invstd[c], w = weight ? weight[c] : 1.0f;
      double sdy = 0.0, sdyx = 0.0;  // sum(dy), sum(dy * xhat)
      for (int64_t n = 0; n < N; ++n) {
        const float* g = dy + (n * C + c) * HW;
        const float* p = x + (n * C + c) * HW;
        float a = 0.0f, bx = 0.0f;
        for (int64_t i = 0; i < HW; ++i) {
          a += g[i];
          bx += g[i] * (p[i] - m);
        }
        sdy += a;
        sdyx += bx;
      }
      sdyx *= is;
      if (dweight) dweight[c] = static_cast<float>(sdyx);
      if (dbias) dbias[c] = static_cast<float>(sdy);
      if (!dx) continue;
      const float inv_count = 1.0f / static_cast<float>(count);
      const float s1 = static_cast<float>(sdy), s2 = static_cast<float>(sdyx);
      for (int64_t n = 0; n < N; ++n) {
        const float* g = dy + (n * C + c) * HW;
        const float* p = x + (n * C + c) * HW;
        float* d = dx + (n * C + c) * HW;
        if (training) {
          for (int64_t i = 0; i < HW; ++i)
            d[i] = math::batchnorm_dx_train(g[i], p[i], m, is, w, s1, s2, inv_count);
        } else {
          const float scale = math::batchnorm_scale(is, w);
          for (int64_t i = 0; i < HW; ++i) d[i] = g[i] * scale;
        }
      }
    }
  });
}

}  // namespace reel::cpu
