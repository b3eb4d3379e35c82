// The CUDA runtime wrappers of the real (nvcc) build.
#include "reel/kernels/cuda/launch.h"
//
#include <cstring>
#include <memory>
#include <mutex>
#include <vector>

#include "reel/kernels/cuda/runtime.h"

namespace reel::cuda {

namespace {

constexpr std::size_t kStagingBytes = std::size_t{8} << 20;  // per pinned staging buffer

// No lock is shared between devices or between launching and copying: a launch only reads
// the stream (created once), and a pageable host-to-device copy holds its device's staging lock
// alone while it waits for a buffer and copies into it.
struct DeviceState {
  std::once_flag stream_once;
  cudaStream_t stream = nullptr;
  std::mutex staging_mu;                  // guards the two buffers below
  void* staging[2] = {nullptr, nullptr};  // pinned host buffers, used in turn
  cudaEvent_t staging_free[2] = {nullptr, nullptr};
  int next = 0;  // the buffer the next chunk goes through (they alternate across calls too)
};

std::vector<std::unique_ptr<DeviceState>>& states() {
  static auto* s = [] {
    auto* v = new std::vector<std::unique_ptr<DeviceState>>(device_count());
    for (auto& p : *v) p = std::make_unique<DeviceState>();
    return v;
  }();
  return *s;
}

DeviceState& state(int device) {
  std::vector<std::unique_ptr<DeviceState>>& s = states();
  if (device < 0 || device >= static_cast<int>(s.size()))
    throw Error("CUDA device " + std::to_string(device) + " does not exist (" +
                std::to_string(s.size()) + " found)");
  return *s[device];
}

}  // namespace

bool built_with_cuda() { return true; }
bool emulated() { return false; }

int device_count() {
  int n = 0;  // left unwritten when the call fails
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the error
    return 0;
  }
  return n;
}

void* malloc_on(int device, std::size_t bytes) {
  REEL_CUDA_CHECK(cudaSetDevice(device));
  void* p = nullptr;
  const cudaError_t e = cudaMalloc(&p, bytes);
  // Clear the error, or the next launch's cudaGetLastError() would report it again after the
  // caching allocator has freed its cache and retried successfully.
  if (e != cudaSuccess) cudaGetLastError();
  cuda_check(e, "cudaMalloc", __FILE__, __LINE__);
  return p;
}

void free_on(int device, void* ptr) noexcept {
  if (!ptr) return;
  cudaSetDevice(device);
  cudaFree(ptr);  // at teardown an error is not actionable
}

cudaStream_t stream_for(int device) {
  DeviceState& s = state(device);
  REEL_CUDA_CHECK(cudaSetDevice(device));
  // A failed creation throws out of call_once, which then lets the next caller try again.
  std::call_once(s.stream_once, [&s] {
    REEL_CUDA_CHECK(cudaStreamCreateWithFlags(&s.stream, cudaStreamNonBlocking));
  });
  return s.stream;
}

void synchronize(int device) { REEL_CUDA_CHECK(cudaStreamSynchronize(stream_for(device))); }

void copy_host_to_device(int device, void* dst, const void* src, std::size_t bytes) {
  if (bytes == 0) return;
  cudaStream_t stream = stream_for(device);
  DeviceState& s = state(device);
  std::lock_guard<std::mutex> lock(s.staging_mu);
  for (int i = 0; i < 2; ++i) {
    if (!s.staging[i]) {
      REEL_CUDA_CHECK(cudaHostAlloc(&s.staging[i], kStagingBytes, cudaHostAllocDefault));
      REEL_CUDA_CHECK(cudaEventCreateWithFlags(&s.staging_free[i], cudaEventDisableTiming));
      REEL_CUDA_CHECK(cudaEventRecord(s.staging_free[i], stream));
    }
  }
  // Pageable memory cannot be copied asynchronously: stage it through the two pinned buffers
  // in turn, so that filling one overlaps the copy out of the other.
  const char* p = static_cast<const char*>(src);
  char* d = static_cast<char*>(dst);
  for (std::size_t off = 0; off < bytes; off += kStagingBytes) {
    const int i = s.next;
    s.next ^= 1;
    const std::size_t n = bytes - off < kStagingBytes ? bytes - off : kStagingBytes;
    REEL_CUDA_CHECK(cudaEventSynchronize(s.staging_free[i]));
    std::memcpy(s.staging[i], p + off, n);
    REEL_CUDA_CHECK(cudaMemcpyAsync(d + off, s.staging[i], n, cudaMemcpyHostToDevice, stream));
    REEL_CUDA_CHECK(cudaEventRecord(s.staging_free[i], stream));
  }
}

void copy_device_to_host(int device, void* dst, const void* src, std::size_t bytes) {
  if (bytes == 0) return;
  cudaStream_t stream = stream_for(device);
  REEL_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream));
  REEL_CUDA_CHECK(cudaStreamSynchronize(stream));
}

void copy_device_to_device(int device, void* dst, const void* src, std::size_t bytes) {
  if (bytes == 0) return;
  REEL_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream_for(device)));
}

void* host_alloc_pinned(std::size_t bytes) {
  void* p = nullptr;
  REEL_CUDA_CHECK(cudaHostAlloc(&p, bytes, cudaHostAllocDefault));
  return p;
}

void host_free_pinned(void* ptr) noexcept {
  if (ptr) cudaFreeHost(ptr);
}

void copy_host_to_device_async(int device, void* dst, const void* src, std::size_t bytes) {
  if (bytes == 0) return;
  REEL_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_for(device)));
}

Event record_event(int device) {
  cudaStream_t stream = stream_for(device);
  cudaEvent_t e = nullptr;
  REEL_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
  REEL_CUDA_CHECK(cudaEventRecord(e, stream));
  return e;
}

bool event_done(Event event) {
  const cudaError_t r = cudaEventQuery(static_cast<cudaEvent_t>(event));
  if (r == cudaErrorNotReady) {
    cudaGetLastError();  // not an error: clear it so the next launch check does not see it
    return false;
  }
  // Any other error is the device's, sticky: the next checked call reports it. Here, reached
  // from a tensor's destructor through the pinned pool, it must not throw: call the event done.
  return true;
}

void event_destroy(Event event) noexcept {
  if (event) cudaEventDestroy(static_cast<cudaEvent_t>(event));
}

}  // namespace reel::cuda
