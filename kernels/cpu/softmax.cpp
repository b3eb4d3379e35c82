#include "reel/kernels/softmax.h"

#include <cmath>
#include <cstddef>
#include <limits>
#include <vector>

#include "reel/kernels/cpu/nd_loop.h"
#include "reel/kernels/cpu/vec_kernels.h"

namespace reel::cpu {

namespace {

bool go_parallel(int64_t n) { return n >= kParallelMinElements && num_threads() > 1; }

// Work per element of a softmax row (an exp and a few passes in L1), for for_each_range.
constexpr int64_t kSoftmaxCost = 8;

// Per-row sums of log-probabilities of the calling thread's last cross-entropy: grown, never
// returned.
thread_local std::vector<double> t_row_sums;

// softmax along C of [outer, C, inner] with inner > 1: one line of C at stride `inner` at a time.
void softmax_strided(const float* x, float* y, int64_t outer, int64_t C, int64_t inner, bool log) {
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

void softmax_backward_strided(const float* g, const float* y, float* dx, int64_t outer, int64_t C,
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

}  // namespace

void softmax_forward(const float* x, float* y, int64_t outer, int64_t C, int64_t inner, bool log) {
  if (inner != 1) {
    softmax_strided(x, y, outer, C, inner, log);
    return;
  }
  // Rows of C contiguous floats: the vector bodies, rows split across threads.
  const auto fn = vec_table().softmax_rows;
  for_each_range(outer, C * kSoftmaxCost, 1,
                 [&](int64_t b, int64_t e) { fn(x + b * C, y + b * C, e - b, C, log, nullptr); });
}

void softmax_backward(const float* g, const float* y, float* dx, int64_t outer, int64_t C,
                      int64_t inner, bool log) {
  if (inner != 1) {
    softmax_backward_strided(g, y, dx, outer, C, inner, log);
    return;
  }
  const auto fn = vec_table().softmax_backward_rows;
  for_each_range(outer, C * (log ? kSoftmaxCost : 2), 1, [&](int64_t b, int64_t e) {
    fn(g + b * C, y + b * C, dx + b * C, e - b, C, log);
  });
}

void cross_entropy_forward(const float* logits, const int64_t* targets, float* log_probs,
                           float* loss, float* /*workspace*/, int64_t N, int64_t C,
                           float label_smoothing, int64_t ignore_index, int64_t count) {
  // One pass over the logits: each row's log_softmax and the sum of its log-probabilities,
  // while the row is in L1; the loss then needs only those and each row's target value.
  std::vector<double>& sums = t_row_sums;  // [N]
  if (static_cast<int64_t>(sums.size()) < N) sums.resize(static_cast<std::size_t>(N));
  double* ps = sums.data();
  const auto fn = vec_table().softmax_rows;
  for_each_range(N, C * kSoftmaxCost, 1, [&](int64_t b, int64_t e) {
    fn(logits + b * C, log_probs + b * C, e - b, C, true, ps + b);
  });
  double total = 0.0;
  for (int64_t r = 0; r < N; ++r) {
    const int64_t t = targets[r];
    if (t != ignore_index)
      total += math::cross_entropy_row(log_probs[r * C + t], ps[r], label_smoothing, C);
  }
  *loss = static_cast<float>(total / static_cast<double>(count));  // count 0: NaN, as PyTorch
}

void cross_entropy_backward(const float* g, const float* log_probs, const int64_t* targets,
                            float* dlogits, int64_t N, int64_t C, float label_smoothing,
                            int64_t ignore_index, int64_t count) {
  // One pass: dlogits = w (softmax - smoothed target), written row by row.
  const float w = count > 0 ? *g / static_cast<float>(count) : 0.0f;
  const VecKernels& vk = vec_table();
  const float off = math::smoothed_target(1, 0, label_smoothing, C);  // a class not the target
  for_each_range(N, C * kSoftmaxCost, 1, [&](int64_t b, int64_t e) {
    // The rows [b, e) in one call (one stream of writes), then each row's target element and
    // the ignored rows, which are in cache.
    if (count == 0) {
      vk.fill(dlogits + b * C, 0.0f, (e - b) * C);
      return;
    }
    vk.exp_scale_sub(log_probs + b * C, dlogits + b * C, (e - b) * C, w, off);
    for (int64_t r = b; r < e; ++r) {
      const int64_t t = targets[r];
      float* d = dlogits + r * C;  // [C]
      if (t == ignore_index) {
        vk.fill(d, 0.0f, C);
      } else {
        d[t] = math::cross_entropy_grad(log_probs[r * C + t], t, t, label_smoothing, C, w);
      }
    }
  });
}

}  // namespace reel::cpu
