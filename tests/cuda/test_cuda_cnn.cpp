// The CUDA kernels of the CNN families (conv, batchnorm, pool, dropout) against naive
// double-precision references written here, on small and ragged shapes. Built twice:
//  - test_cuda_cnn_emulated links reel_emu, so every kernel runs through the SIMT emulation
//    (under AddressSanitizer in CI; CTest also runs it with shuffled fibre orders);
//  - test_cuda_cnn_gpu links the real library and runs on a GPU when one is present, else
//    reports that it skipped. Where cuDNN is built in (REEL_WITH_CUDNN), it also checks the
//    cuDNN versions (kernels/vendor/cudnn.h) against the same references.
// Every output buffer starts as NaN, so a kernel that reads what it should only write, or leaves
// an element unwritten, fails.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "reel/core/random.h"
#include "reel/kernels/batchnorm.h"
#include "reel/kernels/conv.h"
#include "reel/kernels/cuda/runtime.h"
#include "reel/kernels/dropout.h"
#include "reel/kernels/pool.h"
#if defined(REEL_WITH_CUDNN)
#include "reel/kernels/vendor/cudnn.h"
#endif

using namespace reel;

namespace {

bool have_device() {
  static const bool ok = [] {
    if (cuda::device_count() > 0) return true;
    std::printf("test_cuda_cnn: skipped, no CUDA device here (%s)\n",
                cuda::built_with_cuda() ? "no GPU or driver" : "built without CUDA");
    return false;
  }();
  return ok;
}

cudaStream_t stream() { return cuda::stream_for(0); }

// Device memory of n elements of T on cuda:0, freed with the object.
template <class T>
class DeviceBuffer {
 public:
  explicit DeviceBuffer(size_t n) : n_(n) {
    if (n_ > 0) p_ = static_cast<T*>(cuda::malloc_on(0, n_ * sizeof(T)));
  }
  explicit DeviceBuffer(const std::vector<T>& v) : DeviceBuffer(v.size()) { upload(v); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() { cuda::free_on(0, p_); }
  T* get() const { return p_; }
  void upload(const std::vector<T>& v) {
    REQUIRE(v.size() == n_);
    cuda::copy_host_to_device(0, p_, v.data(), n_ * sizeof(T));
  }
  std::vector<T> download() const {
    std::vector<T> v(n_);
    cuda::copy_device_to_host(0, v.data(), p_, n_ * sizeof(T));
    return v;
  }

 private:
  size_t n_;
  T* p_ = nullptr;
};
using Floats = DeviceBuffer<float>;

// A device buffer of n floats, all NaN.
std::vector<float> nans(size_t n) { return std::vector<float>(n, NAN); }

std::vector<float> normal(size_t n, uint64_t seed, float mean = 0.0f, float stddev = 1.0f) {
  Generator g(seed);
  std::vector<float> v(n);
  for (float& x : v) x = mean + stddev * g.normal();
  return v;
}

// Every element of got within tol of want, relative on a scale of at least 1:
// |got - want| <= tol * (1 + |want|); NaN anywhere fails. Reports the worst element.
void check_close(const std::vector<float>& got, const std::vector<double>& want, double tol,
                 const std::string& what) {
  INFO(what);
  REQUIRE(got.size() == want.size());
  double worst = 0.0;
  size_t at = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double e = std::fabs(got[i] - want[i]) / (1.0 + std::fabs(want[i]));
    if (!(e <= worst)) {  // also catches NaN
      worst = std::isnan(e) ? INFINITY : e;
      at = i;
    }
  }
  INFO("worst relative error " << worst << " at element " << at << " of " << got.size() << " (got "
                               << (got.empty() ? 0.0f : got[at]) << ", want "
                               << (want.empty() ? 0.0 : want[at]) << ")");
  CHECK(worst <= tol);
}

// ---------------------------------------------------------------------------------------------
// Convolution

Conv2dShape conv_shape(int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t R, int64_t S,
                       int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw) {
  Conv2dShape s{N, C, H, W, K, R, S, sh, sw, ph, pw, dh, dw, 0, 0};
  s.P = math::conv_out_extent(H, R, sh, ph, dh);
  s.Q = math::conv_out_extent(W, S, sw, pw, dw);
  return s;
}

std::string describe(const Conv2dShape& s) {
  return "N=" + std::to_string(s.N) + " C=" + std::to_string(s.C) + " H=" + std::to_string(s.H) +
         " W=" + std::to_string(s.W) + " K=" + std::to_string(s.K) + " R=" + std::to_string(s.R) +
         " S=" + std::to_string(s.S) + " stride=" + std::to_string(s.stride_h) + "," +
         std::to_string(s.stride_w) + " pad=" + std::to_string(s.pad_h) + "," +
         std::to_string(s.pad_w) + " dil=" + std::to_string(s.dil_h) + "," +
         std::to_string(s.dil_w) + " -> P=" + std::to_string(s.P) + " Q=" + std::to_string(s.Q);
}

// Calls f(n, k, c, p, q, r, t, h, w) for every tap of every output position that reads an input
// element inside the image (the direct convolution's loop nest).
template <class F>
void for_each_tap(const Conv2dShape& s, F&& f) {
  for (int64_t n = 0; n < s.N; ++n)
    for (int64_t k = 0; k < s.K; ++k)
      for (int64_t c = 0; c < s.C; ++c)
        for (int64_t p = 0; p < s.P; ++p)
          for (int64_t q = 0; q < s.Q; ++q)
            for (int64_t r = 0; r < s.R; ++r)
              for (int64_t t = 0; t < s.S; ++t) {
                const int64_t h = p * s.stride_h - s.pad_h + r * s.dil_h;
                const int64_t w = q * s.stride_w - s.pad_w + t * s.dil_w;
                if (h >= 0 && h < s.H && w >= 0 && w < s.W) f(n, k, c, p, q, r, t, h, w);
              }
}

struct ConvData {
  std::vector<float> x, w, b, dy;
};

struct ConvRef {
  std::vector<double> y, y_nobias, dx, dw, db;
};

ConvRef conv_reference(const Conv2dShape& s, const ConvData& d) {
  const int64_t PQ = s.P * s.Q;
  ConvRef ref;
  ref.y_nobias.assign(s.N * s.K * PQ, 0.0);
  ref.dx.assign(s.N * s.C * s.H * s.W, 0.0);
  ref.dw.assign(s.K * s.C * s.R * s.S, 0.0);
  ref.db.assign(s.K, 0.0);
  for_each_tap(s, [&](int64_t n, int64_t k, int64_t c, int64_t p, int64_t q, int64_t r, int64_t t,
                      int64_t h, int64_t w) {
    const int64_t xi = ((n * s.C + c) * s.H + h) * s.W + w;
    const int64_t wi = ((k * s.C + c) * s.R + r) * s.S + t;
    const int64_t yi = ((n * s.K + k) * s.P + p) * s.Q + q;
    ref.y_nobias[yi] += double(d.x[xi]) * d.w[wi];
    ref.dx[xi] += double(d.dy[yi]) * d.w[wi];
    ref.dw[wi] += double(d.dy[yi]) * d.x[xi];
  });
  ref.y = ref.y_nobias;
  for (int64_t i = 0; i < s.N * s.K * PQ; ++i) {
    ref.y[i] += d.b[(i / PQ) % s.K];
    ref.db[(i / PQ) % s.K] += d.dy[i];
  }
  return ref;
}

// One implementation of the three convolution calls on device pointers.
struct ConvImpl {
  const char* name;
  double tol;
  std::function<void(const float*, const float*, const float*, float*, const Conv2dShape&)> fwd;
  std::function<void(const float*, const float*, float*, const Conv2dShape&)> bwd_data;
  std::function<void(const float*, const float*, float*, float*, const Conv2dShape&)> bwd_weight;
};

std::vector<ConvImpl> conv_impls() {
  // reel's own: the workspace from conv2d_workspace_floats, NaN-filled before each call.
  auto ws = [](const Conv2dShape& s) {
    return std::make_shared<Floats>(nans(cuda::conv2d_workspace_floats(s)));
  };
  std::vector<ConvImpl> v;
  v.push_back(
      {"reel::cuda", 1e-4,
       [ws](const float* x, const float* w, const float* b, float* y, const Conv2dShape& s) {
         auto work = ws(s);
         cuda::conv2d_forward(x, w, b, y, work->get(), s, stream());
         cuda::synchronize(0);
       },
       [ws](const float* dy, const float* w, float* dx, const Conv2dShape& s) {
         auto work = ws(s);
         cuda::conv2d_backward_data(dy, w, dx, work->get(), s, stream());
         cuda::synchronize(0);
       },
       [ws](const float* dy, const float* x, float* dw, float* db, const Conv2dShape& s) {
         auto work = ws(s);
         cuda::conv2d_backward_weight(dy, x, dw, db, work->get(), s, stream());
         cuda::synchronize(0);
       }});
#if defined(REEL_WITH_CUDNN) && !defined(REEL_CUDA_EMULATION)
  v.push_back({"cudnn", 1e-3,
               [](const float* x, const float* w, const float* b, float* y, const Conv2dShape& s) {
                 vendor::cudnn_conv2d_forward(x, w, b, y, s, stream());
               },
               [](const float* dy, const float* w, float* dx, const Conv2dShape& s) {
                 vendor::cudnn_conv2d_backward_data(dy, w, dx, s, stream());
               },
               [](const float* dy, const float* x, float* dw, float* db, const Conv2dShape& s) {
                 vendor::cudnn_conv2d_backward_weight(dy, x, dw, db, s, stream());
               }});
#endif
  return v;
}

std::vector<Conv2dShape> conv_shapes() {
  return {
      conv_shape(2, 3, 7, 6, 4, 3, 3, 1, 1, 1, 1, 1, 1),    // 3x3, pad 1, C = 3
      conv_shape(1, 3, 9, 8, 5, 3, 2, 2, 2, 1, 0, 1, 1),    // N = 1, rectangular, stride 2
      conv_shape(3, 2, 9, 7, 3, 3, 3, 1, 1, 2, 2, 2, 2),    // dilation 2, pad 2
      conv_shape(2, 5, 5, 5, 3, 1, 1, 2, 2, 0, 0, 1, 1),    // 1x1, stride 2
      conv_shape(2, 2, 5, 3, 2, 5, 3, 1, 1, 0, 0, 1, 1),    // P = Q = 1
      conv_shape(2, 3, 6, 3, 2, 3, 3, 2, 1, 1, 0, 1, 1),    // Q = 1, odd sizes
      conv_shape(3, 1, 33, 33, 2, 3, 3, 1, 1, 1, 1, 1, 1),  // chunks of 2 images, a ragged last
      conv_shape(2, 1, 46, 46, 2, 1, 1, 1, 1, 0, 0, 1, 1),  // >= 2048 positions: image by image
  };
}

ConvData conv_data(const Conv2dShape& s, uint64_t seed) {
  return {normal(s.N * s.C * s.H * s.W, seed), normal(s.K * s.C * s.R * s.S, seed + 1),
          normal(s.K, seed + 2), normal(s.N * s.K * s.P * s.Q, seed + 3)};
}

}  // namespace

