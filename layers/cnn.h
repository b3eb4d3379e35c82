#pragma once
// The CNN's modules with PyTorch's parameter and buffer names: Conv2d (weight, bias),
// BatchNorm2d (weight, bias, running_mean, running_var, num_batches_tracked), Linear (weight,
// bias), and the parameter-free MaxPool2d, AdaptiveAvgPool2d, Dropout and Flatten. Each is
// bookkeeping and one call into an op of core/nn.h or core/ops.h.
#include <cstdint>
#include <optional>
#include <string>

#include "reel/core/nn.h"
#include "reel/layers/module.h"

namespace reel {

struct Conv2dOptions {
  int64_t in_channels = 0, out_channels = 0;
  Size2 kernel_size = 3, stride = 1, padding = 0, dilation = 1;
  bool bias = true;
};

class Conv2d : public Module {
 public:
  // weight [out, in, R, S] and bias [out] drawn uniformly from +-1/sqrt(in * R * S) with reel's
  // default generator, as PyTorch initialises them.
  explicit Conv2d(const Conv2dOptions& options);
  // x: [N, in_channels, H, W] -> [N, out_channels, P, Q]
  Tensor forward(const Tensor& x) const;
  const Conv2dOptions& options() const { return opts_; }
  Tensor weight() const { return weight_; }
  Tensor bias() const { return bias_; }

 private:
  Conv2dOptions opts_;
  Tensor weight_, bias_;
};

class BatchNorm2d : public Module {
 public:
  // weight 1, bias 0, running_mean 0, running_var 1, num_batches_tracked 0 (as PyTorch).
  explicit BatchNorm2d(int64_t num_features, float eps = 1e-5f, float momentum = 0.1f);
  // x: [N, num_features, H, W]. Training: batch statistics, running buffers updated and
  // num_batches_tracked counted; evaluation: the running statistics.
  Tensor forward(const Tensor& x);
  int64_t num_features() const { return num_features_; }
  Tensor weight() const { return weight_; }
  Tensor bias() const { return bias_; }
  Tensor running_mean() const { return running_mean_; }
  Tensor running_var() const { return running_var_; }
  Tensor num_batches_tracked() const { return num_batches_tracked_; }

 private:
  int64_t num_features_;
  float eps_, momentum_;
  Tensor weight_, bias_, running_mean_, running_var_, num_batches_tracked_;
};

class Linear : public Module {
 public:
  // weight [out, in] and bias [out] uniform in +-1/sqrt(in), as PyTorch.
  Linear(int64_t in_features, int64_t out_features, bool bias = true);
  // x: [..., in_features] -> [..., out_features]
  Tensor forward(const Tensor& x) const;
  Tensor weight() const { return weight_; }
  Tensor bias() const { return bias_; }

 private:
  int64_t in_, out_;
  Tensor weight_, bias_;
};

class MaxPool2d : public Module {
 public:
  // stride: the kernel size when not given (PyTorch's default).
  explicit MaxPool2d(Size2 kernel_size, std::optional<Size2> stride = std::nullopt,
                     Size2 padding = 0);
  Tensor forward(const Tensor& x) const;

 private:
  Size2 kernel_, stride_, padding_;
};

class AdaptiveAvgPool2d : public Module {
 public:
  explicit AdaptiveAvgPool2d(Size2 output_size) : output_(output_size) {}
  Tensor forward(const Tensor& x) const { return adaptive_avg_pool2d(x, output_); }

 private:
  Size2 output_;
};

class Dropout : public Module {
 public:
  explicit Dropout(float p = 0.5f);
  // Active in training mode only.
  Tensor forward(const Tensor& x) const { return dropout(x, p_, is_training()); }

 private:
  float p_;
};

class Flatten : public Module {
 public:
  explicit Flatten(int64_t start_dim = 1, int64_t end_dim = -1)
      : start_(start_dim), end_(end_dim) {}
  Tensor forward(const Tensor& x) const { return flatten(x, start_, end_); }

 private:
  int64_t start_, end_;
};

}  // namespace reel
