#include "reel/core/nn.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "reel/core/allocator.h"
#include "reel/core/autograd.h"
#include "reel/core/dispatch.h"
#include "reel/core/ops.h"
#include "reel/kernels/batchnorm.h"
#include "reel/kernels/conv.h"
#include "reel/kernels/dropout.h"
#include "reel/kernels/elementwise.h"
#include "reel/kernels/pool.h"
#if defined(REEL_WITH_CUDNN)
#include "reel/kernels/vendor/cudnn.h"
#endif

namespace reel {

namespace {

using Grads = std::vector<Tensor>;

std::string describe(const Tensor& t) {
  return t.defined() ? shape_str(t.shape()) : std::string("an undefined tensor");
}

void check_same_device(const char* op, const Tensor& x, std::initializer_list<const Tensor*> ts) {
  for (const Tensor* t : ts)
    if (t->defined())
      REEL_CHECK(t->device() == x.device(), op << ": expected every tensor on " << x.device().str()
                                               << " (the input's device), got "
                                               << "one on " << t->device().str());
}

// Scratch of `floats` floats on dev from the caching pool (null when none is needed).
std::shared_ptr<Buffer> scratch(const Device& dev, int64_t floats) {
  if (floats <= 0) return nullptr;
  return std::make_shared<Buffer>(static_cast<size_t>(floats) * sizeof(float), dev);
}
float* ptr(const std::shared_ptr<Buffer>& b) {
  return b ? static_cast<float*>(b->data()) : nullptr;
}

// ---- the CUDA backend of convolution and batch normalisation (REEL_CONV) ----

enum class ConvBackend { Custom, Cudnn };

// REEL_CONV's value as a ConvBackend (an int, for backend_from_env).
int parse_conv_backend(const std::string& name) {
  if (name == "custom") return static_cast<int>(ConvBackend::Custom);
  if (name == "cudnn") {
#if !defined(REEL_WITH_CUDNN)
    throw Error(
        "REEL_CONV=cudnn: this build of reel has no cuDNN (it needs the real CUDA backend and "
        "cuDNN 9)");
#else
    return static_cast<int>(ConvBackend::Cudnn);
#endif
  }
  throw Error("REEL_CONV: unknown convolution backend '" + name + "' (expected custom or cudnn)");
}

std::atomic<int> g_conv_backend{-1};  // -1 until the first use reads REEL_CONV

ConvBackend conv_backend() {
  return static_cast<ConvBackend>(
      backend_from_env(g_conv_backend, "REEL_CONV", "custom", &parse_conv_backend));
}

// Scratch floats the convolution kernels of dev need for s.
int64_t conv_workspace_floats(const Device& dev, const Conv2dShape& s) {
#if defined(REEL_WITH_CUDA)
  if (!dev.is_cpu()) return cuda::conv2d_workspace_floats(s);
#endif
  (void)dev;
  return cpu::conv2d_workspace_floats(s);
}

// Whether cuDNN runs this call (a CUDA device and REEL_CONV=cudnn).
bool use_cudnn(const Device& dev) { return !dev.is_cpu() && conv_backend() == ConvBackend::Cudnn; }

}  // namespace

std::string cuda_conv_backend() {
  return conv_backend() == ConvBackend::Cudnn ? "cudnn" : "custom";
}

void set_cuda_conv_backend(const std::string& name) {
  g_conv_backend.store(parse_conv_backend(name));
}

// ---- conv2d ----

Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, Size2 stride,
              Size2 padding, Size2 dilation) {
  REEL_CHECK(x.defined() && x.dim() == 4,
             "conv2d: expected an input of shape [N, C, H, W], got " << describe(x));
  REEL_CHECK(weight.defined() && weight.dim() == 4,
             "conv2d: expected a weight of shape [K, C, R, S], got " << describe(weight));
  Conv2dShape s{};
  s.N = x.size(0), s.C = x.size(1), s.H = x.size(2), s.W = x.size(3);
  s.K = weight.size(0), s.R = weight.size(2), s.S = weight.size(3);
  REEL_CHECK(weight.size(1) == s.C, "conv2d: the input " << shape_str(x.shape()) << " has " << s.C
                                                         << " channels but the weight "
                                                         << shape_str(weight.shape()) << " expects "
                                                         << weight.size(1));
  REEL_CHECK(!bias.defined() || bias.shape() == Shape{s.K},
             "conv2d: bias " << describe(bias) << " should be [" << s.K << "] for the weight "
                             << shape_str(weight.shape()));
  REEL_CHECK(stride.h >= 1 && stride.w >= 1 && padding.h >= 0 && padding.w >= 0 &&
                 dilation.h >= 1 && dilation.w >= 1,
             "conv2d: stride (" << stride.h << ", " << stride.w << ") and dilation (" << dilation.h
                                << ", " << dilation.w << ") must be >= 1 and padding (" << padding.h
                                << ", " << padding.w << ") >= 0");
  // Bounds before any arithmetic on them: no extent of a real tensor comes near 2^31.
  constexpr int64_t kMaxArg = int64_t{1} << 31;
  REEL_CHECK(stride.h < kMaxArg && stride.w < kMaxArg && padding.h < kMaxArg &&
                 padding.w < kMaxArg && dilation.h < kMaxArg && dilation.w < kMaxArg,
             "conv2d: stride, padding or dilation is beyond 2^31");
  check_same_device("conv2d", x, {&weight, &bias});
  s.stride_h = stride.h, s.stride_w = stride.w, s.pad_h = padding.h, s.pad_w = padding.w;
  s.dil_h = dilation.h, s.dil_w = dilation.w;
  const int64_t eff_h = dilation.h * (s.R - 1) + 1, eff_w = dilation.w * (s.S - 1) + 1;
  REEL_CHECK(
      s.C >= 1 && s.K >= 1 && s.R >= 1 && s.S >= 1,
      "conv2d: empty weight " << shape_str(weight.shape()) << " or input " << shape_str(x.shape()));
  REEL_CHECK(eff_h <= s.H + 2 * padding.h && eff_w <= s.W + 2 * padding.w,
             "conv2d: the kernel " << s.R << "x" << s.S << " (dilation " << dilation.h << ", "
                                   << dilation.w << ") is larger than the padded input "
                                   << s.H + 2 * padding.h << "x" << s.W + 2 * padding.w
                                   << " (input " << shape_str(x.shape()) << ", padding "
                                   << padding.h << ", " << padding.w << ")");
  s.P = math::conv_out_extent(s.H, s.R, s.stride_h, s.pad_h, s.dil_h);
  s.Q = math::conv_out_extent(s.W, s.S, s.stride_w, s.pad_w, s.dil_w);
  const Device dev = x.device();
  Tensor y = Tensor::empty({s.N, s.K, s.P, s.Q}, dev);
  const float* b = bias.defined() ? bias.data() : nullptr;
  if (s.N > 0 && use_cudnn(dev)) {
#if defined(REEL_WITH_CUDNN)
    vendor::cudnn_conv2d_forward(x.data(), weight.data(), b, y.data(), s,
                                 cuda::stream_for(dev.index));
#endif
  } else if (s.N > 0) {
    const auto ws = scratch(dev, conv_workspace_floats(dev, s));
    REEL_KERNEL(dev, conv2d_forward, x.data(), weight.data(), b, y.data(), ptr(ws), s);
  }
  if (!any_requires_grad({&x, &weight, &bias})) return y;
  auto node = record("conv2d", y, {x, weight, bias});
  node->save(node->needs_grad(1) || node->needs_grad(2) ? x : Tensor());  // 0
  node->save(node->needs_grad(0) ? weight : Tensor());                    // 1
  node->backward = [s](Node& self, const Grads& g) {
    const Tensor& dy = g[0];
    const Device dev = dy.device();
    Grads grads(3);
    if (s.N == 0) {
      if (self.needs_grad(0)) grads[0] = Tensor::zeros({s.N, s.C, s.H, s.W}, dev);
      if (self.needs_grad(1)) grads[1] = Tensor::zeros({s.K, s.C, s.R, s.S}, dev);
      if (self.needs_grad(2)) grads[2] = Tensor::zeros({s.K}, dev);
      return grads;
    }
    const bool vendor = use_cudnn(dev);
    const auto ws = vendor ? nullptr : scratch(dev, conv_workspace_floats(dev, s));
    if (self.needs_grad(0)) {
      Tensor dx = Tensor::empty({s.N, s.C, s.H, s.W}, dev);
      if (vendor) {
#if defined(REEL_WITH_CUDNN)
        vendor::cudnn_conv2d_backward_data(dy.data(), self.saved(1).data(), dx.data(), s,
                                           cuda::stream_for(dev.index));
#endif
      } else {
        REEL_KERNEL(dev, conv2d_backward_data, dy.data(), self.saved(1).data(), dx.data(), ptr(ws),
                    s);
      }
      grads[0] = dx;
    }
    if (self.needs_grad(1) || self.needs_grad(2)) {
      Tensor dw = Tensor::empty({s.K, s.C, s.R, s.S}, dev);
      Tensor db = self.needs_grad(2) ? Tensor::empty({s.K}, dev) : Tensor();
      float* dbp = db.defined() ? db.data() : nullptr;
      if (vendor) {
#if defined(REEL_WITH_CUDNN)
        vendor::cudnn_conv2d_backward_weight(dy.data(), self.saved(0).data(), dw.data(), dbp, s,
                                             cuda::stream_for(dev.index));
#endif
      } else {
        REEL_KERNEL(dev, conv2d_backward_weight, dy.data(), self.saved(0).data(), dw.data(), dbp,
                    ptr(ws), s);
      }
      if (self.needs_grad(1)) grads[1] = dw;
      grads[2] = db;
    }
    return grads;
  };
  return y;
}

