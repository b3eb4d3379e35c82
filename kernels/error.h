#pragma once
// reel::Error lives here, at the bottom of the house, so that kernels (the CUDA error check,
// the emulation's deadlock report) throw the same type that core's checks throw.
#include <stdexcept>
#include <string>

namespace reel {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace reel
