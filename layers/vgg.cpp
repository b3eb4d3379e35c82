#include "reel/layers/vgg.h"

#include <algorithm>
#include <cmath>

#include "reel/core/autograd.h"
#include "reel/core/ops.h"
#include "reel/core/random.h"

namespace reel {

namespace {

// A module whose children are named by their index in a torchvision nn.Sequential (which
// counts the parameter-free layers too).
struct Indexed : Module {
  template <class M>
  std::shared_ptr<M> add(int64_t index, std::shared_ptr<M> child) {
    return register_module(std::to_string(index), std::move(child));
  }
};

}  // namespace

// The convolutional part ("features"): blocks of 3x3 convolutions (each followed by its
// BatchNorm when there is one, and a ReLU), every block ending in a 2x2 max pooling. The
// children are named by their index in torchvision's nn.Sequential, which counts the ReLUs and
// poolings too.
struct VGG::Features : Indexed {
  struct Layer {
    std::shared_ptr<Conv2d> conv;
    std::shared_ptr<BatchNorm2d> bn;  // null without batch_norm
    std::string index;                // the convolution's index, for messages
  };
  std::vector<std::vector<Layer>> blocks;
  MaxPool2d pool{2};

  // One block: conv, [bn], relu ..., then the pooling. The last ReLU runs after the pooling, on
  // a quarter of the values: max and ReLU commute (both non-decreasing), so values and gradients
  // are torchvision's, and the full-size output of that ReLU is never kept for backward.
  Tensor block(size_t b, const Tensor& x, const std::string& me) const {
    Tensor y = x;
    const std::vector<Layer>& layers = blocks[b];
    for (size_t l = 0; l < layers.size(); ++l) {
      const Layer& layer = layers[l];
      y = named_errors(me + ": features." + layer.index, [&] { return layer.conv->forward(y); });
      if (layer.bn) y = layer.bn->forward(y);
      if (l + 1 < layers.size()) y = relu(y);
    }
    return relu(pool.forward(y));
  }
};

// torchvision's classifier: Linear, ReLU, Dropout, Linear, ReLU, Dropout, Linear, with the
// Linears at indices 0, 3 and 6.
struct VGG::Classifier : Indexed {};

std::string VGG::name() const {
  return "vgg" + std::to_string(opts_.depth) + (opts_.batch_norm ? "_bn" : "");
}

VGG::VGG(const VGGOptions& o) : opts_(o) {
  REEL_CHECK(o.depth == 11 || o.depth == 13 || o.depth == 16,
             "VGG: depth " << o.depth << " is not supported (11, 13 or 16)");
  REEL_CHECK(o.width >= 1 && o.num_classes >= 1,
             "VGG: width " << o.width << " and num_classes " << o.num_classes << " must be >= 1");
  set_dropout(o.dropout);
  // Convolutions per block: configurations A (VGG-11), B (VGG-13) and D (VGG-16).
  const std::vector<int> counts = o.depth == 11   ? std::vector<int>{1, 1, 2, 2, 2}
                                  : o.depth == 13 ? std::vector<int>{2, 2, 2, 2, 2}
                                                  : std::vector<int>{2, 2, 3, 3, 3};
  features_ = register_module("features", std::make_shared<Features>());
  int64_t in = 3, index = 0;
  for (int b = 0; b < 5; ++b) {
    const int64_t out = o.width << std::min(b, 3);  // w, 2w, 4w, 8w, 8w
    std::vector<Features::Layer> block;
    for (int c = 0; c < counts[static_cast<size_t>(b)]; ++c) {
      Conv2dOptions co;
      co.in_channels = in, co.out_channels = out, co.kernel_size = 3, co.padding = 1;
      Features::Layer layer;
      layer.index = std::to_string(index);
      layer.conv = features_->add(index, std::make_shared<Conv2d>(co));
      ++index;
      if (o.batch_norm) {
        layer.bn = features_->add(index, std::make_shared<BatchNorm2d>(out));
        ++index;
      }
      ++index;  // the ReLU
      block.push_back(layer);
      in = out;
    }
    ++index;  // the max pooling
    features_->blocks.push_back(block);
  }
  classifier_ = register_module("classifier", std::make_shared<Classifier>());
  const int64_t hidden = 64 * o.width;
  fc0_ = classifier_->add(0, std::make_shared<Linear>(in * 7 * 7, hidden));
  fc3_ = classifier_->add(3, std::make_shared<Linear>(hidden, hidden));
  fc6_ = classifier_->add(6, std::make_shared<Linear>(hidden, o.num_classes));
  // torchvision's initialisation.
  NoGradGuard guard;
  for (const auto& block : features_->blocks)
    for (const auto& layer : block) {
      Tensor w = layer.conv->weight();
      const int64_t fan_out = w.size(0) * w.size(2) * w.size(3);
      w.copy_(Tensor::normal(w.shape(), 0.0f, std::sqrt(2.0f / static_cast<float>(fan_out)),
                             default_generator()));
      layer.conv->bias().fill_(0.0f);
    }
  for (Linear* fc : {fc0_.get(), fc3_.get(), fc6_.get()}) {
    fc->weight().copy_(Tensor::normal(fc->weight().shape(), 0.0f, 0.01f, default_generator()));
    fc->bias().fill_(0.0f);
  }
}

void VGG::set_dropout(float p) {
  REEL_CHECK(p >= 0.0f && p < 1.0f, "VGG: dropout " << p << " must be in [0, 1)");
  opts_.dropout = p;
}

Tensor VGG::features(const Tensor& x) {
  const std::string me = name();
  REEL_CHECK(x.defined() && x.dim() == 4 && x.size(1) == 3,
             me << ": expected an input of shape [N, 3, H, W], got "
                << (x.defined() ? shape_str(x.shape()) : std::string("none")));
  REEL_CHECK(x.size(2) >= kVGGMinInput && x.size(3) >= kVGGMinInput,
             me << ": the input " << shape_str(x.shape()) << " is too small: " << me
                << " needs frames of at least " << kVGGMinInput << "x" << kVGGMinInput);
  Tensor y = x;
  for (size_t b = 0; b < features_->blocks.size(); ++b) {
    std::shared_ptr<Features> f = features_;
    auto run = [f, b, me](const Tensor& in) { return f->block(b, in, me); };
    if (recompute_) {
      std::vector<Tensor> params;
      for (const auto& layer : f->blocks[b]) {
        for (const Tensor& p : layer.conv->parameters()) params.push_back(p);
        if (layer.bn)
          for (const Tensor& p : layer.bn->parameters()) params.push_back(p);
      }
      y = checkpoint(run, y, params);
    } else {
      y = run(y);
    }
  }
  y = flatten(avgpool_.forward(y), 1);
  const bool drop = is_training();
  y = dropout(relu(named_errors(me + ": classifier.0", [&] { return fc0_->forward(y); })),
              opts_.dropout, drop);
  return dropout(relu(fc3_->forward(y)), opts_.dropout, drop);
}

Tensor VGG::forward(const Tensor& x) {
  Tensor f = features(x);
  return named_errors(name() + ": classifier.6", [&] { return fc6_->forward(f); });
}

}  // namespace reel
