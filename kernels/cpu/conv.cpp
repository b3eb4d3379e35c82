// Convolution on the CPU, lowered onto the GEMM of kernels/cpu/gemm.cpp in one of two ways.
//
// Implicit (most shapes): no im2col matrix. The padded input of one image is split once into
// stride phases, xph [C][sh][sw][Hq][Wq], where xph[c][a][b][i][j] = x_pad[c][i sh + a][j sw + b].
// The input that output (p, q) reads through tap (r, t) of channel c is then
//   xph[c][(r dh) % sh][(t dw) % sw][p + (r dh) / sh][q + (t dw) / sw]
// so, numbering the outputs j = p Wq + q over rows of Wq (>= Q) columns, row (c, r, t) of the
// GEMM's B is a contiguous run starting at one address: B is a list of row pointers
// (gemm_rows_b) and the GEMM packs straight from the phase planes. The product
//   Y [K, P Wq] = W [K, CRS] B [CRS, P Wq]
// has Wq - Q columns per row that are never used; the shapes where they would be more than
// kMaxWaste of the work, or where an image is too short a GEMM for its weights
// (kMinColumnsPerChannel), take the explicit path.
//
// Explicit (small planes, where the extra columns would cost too much): im2col of a chunk of
// images side by side into col [CRS, nb PQ], one GEMM for the chunk, then a scatter into y.
//
//   forward        Y = W col                            (+ bias)
//   data grad      stride 1: the forward of dy with the flipped, transposed weight
//                  (padding dil (R - 1) - pad); else dcol = W^T dy per image (or per
//                  chunk of images, when an image is a short GEMM), then col2im
//   weight grad    dW += dy col^T over the images, in the GEMM (beta = 1 after the first)
#include "reel/kernels/conv.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "reel/kernels/cpu/nd_loop.h"
#include "reel/kernels/gemm.h"

