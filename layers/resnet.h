#pragma once
// ResNet-18 and ResNet-34 with torchvision's structure and state_dict names (conv1, bn1,
// layer1.0.conv1, layer2.0.downsample.0, ..., fc), so that a torchvision checkpoint saved as
// safetensors loads with no renaming. `width` scales every stage (torchvision's is 64: stages of
// 64, 128, 256, 512 channels); 8, 16 or 32 give models small enough to train on a CPU.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "reel/layers/backbone.h"

namespace reel {

// torchvision's BasicBlock: relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)), both
// convolutions 3x3 (the first one strided), the shortcut a 1x1 convolution and BatchNorm
// ("downsample.0", "downsample.1") when the stride or the channel count changes.
class BasicBlock : public Module {
 public:
  BasicBlock(int64_t in_planes, int64_t planes, int64_t stride);
  Tensor forward(const Tensor& x);

 private:
  std::shared_ptr<Conv2d> conv1_, conv2_;
  std::shared_ptr<BatchNorm2d> bn1_, bn2_;
  struct Downsample;
  std::shared_ptr<Downsample> downsample_;
};

struct ResNetOptions {
  int depth = 18;              // 18 or 34
  int64_t num_classes = 1000;  // the rows of fc
  int64_t width = 64;          // channels of the first stage
  int64_t in_channels = 3;
};

class ResNet : public Backbone {
 public:
  // Initialised as torchvision does: convolutions from a normal with std sqrt(2 / fan_out)
  // (kaiming, fan_out, relu), BatchNorm weight 1 and bias 0, fc as a Linear.
  explicit ResNet(const ResNetOptions& options);
  // x: [N, in_channels, H, W] with H, W >= 32 -> logits [N, num_classes].
  Tensor forward(const Tensor& x) override;
  // The pooled features before fc: [N, 8 * width].
  Tensor features(const Tensor& x) override;
  const ResNetOptions& options() const { return opts_; }
  std::string name() const override { return "resnet" + std::to_string(opts_.depth); }
  int64_t feature_size() const override { return 8 * opts_.width; }
  // The last layer (Linear(feature_size(), num_classes)), for models that put their own head
  // there.
  Linear& fc() { return *fc_; }
  Linear& head() override { return *fc_; }
  std::string head_name() const override { return "fc"; }
  // Recompute: keep only the input of the stem (conv1 to maxpool) and of each residual block
  // during the forward, and compute them again in the backward (core/autograd.h checkpoint()):
  // less memory, about one more forward in time.
  void set_recompute(bool on) override { recompute_ = on; }
  bool recompute() const override { return recompute_; }

 private:
  struct Stage;
  ResNetOptions opts_;
  std::shared_ptr<Conv2d> conv1_;
  std::shared_ptr<BatchNorm2d> bn1_;
  MaxPool2d maxpool_{3, 2, 1};
  AdaptiveAvgPool2d avgpool_{1};
  std::vector<std::shared_ptr<Stage>> stages_;
  std::shared_ptr<Linear> fc_;
  bool recompute_ = false;
};

// The smallest input height and width ResNet accepts.
constexpr int64_t kResNetMinInput = 32;

}  // namespace reel
