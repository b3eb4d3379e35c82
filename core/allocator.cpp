#include "reel/core/allocator.h"

#include <cstdlib>
#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>

#include "reel/core/error.h"
#include "reel/kernels/cuda/runtime.h"

namespace reel {

namespace {

struct CpuPool {
  std::mutex mu;
  std::unordered_map<std::size_t, std::vector<void*>> free_blocks;  // size class -> blocks
  AllocatorStats stats;
};

CpuPool& pool() {
  // Never destroyed: tensors held by static objects may be released after main returns.
  static CpuPool* p = new CpuPool;
  return *p;
}

}  // namespace

std::size_t allocation_size_class(std::size_t bytes) {
  if (bytes <= 512) return (bytes + 63) / 64 * 64;
  int log2 = 63 - __builtin_clzll(static_cast<unsigned long long>(bytes - 1));  // 2^log2 < bytes
  std::size_t step = std::size_t{1} << (log2 - 2);
  return (bytes + step - 1) / step * step;
}

void* cpu_allocate(std::size_t bytes) {
  if (bytes == 0) return nullptr;
  const std::size_t cls = allocation_size_class(bytes);
  CpuPool& p = pool();
  {
    std::lock_guard<std::mutex> lock(p.mu);
    auto it = p.free_blocks.find(cls);
    if (it != p.free_blocks.end() && !it->second.empty()) {
      void* ptr = it->second.back();
      it->second.pop_back();
      p.stats.cached_bytes -= cls;
      p.stats.in_use_bytes += cls;
      ++p.stats.cache_hits;
      return ptr;
    }
  }
  void* ptr = std::aligned_alloc(64, cls);
  if (ptr == nullptr) {
    // Give the cache back and try once more before failing.
    cpu_empty_cache();
    ptr = std::aligned_alloc(64, cls);
  }
  REEL_CHECK(ptr != nullptr, "out of host memory: could not allocate " << bytes << " bytes");
  std::lock_guard<std::mutex> lock(p.mu);
  ++p.stats.system_allocations;
  p.stats.system_bytes += cls;
  p.stats.in_use_bytes += cls;
  return ptr;
}

void cpu_release(void* ptr, std::size_t bytes) {
  if (ptr == nullptr) return;
  const std::size_t cls = allocation_size_class(bytes);
  CpuPool& p = pool();
  std::lock_guard<std::mutex> lock(p.mu);
  p.free_blocks[cls].push_back(ptr);
  p.stats.in_use_bytes -= cls;
  p.stats.cached_bytes += cls;
}

AllocatorStats cpu_allocator_stats() {
  CpuPool& p = pool();
  std::lock_guard<std::mutex> lock(p.mu);
  return p.stats;
}

void cpu_empty_cache() {
  CpuPool& p = pool();
  std::lock_guard<std::mutex> lock(p.mu);
  for (auto& [cls, blocks] : p.free_blocks) {
    for (void* b : blocks) std::free(b);
    p.stats.system_bytes -= cls * blocks.size();
    p.stats.cached_bytes -= cls * blocks.size();
    blocks.clear();
  }
}

void* device_allocate(const Device& device, std::size_t bytes) {
  if (bytes == 0) return nullptr;
  check_device_usable(device);
  void* ptr = nullptr;
  const std::string err = cuda::malloc_on(device.index, bytes, &ptr);
  REEL_CHECK(err.empty(), "allocating " << bytes << " bytes on " << device.str() << ": " << err);
  return ptr;
}

void device_release(const Device& device, void* ptr, std::size_t /*bytes*/) {
  if (ptr != nullptr) cuda::free_on(device.index, ptr);  // errors at teardown are not actionable
}

}  // namespace reel
