// The CUDA runtime wrappers of a build configured with REEL_CUDA=OFF: no devices.
#include "reel/kernels/cuda/runtime.h"
#include "reel/kernels/error.h"

namespace reel::cuda {

namespace {
[[noreturn]] void no_cuda() {
  throw Error("this build of reel has no CUDA backend (configured with REEL_CUDA=OFF)");
}
}  // namespace

bool built_with_cuda() { return false; }
bool emulated() { return false; }
int device_count() { return 0; }
void* malloc_on(int, std::size_t) { no_cuda(); }
void free_on(int, void*) noexcept {}
cudaStream_t stream_for(int) { no_cuda(); }
void synchronize(int) { no_cuda(); }
void copy_host_to_device(int, void*, const void*, std::size_t) { no_cuda(); }
void copy_device_to_host(int, void*, const void*, std::size_t) { no_cuda(); }
void copy_device_to_device(int, void*, const void*, std::size_t) { no_cuda(); }

void* host_alloc_pinned(std::size_t) { no_cuda(); }
void host_free_pinned(void*) noexcept {}
void copy_host_to_device_async(int, void*, const void*, std::size_t) { no_cuda(); }
Event record_event(int) { no_cuda(); }
bool event_done(Event) { return true; }
void event_destroy(Event) noexcept {}

}  // namespace reel::cuda