TEST_CASE("im2col and col2im against the direct index math") {
  if (!have_device()) return;
  for (Conv2dShape s : conv_shapes()) {
    s.N = 1;
    INFO(describe(s));
    const int64_t PQ = s.P * s.Q, rows = s.C * s.R * s.S;
    const std::vector<float> x = normal(s.C * s.H * s.W, 5), col = normal(rows * PQ, 6);
    std::vector<double> want_col(rows * PQ, 0.0), want_dx(s.C * s.H * s.W, 0.0);
    s.K = 1;
    for_each_tap(s, [&](int64_t, int64_t, int64_t c, int64_t p, int64_t q, int64_t r, int64_t t,
                        int64_t h, int64_t w) {
      const int64_t ci = ((c * s.R + r) * s.S + t) * PQ + p * s.Q + q;
      const int64_t xi = (c * s.H + h) * s.W + w;
      want_col[ci] = x[xi];
      want_dx[xi] += col[ci];
    });
    Floats xd(x), cold(col), col_out(nans(rows * PQ)), dx_out(nans(x.size()));
    cuda::im2col(xd.get(), col_out.get(), s, stream());
    cuda::col2im(cold.get(), dx_out.get(), s, stream());
    check_close(col_out.download(), want_col, 0.0, "im2col");
    check_close(dx_out.download(), want_dx, 1e-5, "col2im");
  }
}

