#include "reel/layers/cnn.h"

#include <cmath>

#include "reel/core/autograd.h"
#include "reel/core/ops.h"
#include "reel/core/random.h"

namespace reel {

namespace {

// Uniform in +-1/sqrt(fan_in): what PyTorch's kaiming_uniform_(a = sqrt(5)) gives the weights of
// Conv2d and Linear, and what it gives their biases.
Tensor fan_in_uniform(const Shape& shape, int64_t fan_in) {
  const float k = 1.0f / std::sqrt(static_cast<float>(fan_in > 0 ? fan_in : 1));
  return Tensor::uniform(shape, -k, k, default_generator());
}

}  // namespace

Conv2d::Conv2d(const Conv2dOptions& o) : opts_(o) {
  const Size2 k = o.kernel_size;
  REEL_CHECK(o.in_channels >= 1 && o.out_channels >= 1 && k.h >= 1 && k.w >= 1,
             "Conv2d: in_channels " << o.in_channels << ", out_channels " << o.out_channels
                                    << " and kernel_size (" << k.h << ", " << k.w
                                    << ") must be >= 1");
  REEL_CHECK(o.stride.h >= 1 && o.stride.w >= 1 && o.dilation.h >= 1 && o.dilation.w >= 1 &&
                 o.padding.h >= 0 && o.padding.w >= 0,
             "Conv2d: stride and dilation must be >= 1 and padding >= 0");
  const int64_t fan_in = o.in_channels * k.h * k.w;
  weight_ = register_parameter("weight",
                               fan_in_uniform({o.out_channels, o.in_channels, k.h, k.w}, fan_in));
  if (o.bias) bias_ = register_parameter("bias", fan_in_uniform({o.out_channels}, fan_in));
}

Tensor Conv2d::forward(const Tensor& x) const {
  REEL_CHECK(x.defined() && x.dim() == 4 && x.size(1) == opts_.in_channels,
             "Conv2d(" << opts_.in_channels << ", " << opts_.out_channels
                       << "): expected an input of shape [N, " << opts_.in_channels
                       << ", H, W], got "
                       << (x.defined() ? shape_str(x.shape()) : std::string("none")));
  return conv2d(x, weight_, bias_, opts_.stride, opts_.padding, opts_.dilation);
}

BatchNorm2d::BatchNorm2d(int64_t num_features, float eps, float momentum)
    : num_features_(num_features), eps_(eps), momentum_(momentum) {
  REEL_CHECK(num_features >= 1, "BatchNorm2d: num_features " << num_features << " must be >= 1");
  REEL_CHECK(eps > 0.0f && momentum >= 0.0f && momentum <= 1.0f,
             "BatchNorm2d(" << num_features << "): eps " << eps << " must be > 0 and momentum "
                            << momentum << " in [0, 1]");
  weight_ = register_parameter("weight", Tensor::ones({num_features}));
  bias_ = register_parameter("bias", Tensor::zeros({num_features}));
  running_mean_ = register_buffer("running_mean", Tensor::zeros({num_features}));
  running_var_ = register_buffer("running_var", Tensor::ones({num_features}));
  num_batches_tracked_ = register_buffer("num_batches_tracked", Tensor::zeros({}));
}

Tensor BatchNorm2d::forward(const Tensor& x) {
  REEL_CHECK(x.defined() && x.dim() == 4 && x.size(1) == num_features_,
             "BatchNorm2d(" << num_features_ << "): expected an input of shape [N, "
                            << num_features_ << ", H, W], got "
                            << (x.defined() ? shape_str(x.shape()) : std::string("none")));
  const bool training = is_training();
  // A checkpoint's recomputation (core/autograd.h) normalises as the forward did, but the
  // running statistics were updated once already.
  const bool update = training && !recomputing();
  Tensor y =
      update
          ? batch_norm(x, running_mean_, running_var_, weight_, bias_, true, momentum_, eps_)
          : batch_norm(x, training ? Tensor() : running_mean_, training ? Tensor() : running_var_,
                       weight_, bias_, training, momentum_, eps_);
  if (update) {
    NoGradGuard guard;
    num_batches_tracked_.add_(Tensor::ones({}, num_batches_tracked_.device()));
  }
  return y;
}

Linear::Linear(int64_t in_features, int64_t out_features, bool bias)
    : in_(in_features), out_(out_features) {
  REEL_CHECK(in_features >= 1 && out_features >= 1, "Linear: in_features "
                                                        << in_features << " and out_features "
                                                        << out_features << " must be >= 1");
  weight_ = register_parameter("weight", fan_in_uniform({out_features, in_features}, in_features));
  if (bias) bias_ = register_parameter("bias", fan_in_uniform({out_features}, in_features));
}

Tensor Linear::forward(const Tensor& x) const {
  REEL_CHECK(x.defined() && x.dim() >= 1 && x.size(x.dim() - 1) == in_,
             "Linear(" << in_ << ", " << out_ << "): expected an input of shape [..., " << in_
                       << "], got " << (x.defined() ? shape_str(x.shape()) : std::string("none")));
  return linear(x, weight_, bias_);
}

MaxPool2d::MaxPool2d(Size2 kernel_size, std::optional<Size2> stride, Size2 padding)
    : kernel_(kernel_size), stride_(stride.value_or(kernel_size)), padding_(padding) {}

Tensor MaxPool2d::forward(const Tensor& x) const {
  return max_pool2d(x, kernel_, stride_, padding_);
}

Dropout::Dropout(float p) : p_(p) {
  REEL_CHECK(p >= 0.0f && p <= 1.0f, "Dropout: p " << p << " is outside [0, 1]");
}

}  // namespace reel