// ---- batch_norm ----

// REEL_KERNEL for batch normalisation: cuDNN's version of fn when REEL_CONV=cudnn on a CUDA
// device (same arguments, kernels/vendor/cudnn.h), else reel's.
#if defined(REEL_WITH_CUDNN)
#define REEL_BN_KERNEL(dev, fn, ...)                                                       \
  (use_cudnn(dev) ? ::reel::vendor::cudnn_##fn(__VA_ARGS__, cuda::stream_for((dev).index)) \
                  : REEL_KERNEL(dev, fn, __VA_ARGS__))
#else
#define REEL_BN_KERNEL(dev, fn, ...) REEL_KERNEL(dev, fn, __VA_ARGS__)
#endif

namespace {

BatchStatsReducer& bn_reducer() {
  static BatchStatsReducer reducer;
  return reducer;
}

// batch_norm in training mode with statistics over every process (set_batch_norm_reducer).
// x: [N, C, HW]. The local mean and variance come from the training kernel, are combined as
// sums in double over the processes, and the evaluation kernel normalises with the result; the
// backward takes dy * w * invstd from the evaluation-mode backward, with the per-channel sums
// of dy and dy * xhat, and subtracts their global means.
Tensor sync_batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var,
                       const Tensor& weight, const Tensor& bias, float momentum, float eps,
                       int64_t N, int64_t C, int64_t HW) {
  const Device dev = x.device();
  Tensor y = Tensor::empty(x.shape(), dev);
  Tensor mean = Tensor::empty({C}, dev), invstd = Tensor::empty({C}, dev);
  const float* w = weight.defined() ? weight.data() : nullptr;
  const float* b = bias.defined() ? bias.data() : nullptr;
  const double n_local = static_cast<double>(N * HW);
  // sums: [count, sum over the channel's values (C), sum of their squares (C)]
  std::vector<double> sums(static_cast<size_t>(1 + 2 * C), 0.0);
  sums[0] = n_local;
  if (x.numel() > 0) {
    REEL_BN_KERNEL(dev, batchnorm_forward_train, x.data(), w, b, y.data(), mean.data(),
                   invstd.data(), nullptr, nullptr, momentum, eps, N, C, HW);
    const std::vector<float> m = mean.to_vector(), is = invstd.to_vector();
    for (int64_t c = 0; c < C; ++c) {
      const double var = 1.0 / (static_cast<double>(is[c]) * is[c]) - eps;  // biased, local
      sums[1 + c] = n_local * m[c];
      sums[1 + C + c] = n_local * (var + static_cast<double>(m[c]) * m[c]);
    }
  }
  bn_reducer()(sums);
  const double n = sums[0];
  REEL_CHECK(n > 1.0,
             "batch_norm: training needs more than one value per channel over all "
             "processes, got "
                 << n);
  std::vector<float> gmean(static_cast<size_t>(C)), gvar(static_cast<size_t>(C));
  for (int64_t c = 0; c < C; ++c) {
    const double mu = sums[1 + c] / n;
    gmean[c] = static_cast<float>(mu);
    gvar[c] = static_cast<float>(std::max(0.0, sums[1 + C + c] / n - mu * mu));
  }
  if (running_mean.defined()) {
    std::vector<float> rm = running_mean.to_vector(), rv = running_var.to_vector();
    for (int64_t c = 0; c < C; ++c) {
      rm[c] = (1.0f - momentum) * rm[c] + momentum * gmean[c];
      rv[c] = (1.0f - momentum) * rv[c] + momentum * static_cast<float>(gvar[c] * n / (n - 1.0));
    }
    Tensor(running_mean).copy_(Tensor::from_vector(rm, {C}, dev));
    Tensor(running_var).copy_(Tensor::from_vector(rv, {C}, dev));
  }
  const Tensor gm = Tensor::from_vector(gmean, {C}, dev), gv = Tensor::from_vector(gvar, {C}, dev);
  if (x.numel() > 0)
    REEL_BN_KERNEL(dev, batchnorm_forward_eval, x.data(), w, b, gm.data(), gv.data(), y.data(),
                   mean.data(), invstd.data(), eps, N, C, HW);
  else
    invstd.copy_(Tensor::from_vector(std::vector<float>(static_cast<size_t>(C), 1.0f), {C}, dev));
  if (!any_requires_grad({&x, &weight, &bias})) return y;
  auto node = record("sync_batch_norm", y, {x, weight, bias});
  node->save(x);       // 0
  node->save(weight);  // 1 (may be undefined)
  node->save(gm);      // 2
  node->save(invstd);  // 3
  node->backward = [N, C, HW, n](Node& self, const Grads& g) {
    const Device dev = g[0].device();
    const Tensor xs = self.saved(0), ws = self.saved(1), mu = self.saved(2), is = self.saved(3);
    Tensor dx = Tensor::empty(xs.shape(), dev);
    Tensor dw = Tensor::empty({C}, dev), db = Tensor::empty({C}, dev);  // local sums
    if (xs.numel() == 0) {
      REEL_KERNEL(dev, fill, dw.data(), 0.0f, C);
      REEL_KERNEL(dev, fill, db.data(), 0.0f, C);
    } else {
      // Evaluation-mode backward: dx = dy * w * invstd, dw = sum dy * xhat, db = sum dy.
      REEL_BN_KERNEL(dev, batchnorm_backward, g[0].data(), xs.data(),
                     ws.defined() ? ws.data() : nullptr, mu.data(), is.data(), dx.data(), dw.data(),
                     db.data(), false, N, C, HW);
    }
    std::vector<double> sums(static_cast<size_t>(2 * C));
    const std::vector<float> dbv = db.to_vector(), dwv = dw.to_vector();
    for (int64_t c = 0; c < C; ++c) sums[c] = dbv[c], sums[C + c] = dwv[c];
    bn_reducer()(sums);
    Grads grads(3);
    if (self.needs_grad(0) && xs.numel() > 0) {
      // dx -= w * invstd * (mean(dy) + xhat * mean(dy * xhat)), the means over all processes.
      std::vector<float> k(static_cast<size_t>(C)), a(static_cast<size_t>(C));
      const std::vector<float> wv =
          ws.defined() ? ws.to_vector() : std::vector<float>(static_cast<size_t>(C), 1.0f);
      const std::vector<float> isv = is.to_vector(), muv = mu.to_vector();
      for (int64_t c = 0; c < C; ++c) {
        const double scale = static_cast<double>(wv[c]) * isv[c];
        const double mdy = sums[c] / n, mdyx = sums[C + c] / n;
        // xhat = (x - mu) * invstd, so the term is a + b * x per channel:
        k[c] = static_cast<float>(scale * mdyx * isv[c]);                   // b
        a[c] = static_cast<float>(scale * (mdy - mdyx * isv[c] * muv[c]));  // a
      }
      const Shape cs{1, C, 1};
      const Tensor x3 = reshape(xs, {N, C, HW});
      const Tensor corr = reshape(Tensor::from_vector(a, {C}, dev), cs) +
                          x3 * reshape(Tensor::from_vector(k, {C}, dev), cs);
      dx = reshape(reshape(dx, {N, C, HW}) - corr, xs.shape());
    }
    grads[0] = self.needs_grad(0) ? dx : Tensor();
    grads[1] = self.needs_grad(1) ? dw : Tensor();
    grads[2] = self.needs_grad(2) ? db : Tensor();
    return grads;
  };
  return y;
}

}  // namespace

