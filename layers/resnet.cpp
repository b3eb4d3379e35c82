#include "reel/layers/resnet.h"

#include <cmath>

#include "reel/core/autograd.h"
#include "reel/core/ops.h"
#include "reel/core/random.h"

namespace reel {

namespace {

std::shared_ptr<Conv2d> conv(int64_t in, int64_t out, int64_t k, int64_t stride, int64_t pad) {
  Conv2dOptions o;
  o.in_channels = in, o.out_channels = out, o.kernel_size = k, o.stride = stride;
  o.padding = pad, o.bias = false;
  return std::make_shared<Conv2d>(o);
}

}  // namespace

struct BasicBlock::Downsample : Module {
  Downsample(int64_t in, int64_t out, int64_t stride)
      : conv(register_module("0", reel::conv(in, out, 1, stride, 0))),
        bn(register_module("1", std::make_shared<BatchNorm2d>(out))) {}
  std::shared_ptr<Conv2d> conv;
  std::shared_ptr<BatchNorm2d> bn;
};

BasicBlock::BasicBlock(int64_t in_planes, int64_t planes, int64_t stride) {
  conv1_ = register_module("conv1", conv(in_planes, planes, 3, stride, 1));
  bn1_ = register_module("bn1", std::make_shared<BatchNorm2d>(planes));
  conv2_ = register_module("conv2", conv(planes, planes, 3, 1, 1));
  bn2_ = register_module("bn2", std::make_shared<BatchNorm2d>(planes));
  if (stride != 1 || in_planes != planes)
    downsample_ =
        register_module("downsample", std::make_shared<Downsample>(in_planes, planes, stride));
}

Tensor BasicBlock::forward(const Tensor& x) {
  Tensor y = named_errors("conv1", [&] { return conv1_->forward(x); });
  y = relu(named_errors("bn1", [&] { return bn1_->forward(y); }));
  y = named_errors("conv2", [&] { return conv2_->forward(y); });
  y = named_errors("bn2", [&] { return bn2_->forward(y); });
  Tensor shortcut = x;
  if (downsample_)
    shortcut = named_errors(
        "downsample", [&] { return downsample_->bn->forward(downsample_->conv->forward(x)); });
  return relu(y + shortcut);
}

// One stage ("layer1" ... "layer4"): blocks named "0", "1", ...
struct ResNet::Stage : Module {
  void add(std::shared_ptr<BasicBlock> block) {
    blocks.push_back(register_module(std::to_string(blocks.size()), std::move(block)));
  }
  std::vector<std::shared_ptr<BasicBlock>> blocks;
};

ResNet::ResNet(const ResNetOptions& o) : opts_(o) {
  REEL_CHECK(o.depth == 18 || o.depth == 34,
             "ResNet: depth " << o.depth << " is not supported (18 or 34)");
  REEL_CHECK(o.width >= 1 && o.num_classes >= 1 && o.in_channels >= 1,
             "ResNet: width " << o.width << ", num_classes " << o.num_classes << " and in_channels "
                              << o.in_channels << " must be >= 1");
  const std::vector<int> counts =
      o.depth == 18 ? std::vector<int>{2, 2, 2, 2} : std::vector<int>{3, 4, 6, 3};
  conv1_ = register_module("conv1", conv(o.in_channels, o.width, 7, 2, 3));
  bn1_ = register_module("bn1", std::make_shared<BatchNorm2d>(o.width));
  int64_t in = o.width;
  for (int s = 0; s < 4; ++s) {
    const int64_t planes = o.width << s;
    auto stage = register_module("layer" + std::to_string(s + 1), std::make_shared<Stage>());
    for (int b = 0; b < counts[s]; ++b) {
      const int64_t stride = (s > 0 && b == 0) ? 2 : 1;
      stage->add(std::make_shared<BasicBlock>(in, planes, stride));
      in = planes;
    }
    stages_.push_back(stage);
  }
  fc_ = register_module("fc", std::make_shared<Linear>(8 * o.width, o.num_classes));
  // torchvision's initialisation of the convolutions: kaiming normal, fan_out, relu gain.
  NoGradGuard guard;
  for (auto& [name, p] : named_parameters()) {
    if (p.dim() != 4) continue;
    const int64_t fan_out = p.size(0) * p.size(2) * p.size(3);
    const float std = std::sqrt(2.0f / static_cast<float>(fan_out));
    p.copy_(Tensor::normal(p.shape(), 0.0f, std, default_generator()));
  }
}

Tensor ResNet::features(const Tensor& x) {
  const std::string me = name();
  REEL_CHECK(x.defined() && x.dim() == 4 && x.size(1) == opts_.in_channels,
             me << ": expected an input of shape [N, " << opts_.in_channels << ", H, W], got "
                << (x.defined() ? shape_str(x.shape()) : std::string("none")));
  REEL_CHECK(x.size(2) >= kResNetMinInput && x.size(3) >= kResNetMinInput,
             me << ": the input " << shape_str(x.shape()) << " is too small: " << me
                << " needs frames of at least " << kResNetMinInput << "x" << kResNetMinInput);
  // The stem: conv1, bn1, relu, maxpool. The ReLU runs after the max pooling, on a quarter of
  // the values: max and ReLU commute (both are non-decreasing), so the values and every
  // gradient are torchvision's, but the full-resolution output of the ReLU is never kept for
  // backward (0.8 MB less per 112x112 frame). With recompute on, the stem keeps only its input
  // (the frames, which exist anyway).
  auto stem = [this, me](const Tensor& in) {
    Tensor s = named_errors(me + ": conv1", [&] { return conv1_->forward(in); });
    s = named_errors(me + ": bn1", [&] { return bn1_->forward(s); });
    return relu(maxpool_.forward(s));
  };
  std::vector<Tensor> stem_params = conv1_->parameters();
  for (const Tensor& p : bn1_->parameters()) stem_params.push_back(p);
  Tensor y = recompute_ ? checkpoint(stem, x, stem_params) : stem(x);
  for (size_t s = 0; s < stages_.size(); ++s)
    for (size_t b = 0; b < stages_[s]->blocks.size(); ++b) {
      const std::string where = me + ": layer" + std::to_string(s + 1) + "." + std::to_string(b);
      std::shared_ptr<BasicBlock> block = stages_[s]->blocks[b];
      auto run = [block, where](const Tensor& in) {
        return named_errors(where, [&] { return block->forward(in); });
      };
      y = recompute_ ? checkpoint(run, y, block->parameters()) : run(y);
    }
  return flatten(avgpool_.forward(y), 1);
}

Tensor ResNet::forward(const Tensor& x) {
  Tensor f = features(x);
  return named_errors(name() + ": fc", [&] { return fc_->forward(f); });
}

}  // namespace reel
