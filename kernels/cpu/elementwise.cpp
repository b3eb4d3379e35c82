#include "reel/kernels/elementwise.h"

#include "reel/kernels/cpu/nd_loop.h"

namespace reel::cpu {

namespace {
bool go_parallel(int64_t n) { return n >= kParallelMinElements && num_threads() > 1; }
}  // namespace

void unary_forward(math::Unary op, const float* x, float* y, int64_t n) {
#pragma omp parallel for if (go_parallel(n)) num_threads(num_threads()) schedule(static)
  for (int64_t i = 0; i < n; ++i) y[i] = math::unary_forward(op, x[i]);
}

void unary_backward(math::Unary op, const float* g, const float* x, const float* y, float* dx,
                    int64_t n) {
#pragma omp parallel for if (go_parallel(n)) num_threads(num_threads()) schedule(static)
  for (int64_t i = 0; i < n; ++i) dx[i] = math::unary_backward(op, g[i], x[i], y[i]);
}

void binary_forward(math::Binary op, const float* a, const int64_t* a_strides, const float* b,
                    const int64_t* b_strides, float* out, const int64_t* shape, int ndim) {
  int64_t out_strides[kMaxDims];
  contiguous_strides(shape, ndim, out_strides);
  for_each_row<3>(
      shape, ndim, {a_strides, b_strides, out_strides}, true,
      [&](const std::array<int64_t, 3>& off, int64_t n, const std::array<int64_t, 3>& st) {
        const float* pa = a + off[0];
        const float* pb = b + off[1];
        float* po = out + off[2];
        if (st[0] == 1 && st[1] == 1) {
          for (int64_t i = 0; i < n; ++i) po[i] = math::binary_forward(op, pa[i], pb[i]);
        } else if (st[0] == 1 && st[1] == 0) {
          const float vb = *pb;
          for (int64_t i = 0; i < n; ++i) po[i] = math::binary_forward(op, pa[i], vb);
        } else if (st[0] == 0 && st[1] == 1) {
          const float va = *pa;
          for (int64_t i = 0; i < n; ++i) po[i] = math::binary_forward(op, va, pb[i]);
        } else {
          for (int64_t i = 0; i < n; ++i)
            po[i] = math::binary_forward(op, pa[i * st[0]], pb[i * st[1]]);
        }
      });
}

void binary_backward(math::Binary op, int side, const float* g, const int64_t* g_strides,
                     const float* a, const int64_t* a_strides, const float* b,
                     const int64_t* b_strides, float* out, const int64_t* shape, int ndim) {
  int64_t out_strides[kMaxDims];
  contiguous_strides(shape, ndim, out_strides);
  for_each_row<4>(
      shape, ndim, {g_strides, a_strides, b_strides, out_strides}, true,
      [&](const std::array<int64_t, 4>& off, int64_t n, const std::array<int64_t, 4>& st) {
        const float* pg = g + off[0];
        const float* pa = a + off[1];
        const float* pb = b + off[2];
        float* po = out + off[3];
        if (side == 0) {
          for (int64_t i = 0; i < n; ++i)
            po[i] = math::binary_backward_a(op, pg[i * st[0]], pa[i * st[1]], pb[i * st[2]]);
        } else {
          for (int64_t i = 0; i < n; ++i)
            po[i] = math::binary_backward_b(op, pg[i * st[0]], pa[i * st[1]], pb[i * st[2]]);
        }
      });
}

void fill(float* y, float value, int64_t n) {
#pragma omp parallel for if (go_parallel(n)) num_threads(num_threads()) schedule(static)
  for (int64_t i = 0; i < n; ++i) y[i] = value;
}

void axpy(float alpha, const float* x, float* y, int64_t n) {
#pragma omp parallel for if (go_parallel(n)) num_threads(num_threads()) schedule(static)
  for (int64_t i = 0; i < n; ++i) y[i] += alpha * x[i];
}

void scale(float alpha, float* y, int64_t n) {
#pragma omp parallel for if (go_parallel(n)) num_threads(num_threads()) schedule(static)
  for (int64_t i = 0; i < n; ++i) y[i] *= alpha;
}

}  // namespace reel::cpu
