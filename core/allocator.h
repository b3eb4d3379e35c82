#pragma once
// Caching allocators. A freed block is kept for the next request of its size class instead of
// going back to the system: on our VMs the first touch of a fresh page costs 12 to 17 us per
// 4 KiB (measured), so a training step that returned memory and faulted it in again would run
// several times slower.
#include <cstddef>
#include <cstdint>

#include "reel/core/device.h"

namespace reel {

// Byte counts are of whole blocks (a request rounded up to its size class), as in
// torch.cuda.memory_stats.
struct AllocatorStats {
  std::size_t system_allocations = 0;  // blocks ever taken from the system
  std::size_t system_bytes = 0;        // bytes held from the system (in use + cached)
  std::size_t in_use_bytes = 0;        // bytes handed out and not yet released
  std::size_t peak_in_use_bytes = 0;   // the most in use at once since the last reset
  std::size_t cached_bytes = 0;        // bytes kept for reuse
  std::size_t cache_hits = 0;          // requests served from the cache
};

// ---- what users call, for either device (cpu or cuda:N) ----
// The pool of `device`: bytes in use now, the peak since the last reset, bytes cached and the
// number of system allocations (torch.cuda.memory_stats, max_memory_allocated).
AllocatorStats memory_stats(const Device& device);
// Starts a new peak: peak_in_use_bytes = in_use_bytes.
void reset_peak_memory_stats(const Device& device);
// Returns every cached (not in use) block of the device's pool to the system.
void empty_cache(const Device& device);

// Copies `bytes` of host memory to `device` (cuda:N) without waiting for the device: through a
// block of the pinned pool that is held back until the copy has run. For the small arrays an op
// sends each step (class indices, sequence lengths): the staged copy of pageable memory would
// wait for the work queued before an earlier copy.
void copy_to_device_async(const Device& device, void* dst, const void* src, std::size_t bytes);

// Raw bytes from the caching pool of `device` (host or device memory), returned to it when
// destroyed: for buffers that are not float tensors, such as class indices.
class Buffer {
 public:
  Buffer(std::size_t bytes, const Device& device);
  ~Buffer();
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  void* data() const { return data_; }
  std::size_t bytes() const { return bytes_; }
  const Device& device() const { return device_; }

 private:
  void* data_ = nullptr;
  std::size_t bytes_ = 0;
  Device device_;
};

// Rounds a request under 1 MiB up to its size class: 64-byte multiples up to 512 bytes, then
// four classes per power of two, so at most 25% of a block is slack. Larger requests are whole
// pages carved from cached segments (best fit, split, merged again when freed).
std::size_t allocation_size_class(std::size_t bytes);

// Host memory, 64-byte aligned, from the caching pool. allocate(0) returns nullptr.
void* cpu_allocate(std::size_t bytes);
// bytes: the size given to cpu_allocate.
void cpu_release(void* ptr, std::size_t bytes);
AllocatorStats cpu_allocator_stats();
// Returns every cached (not in use) block to the system.
void cpu_empty_cache();

// Device memory on `device` (cuda:N), from a caching pool of the same design: after the first
// training step, no step calls cudaMalloc.
void* device_allocate(const Device& device, std::size_t bytes);
void device_release(const Device& device, void* ptr, std::size_t bytes);
AllocatorStats device_allocator_stats(const Device& device);
void device_empty_cache(const Device& device);

// Pinned (page-locked) host memory, from which copies to a GPU run asynchronously; from a
// caching pool. A released block that an asynchronous copy may still be reading is held back
// until that copy's event has completed, so the next batch never overwrites it mid-copy.
void* pinned_allocate(std::size_t bytes);
void pinned_release(void* ptr, std::size_t bytes);
// ptr (a pinned block in use) is read by the copy queued before `event` (from
// cuda::record_event; the pool destroys it).
void pinned_record_use(void* ptr, void* event);
AllocatorStats pinned_allocator_stats();

}  // namespace reel