TEST_CASE("conv2d forward, backward data and backward weight against a direct convolution") {
  if (!have_device()) return;
  for (const ConvImpl& impl : conv_impls()) {
    uint64_t seed = 10;
    for (const Conv2dShape& s : conv_shapes()) {
      INFO(impl.name << ": " << describe(s));
      const ConvData d = conv_data(s, seed += 10);
      const ConvRef ref = conv_reference(s, d);
      Floats x(d.x), w(d.w), b(d.b), dy(d.dy);
      Floats y(nans(ref.y.size())), dx(nans(ref.dx.size()));
      Floats dw(nans(ref.dw.size())), db(nans(ref.db.size()));
      impl.fwd(x.get(), w.get(), b.get(), y.get(), s);
      check_close(y.download(), ref.y, impl.tol, "y");
      impl.fwd(x.get(), w.get(), nullptr, y.get(), s);
      check_close(y.download(), ref.y_nobias, impl.tol, "y without bias");
      impl.bwd_data(dy.get(), w.get(), dx.get(), s);
      check_close(dx.download(), ref.dx, impl.tol, "dx");
      impl.bwd_weight(dy.get(), x.get(), dw.get(), db.get(), s);
      check_close(dw.download(), ref.dw, impl.tol, "dw");
      check_close(db.download(), ref.db, impl.tol, "db");
      dw.upload(nans(ref.dw.size()));
      impl.bwd_weight(dy.get(), x.get(), dw.get(), nullptr, s);
      check_close(dw.download(), ref.dw, impl.tol, "dw without db");
    }
  }
}