namespace reel::cpu {

namespace {

// Largest share of the implicit GEMM's columns that may be padding (Wq - Q per row).
constexpr double kMaxWaste = 0.15;
// The implicit GEMM runs one image at a time and so packs the weights [K, CRS] once per image;
// the explicit path packs them once per chunk of images but copies an im2col [CRS, nb PQ]. A
// strided image whose GEMM has fewer than this many columns per output channel takes the
// explicit path (measured on ResNet's 28x28 and 14x14 stride-2 layers: 20 to 35% faster that
// way); at stride 1 only one with fewer than one column per channel does (the 14x14 layer of
// 128 channels: 3 to 8% faster implicit, at 8 and 32 images).
constexpr int64_t kMinColumnsPerChannel = 2;
// The explicit path puts images side by side until a chunk has this many columns.
constexpr int64_t kChunkColumns = 4096;

// The geometry of the implicit path for shape s.
struct Implicit {
  int64_t Hq, Wq;  // extents of one phase plane
  int64_t planes;  // C sh sw planes per image
  int64_t row_off_max, col_off_max;
  bool use;  // the padding columns are a small enough share
};

Implicit implicit_of(const Conv2dShape& s) {
  Implicit g{};
  g.row_off_max = (s.R - 1) * s.dil_h / s.stride_h;
  g.col_off_max = (s.S - 1) * s.dil_w / s.stride_w;
  g.Wq = s.Q + g.col_off_max;
  // One row more than the outputs read, for the padding columns of the last output row.
  g.Hq = s.P + g.row_off_max + 1;
  g.planes = s.C * s.stride_h * s.stride_w;
  g.use = static_cast<double>(g.Wq - s.Q) <= kMaxWaste * static_cast<double>(g.Wq) &&
          s.P * g.Wq >= (s.stride_h * s.stride_w == 1 ? 1 : kMinColumnsPerChannel) * s.K;
  return g;
}

int64_t chunk_images(const Conv2dShape& s) {
  const int64_t PQ = std::max<int64_t>(1, s.P * s.Q);
  return std::min<int64_t>(std::max<int64_t>(1, (kChunkColumns + PQ - 1) / PQ),
                           std::max<int64_t>(1, s.N));
}

// Whether the data gradient of a strided convolution puts images side by side: an image whose
// GEMM (dcol = W^T dy, PQ columns) is short for its weights would repack W^T for a few columns.
bool chunked_data_grad(const Conv2dShape& s) { return s.P * s.Q < kMinColumnsPerChannel * s.K; }

// Whether some tap reads stride phase (a, b): a 1x1 stride-2 convolution reads only (0, 0).
bool phase_used(const Conv2dShape& s, int64_t a, int64_t b) {
  bool row = false, col = false;
  for (int64_t r = 0; r < s.R; ++r) row = row || r * s.dil_h % s.stride_h == a;
  for (int64_t t = 0; t < s.S; ++t) col = col || t * s.dil_w % s.stride_w == b;
  return row && col;
}

// xph: [C][sh][sw][Hq][Wq] out, the stride phases of image x: [C, H, W] zero-padded (the
// phases no tap reads are left as they are).
void fill_phases(const float* x, float* xph, const Conv2dShape& s, const Implicit& g) {
  const int64_t plane = g.Hq * g.Wq;
  for_each_range(g.planes, plane, 1, [&](int64_t b, int64_t e) {
    for (int64_t idx = b; idx < e; ++idx) {
      const int64_t c = idx / (s.stride_h * s.stride_w);
      const int64_t a = idx / s.stride_w % s.stride_h, bw = idx % s.stride_w;
      if (!phase_used(s, a, bw)) continue;
      const float* xc = x + c * s.H * s.W;  // [H, W]
      float* out = xph + idx * plane;       // [Hq, Wq]
      // Columns j whose input column j sw + bw - pw lies in [0, W).
      const int64_t off = bw - s.pad_w;
      const int64_t j0 = off >= 0 ? 0 : (-off + s.stride_w - 1) / s.stride_w;
      int64_t j1 = s.W - 1 - off < 0 ? 0 : (s.W - 1 - off) / s.stride_w + 1;
      j1 = std::min(j1, g.Wq);
      for (int64_t i = 0; i < g.Hq; ++i) {
        float* __restrict o = out + i * g.Wq;
        const int64_t u = i * s.stride_h + a - s.pad_h;
        if (u < 0 || u >= s.H || j0 >= j1) {
          std::memset(o, 0, sizeof(float) * g.Wq);
          continue;
        }
        const float* __restrict xr = xc + u * s.W + off;
        for (int64_t j = 0; j < j0; ++j) o[j] = 0.0f;
        if (s.stride_w == 1) {
          std::memcpy(o + j0, xr + j0, sizeof(float) * (j1 - j0));
        } else {
          for (int64_t j = j0; j < j1; ++j) o[j] = xr[j * s.stride_w];
        }
        for (int64_t j = j1; j < g.Wq; ++j) o[j] = 0.0f;
      }
    }
  });
}

// rows: [C R S] out, the start of row (c, r, t) of the implicit B in the phase planes xph (the
// weight's own order, so that neighbouring rows read neighbouring addresses of one plane).
void phase_rows(const float* xph, const Conv2dShape& s, const Implicit& g,
                std::vector<const float*>& rows) {
  rows.resize(static_cast<size_t>(s.C * s.R * s.S));
  const int64_t plane = g.Hq * g.Wq;
  for (int64_t c = 0; c < s.C; ++c)
    for (int64_t r = 0; r < s.R; ++r)
      for (int64_t t = 0; t < s.S; ++t) {
        const int64_t a = r * s.dil_h % s.stride_h, bw = t * s.dil_w % s.stride_w;
        const int64_t off = (r * s.dil_h / s.stride_h) * g.Wq + t * s.dil_w / s.stride_w;
        rows[(c * s.R + r) * s.S + t] =
            xph + ((c * s.stride_h + a) * s.stride_w + bw) * plane + off;
      }
}

// Threads that take whole images each (each with its own scratch) when the batch has at least
// as many images as threads and an image is a large enough product; 1 means the images run one
// after another, each split over the threads inside the GEMM. Whole images per thread need no
// barrier between the steps of an image.
constexpr double kImageParallelMinFmas = 2.0e7;
int image_threads(const Conv2dShape& s) {
  const int t = num_threads();
  const double fmas = static_cast<double>(s.K) * s.C * s.R * s.S * s.P * s.Q;
  if (t <= 1 || s.N < t || fmas < kImageParallelMinFmas) return 1;
  return t;
}

// Runs fn(n, scratch, t) for every image n, on up to image_threads(s) threads: thread t takes
// images t, t + team, t + 2 team, ... with `per` floats of ws at ws + t * per. Returns the team
// size (the runtime may give fewer threads than asked).
template <class Fn>
int for_each_image(const Conv2dShape& s, float* ws, int64_t per, Fn&& fn) {
  const int threads = image_threads(s);
  if (threads == 1) {
    for (int64_t n = 0; n < s.N; ++n) fn(n, ws, 0);
    return 1;
  }
  int team = 1;
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num(), nt = omp_get_num_threads();
    if (t == 0) team = nt;
    for (int64_t n = t; n < s.N; n += nt) fn(n, ws + t * per, t);
  }
  return team;
}

// The scratch of each path, in floats.
int64_t implicit_forward_floats(const Conv2dShape& s, const Implicit& g) {
  return g.planes * g.Hq * g.Wq + s.K * s.P * g.Wq;
}
int64_t explicit_forward_floats(const Conv2dShape& s) {
  const int64_t cols = chunk_images(s) * s.P * s.Q;
  return s.C * s.R * s.S * cols + s.K * cols;
}
bool flip_for_data_grad(const Conv2dShape& s) {
  return s.stride_h == 1 && s.stride_w == 1 && s.pad_h <= s.dil_h * (s.R - 1) &&
         s.pad_w <= s.dil_w * (s.S - 1);
}
// The forward convolution whose output is the data gradient of s (stride 1).
Conv2dShape flipped_shape(const Conv2dShape& s) {
  Conv2dShape f = s;
  f.C = s.K, f.H = s.P, f.W = s.Q, f.K = s.C;
  f.pad_h = s.dil_h * (s.R - 1) - s.pad_h, f.pad_w = s.dil_w * (s.S - 1) - s.pad_w;
  f.P = s.H, f.Q = s.W;
  return f;
}
int64_t forward_floats(const Conv2dShape& s) {
  const Implicit g = implicit_of(s);
  return g.use ? image_threads(s) * implicit_forward_floats(s, g) : explicit_forward_floats(s);
}

// y = conv(x, w) + bias through the implicit GEMM; ws: image_threads(s) times
// implicit_forward_floats(s).
void forward_implicit(const float* x, const float* w, const float* bias, float* y, float* ws,
                      const Conv2dShape& s, const Implicit& g) {
  const int64_t CRS = s.C * s.R * s.S, cols = s.P * g.Wq, PQ = s.P * s.Q;
  for_each_image(s, ws, implicit_forward_floats(s, g), [&](int64_t n, float* mine, int) {
    float* xph = mine;                         // [C sh sw, Hq, Wq]
    float* yw = xph + g.planes * g.Hq * g.Wq;  // [K, P, Wq]
    thread_local std::vector<const float*> rows;
    fill_phases(x + n * s.C * s.H * s.W, xph, s, g);
    phase_rows(xph, s, g, rows);
    gemm_rows_b(false, false, s.K, cols, CRS, 1.0f, w, CRS, rows.data(), 0.0f, yw, cols);
    float* yn = y + n * s.K * PQ;  // [K, P, Q]
    for_each_range(s.K, PQ, 1, [&](int64_t b, int64_t e) {
      for (int64_t k = b; k < e; ++k) {
        const float add = bias ? bias[k] : 0.0f;
        for (int64_t p = 0; p < s.P; ++p) {
          const float* __restrict src = yw + k * cols + p * g.Wq;
          float* __restrict dst = yn + (k * s.P + p) * s.Q;
          for (int64_t q = 0; q < s.Q; ++q) dst[q] = src[q] + add;
        }
      }
    });
  });
}

// im2col of images [n0, n0 + nb) side by side: col: [CRS, nb PQ].
void im2col_chunk(const float* x, float* col, int64_t n0, int64_t nb, const Conv2dShape& s);

void forward_explicit(const float* x, const float* w, const float* bias, float* y, float* ws,
                      const Conv2dShape& s) {
  const int64_t CRS = s.C * s.R * s.S, PQ = s.P * s.Q, nb_max = chunk_images(s);
  float* col = ws;                      // [CRS, nb PQ]
  float* yc = col + CRS * nb_max * PQ;  // [K, nb PQ]
  for (int64_t n0 = 0; n0 < s.N; n0 += nb_max) {
    const int64_t nb = std::min(nb_max, s.N - n0), cols = nb * PQ;
    im2col_chunk(x, col, n0, nb, s);
    gemm(false, false, s.K, cols, CRS, 1.0f, w, CRS, col, cols, 0.0f, yc, cols);
    for_each_range(nb * s.K, PQ, 1, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        const int64_t n = i / s.K, k = i % s.K;
        const float add = bias ? bias[k] : 0.0f;
        const float* src = yc + k * cols + n * PQ;
        float* dst = y + ((n0 + n) * s.K + k) * PQ;
        for (int64_t j = 0; j < PQ; ++j) dst[j] = src[j] + add;
      }
    });
  }
}

