#pragma once
// The video classifier of reel's seed design: a CNN reads every frame of a clip, an LSTM reads
// the sequence of frame features, a fusion turns the sequence into one vector and a Linear names
// the class. State-dict names, in registration order: cnn.* (a torchvision ResNet whose fc is
// Linear(8 * width, feature_dim), so the reference model's Linear(512, 512) is cnn.fc; or a
// torchvision VGG whose classifier.6 is that projection), lstm.* (nn.LSTM's names), attention.*
// (the attention fusion's scorer) and fc.* (the classifier), so that a PyTorch twin of the model
// exchanges weights with it without renaming.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "reel/layers/backbone.h"
#include "reel/layers/cnn.h"
#include "reel/layers/lstm.h"

namespace reel {

// How the LSTM's outputs over a clip become one vector (valid steps only, see lengths):
//   last       the output at each clip's last valid step (the reference);
//   mean       the mean of the outputs over the valid steps;
//   concat     the mean CNN feature over the valid frames, then the last output: [F + H];
//   attention  a learned weighting: softmax over the valid steps of Linear(H, 1) of each output;
//   pool       no LSTM at all: the mean CNN feature over the valid frames, blind to their order
//              (the baseline a CNN-LSTM has to beat).
enum class Fusion { last, mean, concat, attention, pool };
// "last", "mean", "concat", "attention", "pool"; parse_fusion throws naming the choices.
Fusion parse_fusion(const std::string& name);
std::string fusion_name(Fusion fusion);

struct VideoClassifierOptions {
  // resnet18, resnet34, vgg11, vgg11_bn, vgg13, vgg13_bn, vgg16 or vgg16_bn (layers/backbone.h)
  std::string backbone = "resnet18";
  int64_t width = 64;  // the first stage's channels; features 8 * width (ResNet), 64 * width (VGG)
  int64_t feature_dim = 512;  // F: cnn.fc's outputs, the LSTM's input
  int64_t hidden_size = 256;  // H
  int64_t num_layers = 2;     // L
  int64_t num_classes = 10;
  Fusion fusion = Fusion::last;
  // No gradient into the backbone (its head, cnn.fc or cnn.classifier.6, still trains) and its
  // BatchNorm and Dropout in eval mode: for a pretrained backbone. Its parameters get
  // requires_grad false.
  bool freeze_backbone = false;
  // Keep only each residual block's (VGG: each pooled block's) input during the forward and
  // recompute the block in the backward (Backbone::set_recompute): less memory per frame for
  // about a third more time.
  bool recompute = false;
};

// What VideoClassifier::stream_step carries from frame to frame.
struct VideoStreamState {
  Tensor h, c;           // the LSTM's state, [L, 1, H] each (undefined before the first frame)
  Tensor feature_sum;    // [1, F], the sum of the CNN features so far
  Tensor output_sum;     // [1, H], the sum of the LSTM outputs (mean fusion)
  Tensor attention_sum;  // [1, H], the outputs weighted by exp(score - attention_max)
  float attention_max = 0.0f, attention_den = 0.0f;  // the running softmax's max and sum
  int64_t frames = 0;
};

class VideoClassifier : public Module {
 public:
  explicit VideoClassifier(const VideoClassifierOptions& options);

  // clips: [B, T, 3, H, W] (H, W >= 32); lengths: [B] valid frames per clip, each in 1..T, or
  // empty (all T). Every one of the B * T frames goes through the CNN as one batch (BatchNorm's
  // statistics include frames past a clip's length, as a PyTorch model fed the padded batch
  // would); past its length a clip's frames change nothing else. -> logits [B, num_classes].
  Tensor forward(const Tensor& clips, const std::vector<int64_t>& lengths = {});
  // The fused vector that fc reads: [B, fused_size()]; forward() is fc(fused()). What `reel
  // embed` keeps as a clip's embedding.
  Tensor fused(const Tensor& clips, const std::vector<int64_t>& lengths = {});

  // Online use, one frame at a time, without gradients: frame [1, 3, H, W] -> logits [1, C]
  // after the frames seen so far. The LSTM's state (and each fusion's running sums: the mean,
  // an online softmax for attention) goes from frame to frame in `state`, so a step costs one
  // frame's CNN and one LSTM step. After n frames the logits equal forward() of those n frames
  // as one clip (up to rounding), in eval mode, which streaming needs (BatchNorm statistics of
  // one frame are no use).
  Tensor stream_step(const Tensor& frame, VideoStreamState& state);
  const VideoClassifierOptions& options() const { return opts_; }
  void set_freeze_backbone(bool on);
  void set_recompute(bool on);
  Backbone& cnn() { return *cnn_; }
  // Undefined for the pool fusion.
  LSTM* lstm() { return lstm_.get(); }
  // The fused vector's size, fc's input: H (last, mean, attention), F + H (concat), F (pool).
  int64_t fused_size() const;

 private:
  VideoClassifierOptions opts_;
  std::shared_ptr<Backbone> cnn_;
  std::shared_ptr<LSTM> lstm_;
  std::shared_ptr<Linear> attention_, fc_;
};

}  // namespace reel
