#include "reel/core/device.h"

#include <cstdlib>

#include "reel/core/error.h"
#include "reel/kernels/cuda/runtime.h"

namespace reel {

Device Device::parse(const std::string& name) {
  if (name == "cpu") return cpu();
  if (name == "cuda") return cuda(0);
  if (name.rfind("cuda:", 0) == 0 && name.size() > 5) {
    const std::string num = name.substr(5);
    char* end = nullptr;
    long v = std::strtol(num.c_str(), &end, 10);
    if (end && *end == '\0' && v >= 0 && v < 1024) return cuda(static_cast<int>(v));
  }
  throw Error("unknown device '" + name + "': expected 'cpu', 'cuda' or 'cuda:N'");
}

std::string Device::str() const { return is_cpu() ? "cpu" : "cuda:" + std::to_string(index); }

namespace cuda {
bool available() { return device_count() > 0; }
}  // namespace cuda

void check_device_usable(const Device& device) {
  if (device.is_cpu()) return;
  REEL_CHECK(device.index >= 0, "device " << device.str() << ": negative index");
  REEL_CHECK(cuda::built_with_cuda(),
             "device " << device.str() << " requested, but this build of reel has no CUDA backend "
                       << "(configured with REEL_CUDA=OFF)");
  const int n = cuda::device_count();
  REEL_CHECK(n > 0, "device " << device.str()
                              << " requested, but CUDA is not available here (no GPU or no "
                                 "driver); use the cpu device");
  REEL_CHECK(device.index < n,
             "device " << device.str() << " requested, but only " << n << " CUDA device(s) exist");
}

}  // namespace reel
