// Convolution on the CPU, lowered onto the GEMM of kernels/cpu/gemm.cpp one image at a time:
//
//   forward        y[n]  [K, PQ]   = W [K, CRS] col(x[n]) [CRS, PQ] (+ bias)
//   data grad      dcol  [CRS, PQ] = W^T dy[n];  dx[n] = col2im(dcol)
//   weight grad    dW    [K, CRS] += dy[n] [K, PQ] col(x[n])^T   (summed over n in the GEMM)
//
// A 1x1 convolution with stride 1 and no padding needs no lowering (col(x[n]) is x[n] itself).
// The GEMM splits each product over the threads; im2col and col2im split their rows.
#include "reel/kernels/conv.h"

#include <cstring>

#include "reel/kernels/cpu/nd_loop.h"
#include "reel/kernels/gemm.h"

namespace reel::cpu {

namespace {

bool is_pointwise(const Conv2dShape& s) {
  return s.R == 1 && s.S == 1 && s.stride_h == 1 && s.stride_w == 1 && s.pad_h == 0 && s.pad_w == 0;
}

// The output columns [q0, q1) whose input column q * stride_w - pad_w + tap falls inside [0, W).
void valid_columns(const Conv2dShape& s, int64_t tap, int64_t* q0, int64_t* q1) {
  const int64_t off = tap * s.dil_w - s.pad_w;  // input column of q = 0
  int64_t lo = 0, hi = s.Q;
  if (off < 0) lo = (-off + s.stride_w - 1) / s.stride_w;
  // largest q with q * stride + off <= W - 1
  const int64_t top = s.W - 1 - off;
  hi = top < 0 ? 0 : top / s.stride_w + 1;
  if (hi > s.Q) hi = s.Q;
  if (lo > hi) lo = hi;
  *q0 = lo;
  *q1 = hi;
}

}  // namespace

int64_t conv2d_workspace_floats(const Conv2dShape& s) {
  return is_pointwise(s) ? 0 : s.C * s.R * s.S * s.P * s.Q;
}

void im2col(const float* x, float* col, const Conv2dShape& s) {
  const int64_t rows = s.C * s.R * s.S, PQ = s.P * s.Q;
  for_each_range(rows, PQ, 1, [&](int64_t b, int64_t e) {
    for (int64_t row = b; row < e; ++row) {
      const int64_t c = row / (s.R * s.S), r = row / s.S % s.R, t = row % s.S;
      const float* xc = x + c * s.H * s.W;  // [H, W]
      float* out = col + row * PQ;          // [P, Q]
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
  });
}

void col2im(const float* col, float* dx, const Conv2dShape& s) {
  // Split over channels: the taps of one channel add into that channel's plane only.
  const int64_t PQ = s.P * s.Q;
  for_each_range(s.C, s.R * s.S * PQ, 1, [&](int64_t b, int64_t e) {
    for (int64_t c = b; c < e; ++c) {
      float* xc = dx + c * s.H * s.W;  // [H, W]
      std::memset(xc, 0, sizeof(float) * s.H * s.W);
      for (int64_t r = 0; r < s.R; ++r)
        for (int64_t t = 0; t < s.S; ++t) {
          const float* in = col + ((c * s.R + r) * s.S + t) * PQ;  // [P, Q]
          int64_t q0, q1;
          valid_columns(s, t, &q0, &q1);
          for (int64_t p = 0; p < s.P; ++p) {
            const int64_t ih = math::conv_in_coord(p, r, s.stride_h, s.pad_h, s.dil_h);
            if (ih < 0 || ih >= s.H) continue;
            float* xr = xc + ih * s.W + math::conv_in_coord(0, t, s.stride_w, s.pad_w, s.dil_w);
            const float* ir = in + p * s.Q;
            for (int64_t q = q0; q < q1; ++q) xr[q * s.stride_w] += ir[q];
          }
        }
    }
  });
}

void conv2d_forward(const float* x, const float* w, const float* bias, float* y, float* workspace,
                    const Conv2dShape& s) {
  const int64_t CRS = s.C * s.R * s.S, PQ = s.P * s.Q;
  for (int64_t n = 0; n < s.N; ++n) {
    const float* xn = x + n * s.C * s.H * s.W;  // [C, H, W]
    float* yn = y + n * s.K * PQ;               // [K, P, Q]
    float beta = 0.0f;
    if (bias) {
      for (int64_t k = 0; k < s.K; ++k)
        for (int64_t i = 0; i < PQ; ++i) yn[k * PQ + i] = bias[k];
      beta = 1.0f;
    }
    const float* cols = xn;
    if (!is_pointwise(s)) {
      im2col(xn, workspace, s);
      cols = workspace;
    }
    gemm(false, false, s.K, PQ, CRS, 1.0f, w, CRS, cols, PQ, beta, yn, PQ);
  }
}

void conv2d_backward_data(const float* dy, const float* w, float* dx, float* workspace,
                          const Conv2dShape& s) {
  const int64_t CRS = s.C * s.R * s.S, PQ = s.P * s.Q;
  for (int64_t n = 0; n < s.N; ++n) {
    const float* dyn = dy + n * s.K * PQ;   // [K, P, Q]
    float* dxn = dx + n * s.C * s.H * s.W;  // [C, H, W]
    if (is_pointwise(s)) {
      gemm(true, false, CRS, PQ, s.K, 1.0f, w, CRS, dyn, PQ, 0.0f, dxn, PQ);
      continue;
    }
    gemm(true, false, CRS, PQ, s.K, 1.0f, w, CRS, dyn, PQ, 0.0f, workspace, PQ);
    col2im(workspace, dxn, s);
  }
}

void conv2d_backward_weight(const float* dy, const float* x, float* dw, float* db, float* workspace,
                            const Conv2dShape& s) {
  const int64_t CRS = s.C * s.R * s.S, PQ = s.P * s.Q;
  if (s.N == 0) {
    std::memset(dw, 0, sizeof(float) * s.K * CRS);
  }
  for (int64_t n = 0; n < s.N; ++n) {
    const float* dyn = dy + n * s.K * PQ;  // [K, P, Q]
    const float* xn = x + n * s.C * s.H * s.W;
    const float* cols = xn;
    if (!is_pointwise(s)) {
      im2col(xn, workspace, s);
      cols = workspace;
    }
    gemm(false, true, s.K, CRS, PQ, 1.0f, dyn, PQ, cols, PQ, n == 0 ? 0.0f : 1.0f, dw, CRS);
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