void forward_any(const float* x, const float* w, const float* bias, float* y, float* ws,
                 const Conv2dShape& s) {
  const Implicit g = implicit_of(s);
  if (g.use)
    forward_implicit(x, w, bias, y, ws, s, g);
  else
    forward_explicit(x, w, bias, y, ws, s);
}

// The output columns [q0, q1) whose input column q * stride_w - pad_w + tap * dil_w lies in
// [0, W).
void valid_columns(const Conv2dShape& s, int64_t tap, int64_t* q0, int64_t* q1) {
  const int64_t off = tap * s.dil_w - s.pad_w;  // input column of q = 0
  int64_t lo = 0, hi = s.Q;
  if (off < 0) lo = (-off + s.stride_w - 1) / s.stride_w;
  const int64_t top = s.W - 1 - off;  // largest q with q * stride + off <= W - 1
  hi = top < 0 ? 0 : top / s.stride_w + 1;
  if (hi > s.Q) hi = s.Q;
  if (lo > hi) lo = hi;
  *q0 = lo;
  *q1 = hi;
}

// One row (c, r, t) of im2col for image x: [C, H, W] into out: [P, Q].
void im2col_row(const float* x, float* out, int64_t row, const Conv2dShape& s) {
  const int64_t c = row / (s.R * s.S), r = row / s.S % s.R, t = row % s.S;
  const float* xc = x + c * s.H * s.W;  // [H, W]
  int64_t q0, q1;
  valid_columns(s, t, &q0, &q1);
  for (int64_t p = 0; p < s.P; ++p) {
    float* o = out + p * s.Q;
    const int64_t ih = math::conv_in_coord(p, r, s.stride_h, s.pad_h, s.dil_h);
    if (ih < 0 || ih >= s.H || q0 >= q1) {
      std::memset(o, 0, sizeof(float) * s.Q);
      continue;
    }
    for (int64_t q = 0; q < q0; ++q) o[q] = 0.0f;
    const float* xr = xc + ih * s.W + math::conv_in_coord(0, t, s.stride_w, s.pad_w, s.dil_w);
    if (s.stride_w == 1) {
      std::memcpy(o + q0, xr + q0, sizeof(float) * (q1 - q0));
    } else {
      for (int64_t q = q0; q < q1; ++q) o[q] = xr[q * s.stride_w];
    }
    for (int64_t q = q1; q < s.Q; ++q) o[q] = 0.0f;
  }
}