TEST_CASE("conv2d workspace: bounded, and one image's col for large images") {
  const Conv2dShape big = conv_shape(64, 64, 56, 56, 64, 3, 3, 1, 1, 1, 1, 1, 1);
  CHECK(cuda::conv2d_workspace_floats(big) == 64 * 9 * 56 * 56);
  const Conv2dShape deep = conv_shape(256, 512, 7, 7, 512, 3, 3, 1, 1, 1, 1, 1, 1);
  CHECK(cuda::conv2d_workspace_floats(deep) <= (int64_t{1} << 24) + (512 * 9 + 512) * 49);
  CHECK(cuda::conv2d_workspace_floats(deep) >= 512 * 9 * 49 * 2);  // several images per GEMM
}

// ---------------------------------------------------------------------------------------------
// Batch normalisation

namespace {

struct BnCase {
  int64_t N, C, HW;
  float offset;  // added to x: a mean large against the spread
  bool affine;
};

struct BnImpl {
  const char* name;
  double tol;
  std::function<void(const float*, const float*, const float*, float*, float*, float*, float*,
                     float*, float, float, int64_t, int64_t, int64_t)>
      train;
  std::function<void(const float*, const float*, const float*, const float*, const float*, float*,
                     float*, float*, float, int64_t, int64_t, int64_t)>
      eval;
  std::function<void(const float*, const float*, const float*, const float*, const float*, float*,
                     float*, float*, bool, int64_t, int64_t, int64_t)>
      backward;
};

std::vector<BnImpl> bn_impls() {
  std::vector<BnImpl> v;
  v.push_back(
      {"reel::cuda", 1e-4,
       [](const float* x, const float* w, const float* b, float* y, float* mean, float* invstd,
          float* rm, float* rv, float mom, float eps, int64_t N, int64_t C, int64_t HW) {
         cuda::batchnorm_forward_train(x, w, b, y, mean, invstd, rm, rv, mom, eps, N, C, HW,
                                       stream());
       },
       [](const float* x, const float* w, const float* b, const float* rm, const float* rv,
          float* y, float* mean, float* invstd, float eps, int64_t N, int64_t C, int64_t HW) {
         cuda::batchnorm_forward_eval(x, w, b, rm, rv, y, mean, invstd, eps, N, C, HW, stream());
       },
       [](const float* dy, const float* x, const float* w, const float* mean, const float* invstd,
          float* dx, float* dw, float* db, bool training, int64_t N, int64_t C, int64_t HW) {
         cuda::batchnorm_backward(dy, x, w, mean, invstd, dx, dw, db, training, N, C, HW, stream());
       }});
#if defined(REEL_WITH_CUDNN) && !defined(REEL_CUDA_EMULATION)
  v.push_back(
      {"cudnn", 1e-4,
       [](const float* x, const float* w, const float* b, float* y, float* mean, float* invstd,
          float* rm, float* rv, float mom, float eps, int64_t N, int64_t C, int64_t HW) {
         vendor::cudnn_batchnorm_forward_train(x, w, b, y, mean, invstd, rm, rv, mom, eps, N, C, HW,
                                               stream());
       },
       [](const float* x, const float* w, const float* b, const float* rm, const float* rv,
          float* y, float* mean, float* invstd, float eps, int64_t N, int64_t C, int64_t HW) {
         vendor::cudnn_batchnorm_forward_eval(x, w, b, rm, rv, y, mean, invstd, eps, N, C, HW,
                                              stream());
       },
       [](const float* dy, const float* x, const float* w, const float* mean, const float* invstd,
          float* dx, float* dw, float* db, bool training, int64_t N, int64_t C, int64_t HW) {
         vendor::cudnn_batchnorm_backward(dy, x, w, mean, invstd, dx, dw, db, training, N, C, HW,
                                          stream());
       }});
#endif
  return v;
}

}  // namespace

