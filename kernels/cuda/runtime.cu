#include <cuda_runtime.h>

#include <string>

#include "reel/kernels/cuda/runtime.h"

namespace reel::cuda {

namespace {
std::string check(cudaError_t e, const char* call) {
  if (e == cudaSuccess) return {};
  return std::string(call) + " failed: " + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) +
         ")";
}
}  // namespace

bool built_with_cuda() { return true; }

int device_count() {
  int n = 0;  // left unwritten when the call fails
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky error
    return 0;
  }
  return n;
}

std::string malloc_on(int device, std::size_t bytes, void** ptr) {
  std::string e = check(cudaSetDevice(device), "cudaSetDevice");
  if (!e.empty()) return e;
  return check(cudaMalloc(ptr, bytes), "cudaMalloc");
}

std::string free_on(int device, void* ptr) {
  std::string e = check(cudaSetDevice(device), "cudaSetDevice");
  if (!e.empty()) return e;
  return check(cudaFree(ptr), "cudaFree");
}

std::string copy_host_to_device(int device, void* dst, const void* src, std::size_t bytes) {
  std::string e = check(cudaSetDevice(device), "cudaSetDevice");
  if (!e.empty()) return e;
  return check(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice), "cudaMemcpy(host to device)");
}

std::string copy_device_to_host(int device, void* dst, const void* src, std::size_t bytes) {
  std::string e = check(cudaSetDevice(device), "cudaSetDevice");
  if (!e.empty()) return e;
  return check(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost), "cudaMemcpy(device to host)");
}

std::string copy_device_to_device(int device, void* dst, const void* src, std::size_t bytes) {
  std::string e = check(cudaSetDevice(device), "cudaSetDevice");
  if (!e.empty()) return e;
  return check(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToDevice),
               "cudaMemcpy(device to device)");
}

}  // namespace reel::cuda
