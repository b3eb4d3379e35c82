#pragma once
// Backbone: the per-frame CNN of the video classifier, a torchvision ResNet or VGG. Each is a
// Module with torchvision's parameter names whose last layer is a Linear (ResNet's "fc", VGG's
// "classifier.6"); the video classifier makes that Linear its projection to the feature size F
// and reads features() (everything before it).
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "reel/core/error.h"
#include "reel/layers/cnn.h"

namespace reel {

// Runs f, naming `where` (a module's path, "resnet18: layer2.0") in front of any reel::Error it
// throws.
template <class F>
Tensor named_errors(const std::string& where, F&& f) {
  try {
    return f();
  } catch (const Error& e) {
    throw Error(where + ": " + e.what());
  }
}

class Backbone : public Module {
 public:
  // x: [N, 3, H, W] (H, W >= min_input()) -> head(features(x)): [N, head's outputs].
  virtual Tensor forward(const Tensor& x) = 0;
  // Everything before the head: [N, feature_size()].
  virtual Tensor features(const Tensor& x) = 0;
  // The last Linear(feature_size(), num_classes), and its name in state_dict() ("fc",
  // "classifier.6").
  virtual Linear& head() = 0;
  virtual std::string head_name() const = 0;
  virtual int64_t feature_size() const = 0;
  // "resnet18", "vgg11_bn", ...
  virtual std::string name() const = 0;
  // Keep only the input of each stage during the forward and compute the stage again in the
  // backward (core/autograd.h checkpoint()): less memory for about one more forward.
  virtual void set_recompute(bool on) = 0;
  virtual bool recompute() const = 0;
};

// The backbones by name: resnet18, resnet34, vgg11, vgg11_bn, vgg13, vgg13_bn, vgg16, vgg16_bn.
// width scales the channels as torchvision's 64 does (8, 16 or 32 give small models); the head
// has num_classes outputs. An unknown name throws, listing the names.
std::shared_ptr<Backbone> make_backbone(const std::string& name, int64_t width,
                                        int64_t num_classes);
// Those names, in that order.
const std::vector<std::string>& backbones();
// "resnet18, resnet34, vgg11, ..., vgg16_bn", for messages.
std::string backbone_names();

}  // namespace reel
