#pragma once
// Thin host-side wrappers over the CUDA runtime, so that nothing above kernels/ includes CUDA
// headers. Every function returns an empty string on success, else the CUDA error named with
// the call that failed. Built from runtime.cu with nvcc, or from runtime_stub.cpp when reel is
// configured with REEL_CUDA=OFF (then device_count() is 0 and the rest report that).
#include <cstddef>
#include <string>

namespace reel::cuda {

// True when this build of reel contains the CUDA backend.
bool built_with_cuda();
// Usable CUDA devices; 0 when there is no driver or no GPU (cudaGetDeviceCount fails with
// error 35, insufficient driver, on machines without one and leaves the count unwritten).
int device_count();

std::string malloc_on(int device, std::size_t bytes, void** ptr);
std::string free_on(int device, void* ptr);
// Synchronous copies; dst and src are byte buffers of `bytes`.
std::string copy_host_to_device(int device, void* dst, const void* src, std::size_t bytes);
std::string copy_device_to_host(int device, void* dst, const void* src, std::size_t bytes);
std::string copy_device_to_device(int device, void* dst, const void* src, std::size_t bytes);

}  // namespace reel::cuda