void set_batch_norm_reducer(BatchStatsReducer reducer) { bn_reducer() = std::move(reducer); }

Tensor batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var,
                  const Tensor& weight, const Tensor& bias, bool training, float momentum,
                  float eps) {
  REEL_CHECK(x.defined() && x.dim() >= 2,
             "batch_norm: expected an input of shape [N, C, ...], got " << describe(x));
  const int64_t N = x.size(0), C = x.size(1), HW = x.numel() / (N * C > 0 ? N * C : 1);
  for (const Tensor* t : {&running_mean, &running_var, &weight, &bias})
    REEL_CHECK(!t->defined() || t->shape() == Shape{C},
               "batch_norm: the input " << shape_str(x.shape()) << " has " << C
                                        << " channels but a weight, bias or running statistic "
                                        << "is " << shape_str(t->shape()));
  REEL_CHECK(running_mean.defined() == running_var.defined(),
             "batch_norm: give both running_mean and running_var, or neither");
  REEL_CHECK(training || running_mean.defined(),
             "batch_norm: evaluation mode needs running_mean and running_var");
  REEL_CHECK(eps > 0.0f && momentum >= 0.0f && momentum <= 1.0f,
             "batch_norm: eps " << eps << " must be > 0 and momentum " << momentum << " in [0, 1]");
  check_same_device("batch_norm", x, {&running_mean, &running_var, &weight, &bias});
  if (training && bn_reducer())  // the values of every process count
    return sync_batch_norm(x, running_mean, running_var, weight, bias, momentum, eps, N, C, HW);
  REEL_CHECK(!training || N * HW > 1 || x.numel() == 0,
             "batch_norm: training needs more than one value per channel, got an input of shape "
                 << shape_str(x.shape()));
  const Device dev = x.device();
  Tensor y = Tensor::empty(x.shape(), dev);
  Tensor mean = Tensor::empty({C}, dev), invstd = Tensor::empty({C}, dev);
  const float* w = weight.defined() ? weight.data() : nullptr;
  const float* b = bias.defined() ? bias.data() : nullptr;
  if (x.numel() > 0) {  // an empty batch changes no statistic (as PyTorch)
    if (training) {
      REEL_BN_KERNEL(dev, batchnorm_forward_train, x.data(), w, b, y.data(), mean.data(),
                     invstd.data(), running_mean.defined() ? running_mean.data() : nullptr,
                     running_var.defined() ? running_var.data() : nullptr, momentum, eps, N, C, HW);
      if (running_mean.defined()) {
        mark_modified(running_mean);
        mark_modified(running_var);
      }
    } else {
      REEL_BN_KERNEL(dev, batchnorm_forward_eval, x.data(), w, b, running_mean.data(),
                     running_var.data(), y.data(), mean.data(), invstd.data(), eps, N, C, HW);
    }
  }
  if (!any_requires_grad({&x, &weight, &bias})) return y;
  auto node = record("batch_norm", y, {x, weight, bias});
  node->save(x);       // 0
  node->save(weight);  // 1 (may be undefined)
  node->save(mean);    // 2
  node->save(invstd);  // 3
  node->backward = [N, C, HW, training](Node& self, const Grads& g) {
    const Device dev = g[0].device();
    const Tensor xs = self.saved(0), ws = self.saved(1);
    Grads grads(3);
    Tensor dx = self.needs_grad(0) ? Tensor::empty(xs.shape(), dev) : Tensor();
    Tensor dw = self.needs_grad(1) ? Tensor::empty({C}, dev) : Tensor();
    Tensor db = self.needs_grad(2) ? Tensor::empty({C}, dev) : Tensor();
    if (xs.numel() == 0) {
      if (dw.defined()) REEL_KERNEL(dev, fill, dw.data(), 0.0f, C);
      if (db.defined()) REEL_KERNEL(dev, fill, db.data(), 0.0f, C);
    } else {
      REEL_BN_KERNEL(dev, batchnorm_backward, g[0].data(), xs.data(),
                     ws.defined() ? ws.data() : nullptr, self.saved(2).data(), self.saved(3).data(),
                     dx.defined() ? dx.data() : nullptr, dw.defined() ? dw.data() : nullptr,
                     db.defined() ? db.data() : nullptr, training, N, C, HW);
    }
    grads[0] = dx;
    grads[1] = dw;
    grads[2] = db;
    return grads;
  };
  return y;
}

