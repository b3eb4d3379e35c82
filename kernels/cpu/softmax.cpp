#include "reel/kernels/softmax.h"

#include <cmath>
#include <limits>

#include "reel/kernels/cpu/nd_loop.h"

namespace reel::cpu {

namespace {
bool go_parallel(int64_t n) { return n >= kParallelMinElements && num_threads() > 1; }
}  // namespace

void softmax_forward(const float* x, float* y, int64_t outer, int64_t C, int64_t inner, bool log) {
  const int64_t lines = outer * inner;
#pragma omp parallel for if (go_parallel(lines * C)) num_threads(num_threads()) schedule(static)
  for (int64_t l = 0; l < lines; ++l) {
    const int64_t o = l / inner, i = l % inner;
    const float* px = x + o * C * inner + i;  // [C] with stride inner
    float* py = y + o * C * inner + i;
    float mx = -std::numeric_limits<float>::infinity();
    for (int64_t c = 0; c < C; ++c) mx = std::fmax(mx, px[c * inner]);
    double sum = 0.0;
    for (int64_t c = 0; c < C; ++c) sum += std::exp(static_cast<double>(px[c * inner] - mx));
    if (log) {
      const float lsum = static_cast<float>(std::log(sum));
      for (int64_t c = 0; c < C; ++c)
        py[c * inner] = math::log_softmax_value(px[c * inner], mx, lsum);
    } else {
      const float fsum = static_cast<float>(sum);
      for (int64_t c = 0; c < C; ++c) py[c * inner] = math::softmax_value(px[c * inner], mx, fsum);
    }
  }
}

void softmax_backward(const float* g, const float* y, float* dx, int64_t outer, int64_t C,
                      int64_t inner, bool log) {
  const int64_t lines = outer * inner;
#pragma omp parallel for if (go_parallel(lines * C)) num_threads(num_threads()) schedule(static)
  for (int64_t l = 0; l < lines; ++l) {
    const int64_t o = l / inner, i = l % inner;
    const int64_t base = o * C * inner + i;
    double acc = 0.0;  // log: sum_j g_j; softmax: sum_j g_j y_j
    for (int64_t c = 0; c < C; ++c)
      acc += log ? g[base + c * inner] : g[base + c * inner] * y[base + c * inner];
    const float a = static_cast<float>(acc);
    for (int64_t c = 0; c < C; ++c) {
      const int64_t k = base + c * inner;
      dx[k] = log ? math::log_softmax_grad(g[k], y[k], a) : math::softmax_grad(g[k], y[k], a);
    }
  }
}

void cross_entropy_forward(const float* logits, const int64_t* targets, float* log_probs,
                           float* loss, float* /*workspace*/, int64_t N, int64_t C,
                           float label_smoothing, int64_t ignore_index, int64_t count) {
  softmax_forward(logits, log_probs, N, C, 1, true);
  double total = 0.0;
  for (int64_t r = 0; r < N; ++r) {
    const int64_t t = targets[r];
    double row = 0.0;
    if (t != ignore_index) {
      const float* lp = log_probs + r * C;
      for (int64_t c = 0; c < C; ++c)
        row += math::cross_entropy_term(lp[c], c, t, label_smoothing, C);
    }
    total += row;
  }
  *loss = static_cast<float>(total / static_cast<double>(count));  // count 0: NaN, as PyTorch
}

void cross_entropy_backward(const float* g, const float* log_probs, const int64_t* targets,
                            float* dlogits, int64_t N, int64_t C, float label_smoothing,
                            int64_t ignore_index, int64_t count) {
  const float w = count > 0 ? *g / static_cast<float>(count) : 0.0f;
#pragma omp parallel for if (go_parallel(N * C)) num_threads(num_threads()) schedule(static)
  for (int64_t r = 0; r < N; ++r) {
    const int64_t t = targets[r];
    float* d = dlogits + r * C;
    if (t == ignore_index || count == 0) {
      for (int64_t c = 0; c < C; ++c) d[c] = 0.0f;
      continue;
    }
    for (int64_t c = 0; c < C; ++c)
      d[c] = math::cross_entropy_grad(log_probs[r * C + c], c, t, label_smoothing, C, w);
  }
}

}  // namespace reel::cpu
