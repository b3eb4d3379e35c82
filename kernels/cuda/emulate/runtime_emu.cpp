// The CUDA runtime wrappers of the emulated build: one device, "cuda:0", whose memory is host
// memory, so that every op of core can run its CUDA kernels through the SIMT emulation.
#include <cstdlib>
#include <cstring>

#include "reel/kernels/cuda/runtime.h"
#include "reel/kernels/error.h"

namespace reel::cuda {

namespace {
void check_device(int device) {
  if (device != 0)
    throw Error("CUDA device " + std::to_string(device) +
                " does not exist (the SIMT emulation has one device, cuda:0)");
}
}  // namespace

bool built_with_cuda() { return true; }
bool emulated() { return true; }
int device_count() { return 1; }

void* malloc_on(int device, std::size_t bytes) {
  check_device(device);
  void* p = nullptr;  // cudaMalloc's alignment, and exactly `bytes` for AddressSanitizer
  if (posix_memalign(&p, 256, bytes) != 0) p = nullptr;
  if (!p) throw Error("emulated cudaMalloc of " + std::to_string(bytes) + " bytes failed");
  return p;
}
void free_on(int, void* ptr) noexcept { std::free(ptr); }
cudaStream_t stream_for(int device) {
  check_device(device);
  return nullptr;
}
void synchronize(int device) { check_device(device); }
void copy_host_to_device(int device, void* dst, const void* src, std::size_t bytes) {
  check_device(device);
  if (bytes) std::memcpy(dst, src, bytes);
}
void copy_device_to_host(int device, void* dst, const void* src, std::size_t bytes) {
  check_device(device);
  if (bytes) std::memcpy(dst, src, bytes);
}
void copy_device_to_device(int device, void* dst, const void* src, std::size_t bytes) {
  check_device(device);
  if (bytes) std::memmove(dst, src, bytes);
}

void* host_alloc_pinned(std::size_t bytes) {
  void* p = std::malloc(bytes ? bytes : 1);
  if (!p) throw Error("emulated cudaHostAlloc of " + std::to_string(bytes) + " bytes failed");
  return p;
}
void host_free_pinned(void* ptr) noexcept { std::free(ptr); }
// The emulation runs every launch to its end before returning, so a queued copy is a done copy.
void copy_host_to_device_async(int device, void* dst, const void* src, std::size_t bytes) {
  copy_host_to_device(device, dst, src, bytes);
}
Event record_event(int device) {
  check_device(device);
  static int done_marker;
  return &done_marker;
}
bool event_done(Event) { return true; }
void event_destroy(Event) noexcept {}

}  // namespace reel::cuda
