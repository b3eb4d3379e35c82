// CUDA 2-D convolution as an im2col / col2im lowering onto reel::cuda::gemm. Index math:
// kernels/conv_math.h (shared with the CPU).
//
// The images are processed in chunks of `nb` (chunk_images()). A chunk's col holds the columns of
// its nb images side by side, col: [C*R*S, nb*P*Q] (column nl*P*Q + p*Q + q), so that one GEMM
// covers the whole chunk:
//   forward          ybuf[K, nb*PQ] = W[K, CRS] col                       then ybuf -> y (+ bias)
//   backward data    col = W^T dybuf[K, nb*PQ]                            then col2im -> dx
//   backward weight  dw[K, CRS] (+)= dybuf[K, nb*PQ] col^T  (beta = 1 after the first chunk)
// where ybuf / dybuf is y's or dy's chunk permuted from [nb, K, PQ] to [K, nb*PQ]. With nb == 1
// the permutation is the identity and the GEMM reads or writes y / dy in place.
//
// Workspace (conv2d_workspace_floats): CRS * nb*PQ floats of col, plus K * nb*PQ of ybuf when
// nb > 1. nb is as many images as make about kChunkColumns columns, fewer when that would pass
// kChunkFloats, and at least 1: so the workspace is one image's col when an image has
// >= kChunkColumns output positions (the early, large layers) and at most about kChunkFloats
// (64 MiB) otherwise.
//
// col2im is a gather: each input element sums, in a fixed order, the col entries that read it.
// db is one block per output channel. Nothing uses atomics: every result is deterministic.
#include "reel/kernels/cuda/launch.h"
//
#include "reel/kernels/conv.h"
#include "reel/kernels/cuda/device_utils.h"
#include "reel/kernels/gemm.h"

