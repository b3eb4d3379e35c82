#pragma once
// VGG-11, -13 and -16 (configurations A, B and D of Simonyan and Zisserman), with or without
// BatchNorm, with torchvision's structure and state_dict names: "features.<i>" numbers every
// layer of the convolutional part (convolution, BatchNorm when present, ReLU, max pooling), so
// that vgg11_bn's convolutions are features.0, features.4, ... and its BatchNorms features.1,
// features.5, ...; then an adaptive average pooling to 7x7 and "classifier.0" (Linear), ReLU,
// Dropout, "classifier.3" (Linear), ReLU, Dropout, "classifier.6" (Linear to the classes).
// `width` scales every convolution's channels as ResNet's does (torchvision's is 64: 64, 128,
// 256, 512, 512) and the classifier's hidden size with them (64 * width: torchvision's 4096).
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "reel/layers/backbone.h"

namespace reel {

struct VGGOptions {
  int depth = 11;  // 11, 13 or 16
  bool batch_norm = false;
  int64_t num_classes = 1000;
  int64_t width = 64;
  float dropout = 0.5f;  // the classifier's two Dropouts (torchvision's `dropout` argument)
};

class VGG : public Backbone {
 public:
  // Initialised as torchvision does: convolutions kaiming normal (fan_out, relu) with bias 0,
  // BatchNorm weight 1 and bias 0, Linear weights from N(0, 0.01) with bias 0.
  explicit VGG(const VGGOptions& options);
  // x: [N, 3, H, W], H, W >= 32 -> logits [N, num_classes].
  Tensor forward(const Tensor& x) override;
  // The classifier's second hidden layer (after its ReLU and Dropout): [N, 64 * width].
  Tensor features(const Tensor& x) override;
  Linear& head() override { return *fc6_; }
  std::string head_name() const override { return "classifier.6"; }
  int64_t feature_size() const override { return 64 * opts_.width; }
  std::string name() const override;
  // Recompute keeps the input of each block of convolutions that ends in a max pooling.
  void set_recompute(bool on) override { recompute_ = on; }
  bool recompute() const override { return recompute_; }
  const VGGOptions& options() const { return opts_; }
  // The classifier's Dropout probability, in [0, 1) (0 for a deterministic comparison).
  void set_dropout(float p);

 private:
  struct Features;
  struct Classifier;
  VGGOptions opts_;
  std::shared_ptr<Features> features_;
  std::shared_ptr<Classifier> classifier_;
  std::shared_ptr<Linear> fc0_, fc3_, fc6_;
  AdaptiveAvgPool2d avgpool_{7};
  bool recompute_ = false;
};

// The smallest input height and width VGG accepts (five 2x2 poolings).
constexpr int64_t kVGGMinInput = 32;

}  // namespace reel
