#pragma once
#include <string>

namespace reel {

enum class DeviceType { CPU, CUDA };

// Where a tensor's storage lives: "cpu" or "cuda:N".
struct Device {
  DeviceType type = DeviceType::CPU;
  int index = 0;

  static Device cpu() { return {}; }
  static Device cuda(int index = 0) { return {DeviceType::CUDA, index}; }
  // "cpu", "cuda", "cuda:N"; anything else throws reel::Error naming the string.
  static Device parse(const std::string& name);

  bool is_cpu() const { return type == DeviceType::CPU; }
  bool is_cuda() const { return type == DeviceType::CUDA; }
  std::string str() const;
  bool operator==(const Device& o) const {
    return type == o.type && (is_cpu() || index == o.index);
  }
  bool operator!=(const Device& o) const { return !(*this == o); }
};

// Throws reel::Error naming the device when it cannot hold tensors in this process (a CUDA
// device without a GPU or driver, an index past the last GPU, a build without CUDA).
void check_device_usable(const Device& device);

namespace cuda {
// True when this build has the CUDA backend and at least one GPU answers.
bool available();
}  // namespace cuda

}  // namespace reel