namespace reel::cuda {

namespace {

constexpr int64_t kChunkColumns = 2048;
constexpr int64_t kChunkFloats = int64_t{1} << 24;

int64_t chunk_images(const Conv2dShape& s) {
  const int64_t pq = s.P * s.Q;
  if (pq <= 0 || s.N <= 1) return 1;
  int64_t nb = (kChunkColumns + pq - 1) / pq;
  const int64_t per_image = (s.C * s.R * s.S + s.K) * pq;
  if (per_image > 0 && nb * per_image > kChunkFloats) nb = kChunkFloats / per_image;
  if (nb > s.N) nb = s.N;
  return nb < 1 ? 1 : nb;
}

// x: [nb, C, H, W] (the chunk's first image) -> col: [C*R*S, nb*P*Q], 0 in the padding.
// One thread per col element, neighbouring threads on neighbouring output positions.
__global__ void im2col_kernel(const float* x, float* col, Conv2dShape s, int64_t nb) {
  const int64_t pq = s.P * s.Q, cols = nb * pq, rs = s.R * s.S;
  const int64_t total = s.C * rs * cols;
  for (int64_t i = global_thread(); i < total; i += grid_threads()) {
    const int64_t row = i / cols, j = i % cols;
    const int64_t n = j / pq, p = (j % pq) / s.Q, q = j % s.Q;
    const int64_t c = row / rs, r = (row % rs) / s.S, t = row % s.S;
    const int64_t h = math::conv_in_coord(p, r, s.stride_h, s.pad_h, s.dil_h);
    const int64_t w = math::conv_in_coord(q, t, s.stride_w, s.pad_w, s.dil_w);
    const bool inside = h >= 0 && h < s.H && w >= 0 && w < s.W;
    col[i] = inside ? x[((n * s.C + c) * s.H + h) * s.W + w] : 0.0f;
  }
}

// The output positions p along one axis whose tap r reads input coordinate h: p * stride - pad +
// r * dil == h. Returns -1 when there is none in [0, out).
__device__ __forceinline__ int64_t tap_source(int64_t h, int64_t r, int64_t stride, int64_t pad,
                                              int64_t dil, int64_t out) {
  const int64_t t = h + pad - r * dil;
  if (t < 0 || t % stride != 0) return -1;
  const int64_t p = t / stride;
  return p < out ? p : -1;
}

// col: [C*R*S, nb*P*Q] -> dx: [nb, C, H, W] written, one thread per input element, each the sum
// over taps (r, s) in order of the col entry that read it.
__global__ void col2im_kernel(const float* col, float* dx, Conv2dShape s, int64_t nb) {
  const int64_t pq = s.P * s.Q, cols = nb * pq, hw = s.H * s.W;
  const int64_t total = nb * s.C * hw;
  for (int64_t i = global_thread(); i < total; i += grid_threads()) {
    const int64_t n = i / (s.C * hw), c = (i / hw) % s.C, h = (i % hw) / s.W, w = i % s.W;
    float acc = 0.0f;
    for (int64_t r = 0; r < s.R; ++r) {
      const int64_t p = tap_source(h, r, s.stride_h, s.pad_h, s.dil_h, s.P);
      if (p < 0) continue;
      for (int64_t t = 0; t < s.S; ++t) {
        const int64_t q = tap_source(w, t, s.stride_w, s.pad_w, s.dil_w, s.Q);
        if (q < 0) continue;
        acc += col[((c * s.R + r) * s.S + t) * cols + n * pq + p * s.Q + q];
      }
    }
    dx[i] = acc;
  }
}

// ybuf: [K, nb*PQ] -> y: [nb, K, PQ] (the chunk's first image), plus bias: [K] or nullptr.
__global__ void unpack_output_kernel(const float* ybuf, const float* bias, float* y, int64_t nb,
                                     int64_t K, int64_t pq) {
  const int64_t total = nb * K * pq;
  for (int64_t i = global_thread(); i < total; i += grid_threads()) {
    const int64_t n = i / (K * pq), k = (i / pq) % K, j = i % pq;
    y[i] = ybuf[k * nb * pq + n * pq + j] + (bias ? bias[k] : 0.0f);
  }
}

// dy: [nb, K, PQ] (the chunk's first image) -> dybuf: [K, nb*PQ].
__global__ void pack_grad_kernel(const float* dy, float* dybuf, int64_t nb, int64_t K, int64_t pq) {
  const int64_t total = nb * K * pq;
  for (int64_t i = global_thread(); i < total; i += grid_threads()) {
    const int64_t k = i / (nb * pq), n = (i / pq) % nb, j = i % pq;
    dybuf[i] = dy[(n * K + k) * pq + j];
  }
}

// y: [N, K, PQ] += bias: [K].
__global__ void add_bias_kernel(float* y, const float* bias, int64_t N, int64_t K, int64_t pq) {
  const int64_t total = N * K * pq;
  for (int64_t i = global_thread(); i < total; i += grid_threads()) y[i] += bias[(i / pq) % K];
}

// dy: [N, K, PQ] -> db: [K] written, one block per channel; a fixed per-thread order and tree, so
// the sum does not depend on scheduling.
__global__ void bias_grad_kernel(const float* dy, float* db, int64_t N, int64_t K, int64_t pq) {
  __shared__ float scratch[32];
  for (int64_t k = blockIdx.x; k < K; k += gridDim.x) {
    float acc = 0.0f;
    for (int64_t j = threadIdx.x; j < N * pq; j += blockDim.x)
      acc += dy[((j / pq) * K + k) * pq + j % pq];
    acc = block_reduce<false>(acc, scratch);
    if (threadIdx.x == 0) db[k] = acc;
  }
}

dim3 grid_for(int64_t n) { return dim3(blocks_for(n, kThreadsPerBlock)); }

void launch_im2col(const float* x, float* col, const Conv2dShape& s, int64_t nb,
                   cudaStream_t stream) {
  launch_kernel(im2col_kernel, grid_for(s.C * s.R * s.S * nb * s.P * s.Q), dim3(kThreadsPerBlock),
                0, stream, x, col, s, nb);
}
void launch_col2im(const float* col, float* dx, const Conv2dShape& s, int64_t nb,
                   cudaStream_t stream) {
  launch_kernel(col2im_kernel, grid_for(nb * s.C * s.H * s.W), dim3(kThreadsPerBlock), 0, stream,
                col, dx, s, nb);
}

}  // namespace

int64_t conv2d_workspace_floats(const Conv2dShape& s) {
  const int64_t nb = chunk_images(s), cols = nb * s.P * s.Q;
  return s.C * s.R * s.S * cols + (nb > 1 ? s.K * cols : 0);
}

void im2col(const float* x, float* col, const Conv2dShape& s, cudaStream_t stream) {
  launch_im2col(x, col, s, 1, stream);
}

void col2im(const float* col, float* dx, const Conv2dShape& s, cudaStream_t stream) {
  launch_col2im(col, dx, s, 1, stream);
}

void conv2d_forward(const float* x, const float* w, const float* bias, float* y, float* workspace,
                    const Conv2dShape& s, cudaStream_t stream) {
  const int64_t pq = s.P * s.Q, crs = s.C * s.R * s.S, chw = s.C * s.H * s.W;
  if (s.N * s.K * pq == 0) return;
  const int64_t nb = chunk_images(s);
  float* col = workspace;                   // [CRS, nb*PQ]
  float* ybuf = workspace + crs * nb * pq;  // [K, nb*PQ], only when nb > 1
  for (int64_t n0 = 0; n0 < s.N; n0 += nb) {
    const int64_t m = s.N - n0 < nb ? s.N - n0 : nb;  // images in this chunk
    launch_im2col(x + n0 * chw, col, s, m, stream);
    if (nb == 1) {
      gemm(false, false, s.K, pq, crs, 1.0f, w, crs, col, pq, 0.0f, y + n0 * s.K * pq, pq, stream);
    } else {
      gemm(false, false, s.K, m * pq, crs, 1.0f, w, crs, col, m * pq, 0.0f, ybuf, m * pq, stream);
      launch_kernel(unpack_output_kernel, grid_for(m * s.K * pq), dim3(kThreadsPerBlock), 0, stream,
                    ybuf, bias, y + n0 * s.K * pq, m, s.K, pq);
    }
  }
  if (nb == 1 && bias)
    launch_kernel(add_bias_kernel, grid_for(s.N * s.K * pq), dim3(kThreadsPerBlock), 0, stream, y,
                  bias, s.N, s.K, pq);
}

void conv2d_backward_data(const float* dy, const float* w, float* dx, float* workspace,
                          const Conv2dShape& s, cudaStream_t stream) {
  const int64_t pq = s.P * s.Q, crs = s.C * s.R * s.S, chw = s.C * s.H * s.W;
  if (s.N * chw == 0) return;
  const int64_t nb = chunk_images(s);
  float* col = workspace;                    // [CRS, nb*PQ]
  float* dybuf = workspace + crs * nb * pq;  // [K, nb*PQ], only when nb > 1
  for (int64_t n0 = 0; n0 < s.N; n0 += nb) {
    const int64_t m = s.N - n0 < nb ? s.N - n0 : nb;
    const float* g = dy + n0 * s.K * pq;
    if (nb > 1) {
      launch_kernel(pack_grad_kernel, grid_for(m * s.K * pq), dim3(kThreadsPerBlock), 0, stream, g,
                    dybuf, m, s.K, pq);
      g = dybuf;
    }
    // col = W^T g; K == 0 or PQ == 0 leaves col = 0 (gemm's K == 0 case with beta 0).
    gemm(true, false, crs, m * pq, s.K, 1.0f, w, crs, g, m * pq, 0.0f, col, m * pq, stream);
    launch_col2im(col, dx + n0 * chw, s, m, stream);
  }
}

void conv2d_backward_weight(const float* dy, const float* x, float* dw, float* db, float* workspace,
                            const Conv2dShape& s, cudaStream_t stream) {
  const int64_t pq = s.P * s.Q, crs = s.C * s.R * s.S, chw = s.C * s.H * s.W;
  if (s.K == 0) return;
  if (db)
    launch_kernel(bias_grad_kernel, dim3(static_cast<unsigned>(s.K < 65535 ? s.K : 65535)),
                  dim3(kThreadsPerBlock), 0, stream, dy, db, s.N, s.K, pq);
  if (crs == 0) return;
  const int64_t nb = chunk_images(s);
  float* col = workspace;                    // [CRS, nb*PQ]
  float* dybuf = workspace + crs * nb * pq;  // [K, nb*PQ], only when nb > 1
  if (s.N == 0 || pq == 0) {  // an empty sum: dw = 0 (gemm with K == 0 and beta 0 writes it)
    gemm(false, true, s.K, crs, 0, 1.0f, col, 1, col, 1, 0.0f, dw, crs, stream);
    return;
  }
  for (int64_t n0 = 0; n0 < s.N; n0 += nb) {
    const int64_t m = s.N - n0 < nb ? s.N - n0 : nb;
    const float* g = dy + n0 * s.K * pq;
    if (nb > 1) {
      launch_kernel(pack_grad_kernel, grid_for(m * s.K * pq), dim3(kThreadsPerBlock), 0, stream, g,
                    dybuf, m, s.K, pq);
      g = dybuf;
    }
    launch_im2col(x + n0 * chw, col, s, m, stream);
    // The gradient contract: dw is a sum over the batch, accumulated inside this op.
    gemm(false, true, s.K, crs, m * pq, 1.0f, g, m * pq, col, m * pq, n0 == 0 ? 0.0f : 1.0f, dw,
         crs, stream);
  }
}

}  // namespace reel::cuda