void im2col_chunk(const float* x, float* col, int64_t n0, int64_t nb, const Conv2dShape& s) {
  const int64_t rows = s.C * s.R * s.S, PQ = s.P * s.Q;
  for_each_range(rows * nb, PQ, 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const int64_t row = i / nb, n = i % nb;
      im2col_row(x + (n0 + n) * s.C * s.H * s.W, col + row * nb * PQ + n * PQ, row, s);
    }
  });
}

}  // namespace

int64_t conv2d_workspace_floats(const Conv2dShape& s) {
  const Implicit g = implicit_of(s);
  // forward
  int64_t need = forward_floats(s);
  // data gradient
  if (flip_for_data_grad(s)) {
    need = std::max(need, s.K * s.C * s.R * s.S + forward_floats(flipped_shape(s)));
  } else if (chunked_data_grad(s)) {
    const int64_t cols = chunk_images(s) * s.P * s.Q;
    need = std::max(need, s.C * s.R * s.S * cols + s.K * cols);
  } else {
    need = std::max(need, image_threads(s) * s.C * s.R * s.S * s.P * s.Q);
  }
  // weight gradient
  if (g.use) {
    need = std::max(need, image_threads(s) *
                              (g.planes * g.Hq * g.Wq + s.K * s.P * g.Wq + s.K * s.C * s.R * s.S));
  } else {
    const int64_t cols = chunk_images(s) * s.P * s.Q;
    need = std::max(need, s.C * s.R * s.S * cols + s.K * cols);
  }
  return need;
}

