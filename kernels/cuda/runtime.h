#pragma once
// Thin host-side wrappers over the CUDA runtime, so that nothing above kernels/ includes CUDA
// headers. Three builds implement them: runtime.cu (nvcc, the real thing), runtime_stub.cpp
// (REEL_CUDA=OFF: no devices) and emulate/runtime_emu.cpp (the SIMT emulation: one "device"
// whose memory is host memory). Failures throw reel::Error naming the call, the file and line
// and CUDA's error string.
#include <cstddef>

#include "reel/kernels/common.h"

namespace reel::cuda {

// True when this build of reel contains a CUDA backend (real or emulated).
bool built_with_cuda();
// True in the emulated build.
bool emulated();
// Usable CUDA devices; 0 when there is no driver or no GPU (cudaGetDeviceCount fails with
// error 35, insufficient driver, on machines without one and leaves the count unwritten).
int device_count();

// Raw device memory (core's caching allocator sits on top of these).
void* malloc_on(int device, std::size_t bytes);
void free_on(int device, void* ptr) noexcept;

// The stream every reel kernel on `device` runs on; makes `device` current.
cudaStream_t stream_for(int device);
// Waits for all work queued on the device's stream.
void synchronize(int device);

// Copies ordered on the device's stream. Host to device goes through reusable pinned staging
// buffers; device to host waits for the copy to finish. bytes may be 0.
void copy_host_to_device(int device, void* dst, const void* src, std::size_t bytes);
void copy_device_to_host(int device, void* dst, const void* src, std::size_t bytes);
void copy_device_to_device(int device, void* dst, const void* src, std::size_t bytes);

// Page-locked host memory (cudaHostAlloc), from which copies to the device can run
// asynchronously. The emulation hands out ordinary host memory.
void* host_alloc_pinned(std::size_t bytes);
void host_free_pinned(void* ptr) noexcept;
// Queues a copy from pinned host memory on the device's stream and returns at once: src must not
// change until an event recorded after it has completed.
void copy_host_to_device_async(int device, void* dst, const void* src, std::size_t bytes);

// An event recorded on the device's stream (opaque; cudaEvent_t in the real build).
using Event = void*;
Event record_event(int device);
// True once the work queued before the event has finished.
bool event_done(Event event);
void event_destroy(Event event) noexcept;

}  // namespace reel::cuda