// ---- pooling ----

namespace {

// [N, C, H, W] or [C, H, W] -> the number of planes and the plane's extents.
void planes_of(const char* op, const Tensor& x, int64_t* NC, int64_t* H, int64_t* W) {
  REEL_CHECK(x.defined() && (x.dim() == 3 || x.dim() == 4),
             op << ": expected an input of shape [N, C, H, W] or [C, H, W], got " << describe(x));
  *H = x.size(x.dim() - 2);
  *W = x.size(x.dim() - 1);
  *NC = x.numel() / (*H * *W > 0 ? *H * *W : 1);
  if (*H * *W == 0) *NC = x.dim() == 4 ? x.size(0) * x.size(1) : x.size(0);
}

Shape pooled_shape(const Tensor& x, int64_t P, int64_t Q) {
  Shape s = x.shape();
  s[s.size() - 2] = P;
  s[s.size() - 1] = Q;
  return s;
}

}  // namespace

Tensor max_pool2d(const Tensor& x, Size2 kernel, Size2 stride, Size2 padding) {
  Pool2dShape s{};
  planes_of("max_pool2d", x, &s.NC, &s.H, &s.W);
  REEL_CHECK(kernel.h >= 1 && kernel.w >= 1 && stride.h >= 1 && stride.w >= 1,
             "max_pool2d: kernel (" << kernel.h << ", " << kernel.w << ") and stride (" << stride.h
                                    << ", " << stride.w << ") must be >= 1");
  REEL_CHECK(
      padding.h >= 0 && padding.w >= 0 && 2 * padding.h <= kernel.h && 2 * padding.w <= kernel.w,
      "max_pool2d: padding (" << padding.h << ", " << padding.w
                              << ") must be >= 0 and at most half the kernel (" << kernel.h << ", "
                              << kernel.w << ")");
  REEL_CHECK(s.H >= 1 && s.W >= 1 && s.H + 2 * padding.h >= kernel.h &&
                 s.W + 2 * padding.w >= kernel.w,
             "max_pool2d: the kernel "
                 << kernel.h << "x" << kernel.w << " is larger than the padded input (input "
                 << shape_str(x.shape()) << ", padding " << padding.h << ", " << padding.w << ")");
  REEL_CHECK(s.H * s.W <= INT32_MAX, "max_pool2d: the input "
                                         << shape_str(x.shape())
                                         << " has planes of more than 2^31 elements");
  s.kh = kernel.h, s.kw = kernel.w, s.sh = stride.h, s.sw = stride.w;
  s.ph = padding.h, s.pw = padding.w;
  s.P = (s.H + 2 * s.ph - s.kh) / s.sh + 1;
  s.Q = (s.W + 2 * s.pw - s.kw) / s.sw + 1;
  const Device dev = x.device();
  Tensor y = Tensor::empty(pooled_shape(x, s.P, s.Q), dev);
  const bool grad = grad_mode_enabled() && x.requires_grad();
  std::shared_ptr<Buffer> argmax;
  if (grad && y.numel() > 0)
    argmax = std::make_shared<Buffer>(static_cast<size_t>(y.numel()) * sizeof(int32_t), dev);
  int32_t* am = argmax ? static_cast<int32_t*>(argmax->data()) : nullptr;
  if (y.numel() > 0) REEL_KERNEL(dev, max_pool2d_forward, x.data(), y.data(), am, s);
  if (!grad) return y;
  auto node = record("max_pool2d", y, {x});
  node->backward = [s, argmax, xshape = x.shape()](Node&, const Grads& g) {
    const Device dev = g[0].device();
    Tensor dx = Tensor::empty(xshape, dev);
    if (argmax)
      REEL_KERNEL(dev, max_pool2d_backward, g[0].data(),
                  static_cast<const int32_t*>(argmax->data()), dx.data(), s);
    else if (dx.numel() > 0)
      REEL_KERNEL(dev, fill, dx.data(), 0.0f, dx.numel());
    return Grads{dx};
  };
  return y;
}

