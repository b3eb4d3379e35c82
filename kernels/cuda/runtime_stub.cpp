// The CUDA runtime wrappers of a build configured with REEL_CUDA=OFF.
#include "reel/kernels/cuda/runtime.h"

namespace reel::cuda {

namespace {
const char* kNoCuda = "this build of reel has no CUDA backend (configured with REEL_CUDA=OFF)";
}

bool built_with_cuda() { return false; }
int device_count() { return 0; }
std::string malloc_on(int, std::size_t, void**) { return kNoCuda; }
std::string free_on(int, void*) { return kNoCuda; }
std::string copy_host_to_device(int, void*, const void*, std::size_t) { return kNoCuda; }
std::string copy_device_to_host(int, void*, const void*, std::size_t) { return kNoCuda; }
std::string copy_device_to_device(int, void*, const void*, std::size_t) { return kNoCuda; }

}  // namespace reel::cuda