void im2col(const float* x, float* col, const Conv2dShape& s) {
  const int64_t rows = s.C * s.R * s.S, PQ = s.P * s.Q;
  for_each_range(rows, PQ, 1, [&](int64_t b, int64_t e) {
    for (int64_t row = b; row < e; ++row) im2col_row(x, col + row * PQ, row, s);
  });
}

// Adds the taps of channel c of one image's column matrix col [CRS, ld] (its PQ columns at the
// start of each row) into that channel's plane dxc [H, W], which it first zeroes.
void col2im_channel(const float* col, int64_t ld, float* dxc, int64_t c, const Conv2dShape& s) {
  std::memset(dxc, 0, sizeof(float) * s.H * s.W);
  for (int64_t r = 0; r < s.R; ++r)
    for (int64_t t = 0; t < s.S; ++t) {
      const float* in = col + ((c * s.R + r) * s.S + t) * ld;  // [P, Q]
      int64_t q0, q1;
      valid_columns(s, t, &q0, &q1);
      for (int64_t p = 0; p < s.P; ++p) {
        const int64_t ih = math::conv_in_coord(p, r, s.stride_h, s.pad_h, s.dil_h);
        if (ih < 0 || ih >= s.H) continue;
        float* xr = dxc + ih * s.W + math::conv_in_coord(0, t, s.stride_w, s.pad_w, s.dil_w);
        const float* ir = in + p * s.Q;
        for (int64_t q = q0; q < q1; ++q) xr[q * s.stride_w] += ir[q];
      }
    }
}

void col2im(const float* col, float* dx, const Conv2dShape& s) {
  // Split over channels: the taps of one channel add into that channel's plane only.
  for_each_range(s.C, s.R * s.S * s.P * s.Q, 1, [&](int64_t b, int64_t e) {
    for (int64_t c = b; c < e; ++c) col2im_channel(col, s.P * s.Q, dx + c * s.H * s.W, c, s);
  });
}

void conv2d_forward(const float* x, const float* w, const float* bias, float* y, float* workspace,
                    const Conv2dShape& s) {
  forward_any(x, w, bias, y, workspace, s);
}

void conv2d_backward_data(const float* dy, const float* w, float* dx, float* workspace,
                          const Conv2dShape& s) {
  const int64_t CRS = s.C * s.R * s.S, PQ = s.P * s.Q;
  if (flip_for_data_grad(s)) {
    // wf: [C, K, R, S], wf[c][k][r][t] = w[k][c][R - 1 - r][S - 1 - t].
    float* wf = workspace;
    for (int64_t k = 0; k < s.K; ++k)
      for (int64_t c = 0; c < s.C; ++c)
        for (int64_t r = 0; r < s.R; ++r)
          for (int64_t t = 0; t < s.S; ++t)
            wf[((c * s.K + k) * s.R + r) * s.S + t] =
                w[((k * s.C + c) * s.R + (s.R - 1 - r)) * s.S + (s.S - 1 - t)];
    forward_any(dy, wf, nullptr, dx, workspace + s.K * CRS, flipped_shape(s));
    return;
  }
  if (chunked_data_grad(s)) {
    // dcol [CRS, nb PQ] = W^T [CRS, K] dy_chunk [K, nb PQ] for a chunk of images side by side,
    // then each image's channels scattered back (image and channel pairs in parallel).
    const int64_t nb_max = chunk_images(s);
    float* dcol = workspace;
    float* dyc = dcol + CRS * nb_max * PQ;
    for (int64_t n0 = 0; n0 < s.N; n0 += nb_max) {
      const int64_t nb = std::min(nb_max, s.N - n0), cols = nb * PQ;
      for_each_range(nb * s.K, PQ, 1, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) {
          const int64_t n = i / s.K, k = i % s.K;
          std::memcpy(dyc + k * cols + n * PQ, dy + ((n0 + n) * s.K + k) * PQ, sizeof(float) * PQ);
        }
      });
      gemm(true, false, CRS, cols, s.K, 1.0f, w, CRS, dyc, cols, 0.0f, dcol, cols);
      for_each_range(nb * s.C, s.R * s.S * PQ, 1, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) {
          const int64_t n = i / s.C, c = i % s.C;
          col2im_channel(dcol + n * PQ, cols, dx + ((n0 + n) * s.C + c) * s.H * s.W, c, s);
        }
      });
    }
    return;
  }
  for_each_image(s, workspace, CRS * PQ, [&](int64_t n, float* dcol, int) {
    const float* dyn = dy + n * s.K * PQ;                                    // [K, P, Q]
    float* dxn = dx + n * s.C * s.H * s.W;                                   // [C, H, W]
    gemm(true, false, CRS, PQ, s.K, 1.0f, w, CRS, dyn, PQ, 0.0f, dcol, PQ);  // [CRS, PQ]
    col2im(dcol, dxn, s);
  });
}

