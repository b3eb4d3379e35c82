// CUDA pointwise kernels. Per-element math: kernels/elementwise_math.h (shared with the CPU).
#include "reel/kernels/cuda/launch.h"
//
#include "reel/kernels/cuda/device_utils.h"
#include "reel/kernels/elementwise.h"

namespace reel::cuda {

namespace {

// x, y: [n]
__global__ void unary_forward_kernel(math::Unary op, const float* x, float* y, int64_t n) {
  for (int64_t i = global_thread(); i < n; i += grid_threads())
    y[i] = math::unary_forward(op, x[i]);
}

// g, x, y, dx: [n]; dx written
__global__ void unary_backward_kernel(math::Unary op, const float* g, const float* x,
                                      const float* y, float* dx, int64_t n) {
  for (int64_t i = global_thread(); i < n; i += grid_threads())
    dx[i] = math::unary_backward(op, g[i], x[i], y[i]);
}

// out: [n] contiguous over ix.shape; a, b through ix.strides[0], ix.strides[1]
__global__ void binary_forward_kernel(math::Binary op, const float* a, const float* b, float* out,
                                      int64_t n, NdIndexer<2> ix) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) {
    int64_t off[2];
    ix.offsets(i, off);
    out[i] = math::binary_forward(op, a[off[0]], b[off[1]]);
  }
}

// out: [n] contiguous; g, a, b through ix.strides[0..2]
__global__ void binary_backward_kernel(math::Binary op, int side, const float* g, const float* a,
                                       const float* b, float* out, int64_t n, NdIndexer<3> ix) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) {
    int64_t off[3];
    ix.offsets(i, off);
    out[i] = side == 0 ? math::binary_backward_a(op, g[off[0]], a[off[1]], b[off[2]])
                       : math::binary_backward_b(op, g[off[0]], a[off[1]], b[off[2]]);
  }
}

// y: [n]
__global__ void fill_kernel(float* y, float value, int64_t n) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) y[i] = value;
}
// x, y: [n]; y += alpha * x
__global__ void axpy_kernel(float alpha, const float* x, float* y, int64_t n) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) y[i] += alpha * x[i];
}
// y: [n]
__global__ void scale_kernel(float alpha, float* y, int64_t n) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) y[i] *= alpha;
}

dim3 grid_for(int64_t n) { return dim3(blocks_for(n, kThreadsPerBlock)); }

}  // namespace

void unary_forward(math::Unary op, const float* x, float* y, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  launch_kernel(unary_forward_kernel, grid_for(n), dim3(kThreadsPerBlock), 0, stream, op, x, y, n);
}

void unary_backward(math::Unary op, const float* g, const float* x, const float* y, float* dx,
                    int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  launch_kernel(unary_backward_kernel, grid_for(n), dim3(kThreadsPerBlock), 0, stream, op, g, x, y,
                dx, n);
}

void binary_forward(math::Binary op, const float* a, const int64_t* a_strides, const float* b,
                    const int64_t* b_strides, float* out, const int64_t* shape, int ndim,
                    cudaStream_t stream) {
  const int64_t n = shape_product(shape, ndim);
  if (n == 0) return;
  const int64_t* strides[2] = {a_strides, b_strides};
  launch_kernel(binary_forward_kernel, grid_for(n), dim3(kThreadsPerBlock), 0, stream, op, a, b,
                out, n, make_indexer<2>(shape, ndim, strides));
}

void binary_backward(math::Binary op, int side, const float* g, const int64_t* g_strides,
                     const float* a, const int64_t* a_strides, const float* b,
                     const int64_t* b_strides, float* out, const int64_t* shape, int ndim,
                     cudaStream_t stream) {
  const int64_t n = shape_product(shape, ndim);
  if (n == 0) return;
  const int64_t* strides[3] = {g_strides, a_strides, b_strides};
  launch_kernel(binary_backward_kernel, grid_for(n), dim3(kThreadsPerBlock), 0, stream, op, side, g,
                a, b, out, n, make_indexer<3>(shape, ndim, strides));
}

void fill(float* y, float value, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  launch_kernel(fill_kernel, grid_for(n), dim3(kThreadsPerBlock), 0, stream, y, value, n);
}

void axpy(float alpha, const float* x, float* y, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  launch_kernel(axpy_kernel, grid_for(n), dim3(kThreadsPerBlock), 0, stream, alpha, x, y, n);
}

void scale(float alpha, float* y, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  launch_kernel(scale_kernel, grid_for(n), dim3(kThreadsPerBlock), 0, stream, alpha, y, n);
}

}  // namespace reel::cuda