Tensor adaptive_avg_pool2d(const Tensor& x, Size2 output_size) {
  int64_t NC, H, W;
  planes_of("adaptive_avg_pool2d", x, &NC, &H, &W);
  const int64_t P = output_size.h, Q = output_size.w;
  REEL_CHECK(P >= 1 && Q >= 1,
             "adaptive_avg_pool2d: output size (" << P << ", " << Q << ") must be >= 1");
  REEL_CHECK(H >= 1 && W >= 1,
             "adaptive_avg_pool2d: the input " << shape_str(x.shape()) << " has an empty plane");
  const Device dev = x.device();
  Tensor y = Tensor::empty(pooled_shape(x, P, Q), dev);
  if (NC > 0) REEL_KERNEL(dev, adaptive_avg_pool2d_forward, x.data(), y.data(), NC, H, W, P, Q);
  if (!any_requires_grad({&x})) return y;
  auto node = record("adaptive_avg_pool2d", y, {x});
  node->backward = [NC, H, W, P, Q, xshape = x.shape()](Node&, const Grads& g) {
    Tensor dx = Tensor::empty(xshape, g[0].device());
    if (NC > 0)
      REEL_KERNEL(g[0].device(), adaptive_avg_pool2d_backward, g[0].data(), dx.data(), NC, H, W, P,
                  Q);
    return Grads{dx};
  };
  return y;
}

