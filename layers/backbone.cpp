#include "reel/layers/backbone.h"

#include <algorithm>

#include "reel/layers/resnet.h"
#include "reel/layers/vgg.h"

namespace reel {

const std::vector<std::string>& backbones() {
  static const std::vector<std::string> names = {"resnet18", "resnet34", "vgg11", "vgg11_bn",
                                                 "vgg13",    "vgg13_bn", "vgg16", "vgg16_bn"};
  return names;
}

std::string backbone_names() {
  std::string s;
  for (const std::string& b : backbones()) s += (s.empty() ? "" : ", ") + b;
  return s;
}

std::shared_ptr<Backbone> make_backbone(const std::string& name, int64_t width,
                                        int64_t num_classes) {
  REEL_CHECK(std::find(backbones().begin(), backbones().end(), name) != backbones().end(),
             "unknown backbone '" << name << "': expected one of " << backbone_names());
  if (name.rfind("resnet", 0) == 0) {
    ResNetOptions o;
    o.depth = name == "resnet18" ? 18 : 34;
    o.width = width;
    o.num_classes = num_classes;
    return std::make_shared<ResNet>(o);
  }
  VGGOptions o;
  o.depth = std::stoi(name.substr(3, 2));
  o.batch_norm = name.size() > 5;
  o.width = width;
  o.num_classes = num_classes;
  return std::make_shared<VGG>(o);
}

}  // namespace reel