TEST_CASE("batchnorm forward (training and evaluation) and backward against double sums") {
  if (!have_device()) return;
  const std::vector<BnCase> cases = {
      {2, 3, 5, 0.0f, true},    {1, 4, 2, 0.0f, true},  // N * HW = 2
      {3, 2, 7, 1000.0f, true},  // a large mean: E[x^2] - E[x]^2 in float would lose the variance
      {4, 2, 300, 0.5f, false},  // more values than threads; weight and bias nullptr (1 and 0)
      {2, 1, 1, 0.0f, true},    {5, 3, 1, 0.0f, false}};
  const float eps = 1e-5f, momentum = 0.1f;
  for (const BnImpl& impl : bn_impls()) {
    uint64_t seed = 100;
    for (const BnCase& k : cases) {
      INFO(impl.name << ": N=" << k.N << " C=" << k.C << " HW=" << k.HW << " offset=" << k.offset
                     << " affine=" << k.affine);
      const int64_t n = k.N * k.C * k.HW, count = k.N * k.HW;
      const std::vector<float> x = normal(n, seed += 10, k.offset), dy = normal(n, seed + 1);
      std::vector<float> weight = normal(k.C, seed + 2, 1.0f, 0.5f), bias = normal(k.C, seed + 3);
      const std::vector<float> rm0 = normal(k.C, seed + 4), rv0 = normal(k.C, seed + 5, 2.0f, 0.1f);
      if (!k.affine) {
        weight.assign(k.C, 1.0f);
        bias.assign(k.C, 0.0f);
      }
      auto at = [&](int64_t c, int64_t j) { return ((j / k.HW) * k.C + c) * k.HW + j % k.HW; };
      // The reference, per channel, in double.
      std::vector<double> mean(k.C), var(k.C), invstd(k.C), rm(k.C), rv(k.C), y(n), sum_dy(k.C),
          sum_dy_xhat(k.C), dx(n), y_eval(n), mean_eval(k.C), invstd_eval(k.C), dx_eval(n),
          dw_eval(k.C);
      for (int64_t c = 0; c < k.C; ++c) {
        double s = 0, ss = 0;
        for (int64_t j = 0; j < count; ++j) s += x[at(c, j)];
        mean[c] = s / count;
        for (int64_t j = 0; j < count; ++j) ss += (x[at(c, j)] - mean[c]) * (x[at(c, j)] - mean[c]);
        var[c] = ss / count;
        invstd[c] = 1.0 / std::sqrt(var[c] + eps);
        rm[c] = (1 - momentum) * rm0[c] + momentum * mean[c];
        rv[c] = (1 - momentum) * rv0[c] + momentum * ss / (count - 1);
        mean_eval[c] = rm0[c];
        invstd_eval[c] = 1.0 / std::sqrt(double(rv0[c]) + eps);
        for (int64_t j = 0; j < count; ++j) {
          const int64_t i = at(c, j);
          const double xhat = (x[i] - mean[c]) * invstd[c];
          y[i] = xhat * weight[c] + bias[c];
          sum_dy[c] += dy[i];
          sum_dy_xhat[c] += dy[i] * xhat;
          y_eval[i] = (x[i] - rm0[c]) * invstd_eval[c] * weight[c] + bias[c];
          dx_eval[i] = dy[i] * invstd_eval[c] * weight[c];
          dw_eval[c] += dy[i] * (x[i] - rm0[c]) * invstd_eval[c];
        }
        for (int64_t j = 0; j < count; ++j) {
          const int64_t i = at(c, j);
          const double xhat = (x[i] - mean[c]) * invstd[c];
          dx[i] =
              weight[c] * invstd[c] * (dy[i] - sum_dy[c] / count - xhat * sum_dy_xhat[c] / count);
        }
      }
      const double tol = k.offset > 100.0f ? 1e-3 : impl.tol;

      Floats xd(x), dyd(dy), wd(weight), bd(bias), rmd(rm0), rvd(rv0);
      Floats yd(nans(n)), meand(nans(k.C)), invstdd(nans(k.C));
      const float* wp = k.affine ? wd.get() : nullptr;
      const float* bp = k.affine ? bd.get() : nullptr;
      impl.train(xd.get(), wp, bp, yd.get(), meand.get(), invstdd.get(), rmd.get(), rvd.get(),
                 momentum, eps, k.N, k.C, k.HW);
      check_close(yd.download(), y, tol, "train y");
      check_close(meand.download(), mean, tol, "train mean");
      check_close(invstdd.download(), invstd, tol, "train invstd");
      check_close(rmd.download(), rm, tol, "running_mean");
      check_close(rvd.download(), rv, tol, "running_var (unbiased)");
      // Without running statistics: the same outputs.
      yd.upload(nans(n));
      impl.train(xd.get(), wp, bp, yd.get(), meand.get(), invstdd.get(), nullptr, nullptr, momentum,
                 eps, k.N, k.C, k.HW);
      check_close(yd.download(), y, tol, "train y, no running statistics");

      // Backward in training mode from the forward's statistics (what the op saves).
      Floats dxd(nans(n)), dwd(nans(k.C)), dbd(nans(k.C));
      impl.backward(dyd.get(), xd.get(), wp, meand.get(), invstdd.get(), dxd.get(), dwd.get(),
                    dbd.get(), true, k.N, k.C, k.HW);
      check_close(dxd.download(), dx, tol, "train dx");
      check_close(dwd.download(), sum_dy_xhat, tol, "train dweight");
      check_close(dbd.download(), sum_dy, tol, "train dbias");
      dxd.upload(nans(n));
      impl.backward(dyd.get(), xd.get(), wp, meand.get(), invstdd.get(), dxd.get(), nullptr,
                    nullptr, true, k.N, k.C, k.HW);
      check_close(dxd.download(), dx, tol, "train dx alone");
      dwd.upload(nans(k.C));
      impl.backward(dyd.get(), xd.get(), wp, meand.get(), invstdd.get(), nullptr, dwd.get(),
                    nullptr, true, k.N, k.C, k.HW);
      check_close(dwd.download(), sum_dy_xhat, tol, "train dweight alone");

      // Evaluation mode, forward and backward.
      rmd.upload(rm0);
      rvd.upload(rv0);
      yd.upload(nans(n));
      impl.eval(xd.get(), wp, bp, rmd.get(), rvd.get(), yd.get(), meand.get(), invstdd.get(), eps,
                k.N, k.C, k.HW);
      check_close(yd.download(), y_eval, impl.tol, "eval y");
      check_close(meand.download(), mean_eval, impl.tol, "eval mean");
      check_close(invstdd.download(), invstd_eval, impl.tol, "eval invstd");
      dxd.upload(nans(n));
      dwd.upload(nans(k.C));
      dbd.upload(nans(k.C));
      impl.backward(dyd.get(), xd.get(), wp, meand.get(), invstdd.get(), dxd.get(), dwd.get(),
                    dbd.get(), false, k.N, k.C, k.HW);
      check_close(dxd.download(), dx_eval, tol, "eval dx");
      check_close(dwd.download(), dw_eval, tol, "eval dweight");
      check_close(dbd.download(), sum_dy, tol, "eval dbias");
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Pooling

namespace {

Pool2dShape pool_shape(int64_t NC, int64_t H, int64_t W, int64_t kh, int64_t kw, int64_t sh,
                       int64_t sw, int64_t ph, int64_t pw) {
  return {NC, H, W, (H + 2 * ph - kh) / sh + 1, (W + 2 * pw - kw) / sw + 1, kh, kw, sh, sw, ph, pw};
}

}  // namespace

TEST_CASE("max pool: values, first maximum on ties, NaN propagates, backward as a gather") {
  if (!have_device()) return;
  const std::vector<Pool2dShape> shapes = {
      pool_shape(3, 7, 6, 3, 3, 2, 2, 1, 1),  // ResNet's stem pool, odd sizes
      pool_shape(2, 5, 7, 2, 3, 1, 2, 0, 1),  // rectangular, overlapping along H
      pool_shape(1, 4, 4, 2, 2, 2, 2, 0, 0),  // disjoint windows
      pool_shape(2, 3, 5, 3, 1, 1, 1, 1, 0),  // a window of one column
      pool_shape(1, 1, 1, 1, 1, 1, 1, 0, 0)};
  uint64_t seed = 300;
  for (const Pool2dShape& s : shapes) {
    for (int variant = 0; variant < 3; ++variant) {  // 0 normal, 1 ties, 2 with NaN
      INFO("NC=" << s.NC << " H=" << s.H << " W=" << s.W << " k=" << s.kh << "x" << s.kw
                 << " stride=" << s.sh << "," << s.sw << " pad=" << s.ph << "," << s.pw
                 << " variant " << variant);
      const int64_t HW = s.H * s.W, PQ = s.P * s.Q;
      std::vector<float> x = normal(s.NC * HW, seed += 3);
      if (variant == 1)
        for (float& v : x) v = std::floor(v);  // few distinct values: many ties
      if (variant == 2)
        for (size_t i = 0; i < x.size(); i += 5) x[i] = NAN;
      const std::vector<float> dy = normal(s.NC * PQ, seed + 1);
      Floats xd(x), yd(nans(s.NC * PQ)), dyd(dy), dxd(nans(x.size()));
      DeviceBuffer<int32_t> argd(std::vector<int32_t>(s.NC * PQ, -7));
      cuda::max_pool2d_forward(xd.get(), yd.get(), argd.get(), s, stream());
      const std::vector<float> y = yd.download();
      const std::vector<int32_t> arg = argd.download();
      std::vector<double> want_dx(x.size(), 0.0);
      bool ok = true;
      for (int64_t plane = 0; plane < s.NC; ++plane)
        for (int64_t p = 0; p < s.P; ++p)
          for (int64_t q = 0; q < s.Q; ++q) {
            double best = -INFINITY;
            int64_t first = -1;
            bool has_nan = false;
            for (int64_t h = p * s.sh - s.ph; h < p * s.sh - s.ph + s.kh; ++h)
              for (int64_t w = q * s.sw - s.pw; w < q * s.sw - s.pw + s.kw; ++w) {
                if (h < 0 || h >= s.H || w < 0 || w >= s.W) continue;
                const float v = x[plane * HW + h * s.W + w];
                has_nan = has_nan || std::isnan(v);
                if (first < 0 || v > best) {
                  best = v;
                  first = h * s.W + w;
                }
              }
            const int64_t o = plane * PQ + p * s.Q + q;
            const int32_t a = arg[o];
            if (has_nan) {
              // NaN wins: y is NaN and argmax points at a NaN of the window.
              ok = ok && std::isnan(y[o]) && a >= 0 && a < HW && std::isnan(x[plane * HW + a]);
            } else {
              ok = ok && y[o] == best && a == first;
            }
            if (a >= 0 && a < HW) want_dx[plane * HW + a] += dy[o];
          }
      CHECK(ok);
      cuda::max_pool2d_backward(dyd.get(), argd.get(), dxd.get(), s, stream());
      check_close(dxd.download(), want_dx, 1e-6, "max pool dx");
      // Without argmax: the same values.
      yd.upload(nans(s.NC * PQ));
      cuda::max_pool2d_forward(xd.get(), yd.get(), nullptr, s, stream());
      const std::vector<float> y2 = yd.download();
      CHECK(std::memcmp(y2.data(), y.data(), y.size() * sizeof(float)) == 0);
    }
  }
}

TEST_CASE("adaptive average pool: overlapping windows, upsampling, global, identity") {
  if (!have_device()) return;
  struct Case {
    int64_t NC, H, W, P, Q;
  };
  const std::vector<Case> cases = {{2, 7, 5, 3, 2},  // overlapping windows
                                   {3, 2, 2, 3, 3},  // upsampling: every input in several cells
                                   {2, 6, 6, 1, 1},  // global average (ResNet's head)
                                   {1, 5, 7, 5, 7},  // identity
                                   {2, 4, 9, 3, 4}};
  uint64_t seed = 400;
  for (const Case& k : cases) {
    INFO("NC=" << k.NC << " " << k.H << "x" << k.W << " -> " << k.P << "x" << k.Q);
    const std::vector<float> x = normal(k.NC * k.H * k.W, seed += 2);
    const std::vector<float> dy = normal(k.NC * k.P * k.Q, seed + 1);
    std::vector<double> want_y(dy.size(), 0.0), want_dx(x.size(), 0.0);
    for (int64_t plane = 0; plane < k.NC; ++plane)
      for (int64_t p = 0; p < k.P; ++p)
        for (int64_t q = 0; q < k.Q; ++q) {
          // [floor(p H / P), ceil((p + 1) H / P)), written here in floating point.
          const int64_t h0 = int64_t(std::floor(double(p) * k.H / k.P));
          const int64_t h1 = int64_t(std::ceil(double(p + 1) * k.H / k.P));
          const int64_t w0 = int64_t(std::floor(double(q) * k.W / k.Q));
          const int64_t w1 = int64_t(std::ceil(double(q + 1) * k.W / k.Q));
          const double area = double((h1 - h0) * (w1 - w0));
          const int64_t o = (plane * k.P + p) * k.Q + q;
          for (int64_t h = h0; h < h1; ++h)
            for (int64_t w = w0; w < w1; ++w) {
              const int64_t i = (plane * k.H + h) * k.W + w;
              want_y[o] += x[i] / area;
              want_dx[i] += dy[o] / area;
            }
        }
    Floats xd(x), dyd(dy), yd(nans(dy.size())), dxd(nans(x.size()));
    cuda::adaptive_avg_pool2d_forward(xd.get(), yd.get(), k.NC, k.H, k.W, k.P, k.Q, stream());
    cuda::adaptive_avg_pool2d_backward(dyd.get(), dxd.get(), k.NC, k.H, k.W, k.P, k.Q, stream());
    check_close(yd.download(), want_y, 1e-5, "adaptive avg y");
    check_close(dxd.download(), want_dx, 1e-5, "adaptive avg dx");
  }
}

// ---------------------------------------------------------------------------------------------
// Dropout

TEST_CASE("dropout: the hashed mask, the kept fraction, scaling, in place") {
  if (!have_device()) return;
  const int64_t n = 3001;
  for (float p : {0.0f, 0.3f, 0.75f}) {
    INFO("p = " << p);
    std::vector<float> x = normal(n, 500);
    for (float& v : x) v = 1.0f + std::fabs(v);  // never 0, so a kept element is never 0
    const uint64_t seed = 0x1234567890abcdefULL + static_cast<uint64_t>(p * 100);
    Floats xd(x), yd(nans(n));
    cuda::dropout_apply(xd.get(), yd.get(), n, p, seed, stream());
    const std::vector<float> y = yd.download();
    int64_t kept = 0;
    bool pattern = true;
    std::vector<double> want(n);
    for (int64_t i = 0; i < n; ++i) {
      const bool keep = math::dropout_keep(seed, i, p);  // evaluated on the host
      kept += keep;
      pattern = pattern && (y[i] != 0.0f) == keep;
      want[i] = keep ? x[i] / (1.0 - p) : 0.0;
    }
    CHECK(pattern);
    check_close(y, want, 1e-6, "dropout y");
    const double frac = double(kept) / n;
    CHECK(std::fabs(frac - (1.0 - p)) < 0.04);  // about 4.5 standard deviations at p = 0.3
    // In place, and the backward's call on another tensor with the same seed drops the same.
    cuda::dropout_apply(xd.get(), xd.get(), n, p, seed, stream());
    check_close(xd.download(), want, 1e-6, "dropout in place");
  }
  // Another seed, another mask.
  Floats xd(std::vector<float>(n, 1.0f)), a(nans(n)), b(nans(n));
  cuda::dropout_apply(xd.get(), a.get(), n, 0.5f, 1, stream());
  cuda::dropout_apply(xd.get(), b.get(), n, 0.5f, 2, stream());
  CHECK(a.download() != b.download());
}