void conv2d_backward_weight(const float* dy, const float* x, float* dw, float* db, float* workspace,
                            const Conv2dShape& s) {
  const int64_t CRS = s.C * s.R * s.S, PQ = s.P * s.Q;
  const Implicit g = implicit_of(s);
  if (s.N == 0) std::memset(dw, 0, sizeof(float) * s.K * CRS);
  if (s.N > 0 && g.use) {
    // dW [K, CRS] = sum_n dy_w[n] [K, P Wq] B^T, B the implicit rows of image n; dy_w holds dy
    // with zeros in the padding columns, so that they add nothing. With several threads each
    // sums its images into its own partial dW, added in thread order at the end.
    const int64_t cols = s.P * g.Wq, planes = g.planes * g.Hq * g.Wq;
    const int64_t per = planes + s.K * cols + s.K * CRS;
    const int threads = image_threads(s);
    const int team = for_each_image(s, workspace, per, [&](int64_t n, float* mine, int t) {
      float* xph = mine;               // [C sh sw, Hq, Wq]
      float* dyw = xph + planes;       // [K, P, Wq]
      float* part = dyw + s.K * cols;  // [K, CRS], this thread's sum
      thread_local std::vector<const float*> rows;
      fill_phases(x + n * s.C * s.H * s.W, xph, s, g);
      phase_rows(xph, s, g, rows);
      const float* dyn = dy + n * s.K * PQ;
      for_each_range(s.K, cols, 1, [&](int64_t b, int64_t e) {
        for (int64_t k = b; k < e; ++k)
          for (int64_t p = 0; p < s.P; ++p) {
            float* o = dyw + k * cols + p * g.Wq;
            std::memcpy(o, dyn + (k * s.P + p) * s.Q, sizeof(float) * s.Q);
            for (int64_t q = s.Q; q < g.Wq; ++q) o[q] = 0.0f;
          }
      });
      const bool first = n == t;  // the thread's first image (images n = t, t + nt, ...)
      gemm_rows_b(false, true, s.K, CRS, cols, 1.0f, dyw, cols, rows.data(), first ? 0.0f : 1.0f,
                  threads == 1 ? dw : part, CRS);
    });
    if (threads > 1) {
      const int used = static_cast<int>(std::min<int64_t>(team, s.N));
      for (int64_t i = 0; i < s.K * CRS; ++i) {
        float acc = 0.0f;
        for (int t = 0; t < used; ++t) acc += workspace[t * per + planes + s.K * cols + i];
        dw[i] = acc;
      }
    }
  } else if (s.N > 0) {
    // Chunks of images side by side: col [CRS, nb PQ] and dy of the chunk as [K, nb PQ].
    const int64_t nb_max = chunk_images(s);
    float* col = workspace;
    float* dyc = col + CRS * nb_max * PQ;
    for (int64_t n0 = 0; n0 < s.N; n0 += nb_max) {
      const int64_t nb = std::min(nb_max, s.N - n0), cols = nb * PQ;
      im2col_chunk(x, col, n0, nb, s);
      for (int64_t n = 0; n < nb; ++n)
        for (int64_t k = 0; k < s.K; ++k)
          std::memcpy(dyc + k * cols + n * PQ, dy + ((n0 + n) * s.K + k) * PQ, sizeof(float) * PQ);
      gemm(false, true, s.K, CRS, cols, 1.0f, dyc, cols, col, cols, n0 == 0 ? 0.0f : 1.0f, dw, CRS);
    }
  }
  if (db) {
    for_each_range(s.K, s.N * PQ, 1, [&](int64_t b, int64_t e) {
      for (int64_t k = b; k < e; ++k) {
        double acc = 0.0;
        for (int64_t n = 0; n < s.N; ++n) {
          const float* row = dy + (n * s.K + k) * PQ;
          float part = 0.0f;
          for (int64_t i = 0; i < PQ; ++i) part += row[i];
          acc += part;
        }
        db[k] = static_cast<float>(acc);
      }
    });
  }
}

}  // namespace reel::cpu