// ---- dropout, flatten ----

Tensor dropout(const Tensor& x, float p, bool training, Generator& gen) {
  REEL_CHECK(x.defined(), "dropout: the input is an undefined tensor");
  REEL_CHECK(p >= 0.0f && p <= 1.0f, "dropout: p " << p << " is outside [0, 1]");
  if (!training || p == 0.0f) return x;
  if (p == 1.0f) return x * 0.0f;
  const uint64_t seed = gen.next_u64();
  const Device dev = x.device();
  Tensor y = Tensor::empty(x.shape(), dev);
  if (x.numel() > 0) REEL_KERNEL(dev, dropout_apply, x.data(), y.data(), x.numel(), p, seed);
  if (!any_requires_grad({&x})) return y;
  auto node = record("dropout", y, {x});
  node->backward = [p, seed](Node&, const Grads& g) {
    Tensor dx = Tensor::empty(g[0].shape(), g[0].device());
    if (dx.numel() > 0)
      REEL_KERNEL(g[0].device(), dropout_apply, g[0].data(), dx.data(), dx.numel(), p, seed);
    return Grads{dx};
  };
  return y;
}

Tensor flatten(const Tensor& x, int64_t start_dim, int64_t end_dim) {
  REEL_CHECK(x.defined(), "flatten: the input is an undefined tensor");
  const int64_t nd = x.dim() == 0 ? 1 : x.dim();
  const int64_t s = start_dim < 0 ? start_dim + nd : start_dim;
  const int64_t e = end_dim < 0 ? end_dim + nd : end_dim;
  REEL_CHECK(s >= 0 && e < nd && s <= e, "flatten: dimensions " << start_dim << ".." << end_dim
                                                                << " do not fit the input "
                                                                << shape_str(x.shape()));
  if (x.dim() == 0) return x.reshape({1});
  Shape out;
  for (int64_t d = 0; d < s; ++d) out.push_back(x.size(d));
  int64_t merged = 1;
  for (int64_t d = s; d <= e; ++d) merged *= x.size(d);
  out.push_back(merged);
  for (int64_t d = e + 1; d < x.dim(); ++d) out.push_back(x.size(d));
  return x.reshape(out);
}

}  // namespace reel
