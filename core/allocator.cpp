#include "reel/core/allocator.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "reel/core/error.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
// Under AddressSanitizer a cached block is poisoned while it sits in the cache, and the slack
// between a request and its size class stays poisoned while it is in use: a read past the end
// of a tensor or after its release is reported, as it would be without the pool. (Host memory
// only: on a real GPU the device pointers are not host-addressable; in the SIMT emulation they
// are, so emulated kernels are checked too.)
#define REEL_POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define REEL_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define REEL_POISON(p, n) ((void)(p), (void)(n))
#define REEL_UNPOISON(p, n) ((void)(p), (void)(n))
#endif
#include "reel/kernels/cuda/runtime.h"

namespace reel {

namespace {

// A caching pool over a raw allocator; shared by host and device memory. Two parts:
//  - small requests (under kLargeBytes): free lists per size class, a freed block kept for the
//    next request of its class;
//  - large ones (activations, gradients, workspaces): segments taken from the system and carved
//    into blocks, first fit in address order. A request takes the lowest free block that holds
//    it, split so that the rest stays free; a freed block merges with its free neighbours in the
//    segment. A training step asks for tensors of many sizes, and free lists per class would hold
//    the peak of every class at once (measured: a third more memory per frame of a ResNet step).
class CachingPool {
 public:
  // host_addressable: the blocks can be poisoned for AddressSanitizer.
  CachingPool(std::function<void*(std::size_t)> get, std::function<void(void*)> put,
              bool host_addressable)
      : get_(std::move(get)), put_(std::move(put)), poison_(host_addressable) {}

  static constexpr std::size_t kLargeBytes = std::size_t{1} << 20;
  static constexpr std::size_t kLargeGrain = 4096;  // large blocks are whole pages
  static constexpr std::size_t kSegmentBytes = std::size_t{256} << 20;

  void* allocate(std::size_t bytes) {
    if (bytes == 0) return nullptr;
    if (bytes >= kLargeBytes) return allocate_large(bytes);
    const std::size_t cls = allocation_size_class(bytes);
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = free_.find(cls);
      if (it != free_.end() && !it->second.empty()) {
        void* p = it->second.back();
        it->second.pop_back();
        stats_.cached_bytes -= cls;
        add_in_use(cls);
        ++stats_.cache_hits;
        hand_out(p, bytes, cls);
        return p;
      }
    }
    void* p = from_system(cls);
    if (!p) return nullptr;
    std::lock_guard<std::mutex> lock(mu_);
    ++stats_.system_allocations;
    stats_.system_bytes += cls;
    add_in_use(cls);
    hand_out(p, bytes, cls);
    return p;
  }

  void release(void* p, std::size_t bytes) {
    if (!p) return;
    if (bytes >= kLargeBytes) return release_large(p);
    const std::size_t cls = allocation_size_class(bytes);
    std::lock_guard<std::mutex> lock(mu_);
    if (poison_) REEL_POISON(p, cls);
    free_[cls].push_back(p);
    stats_.in_use_bytes -= cls;
    stats_.cached_bytes += cls;
  }

  AllocatorStats stats() {
    std::lock_guard<std::mutex> lock(mu_);
    return stats_;
  }

  void reset_peak() {
    std::lock_guard<std::mutex> lock(mu_);
    stats_.peak_in_use_bytes = stats_.in_use_bytes;
  }

  // Returns every cached small block and every wholly free segment to the system (a segment
  // with a block in use keeps its free blocks, as PyTorch's CUDA allocator does).
  void empty_cache() {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [cls, blocks] : free_) {
      for (void* b : blocks) {
        if (poison_) REEL_UNPOISON(b, cls);
        put_(b);
      }
      stats_.system_bytes -= cls * blocks.size();
      stats_.cached_bytes -= cls * blocks.size();
      blocks.clear();
    }
    for (auto it = large_free_.begin(); it != large_free_.end();) {
      Block* b = it->second;
      if (b->prev || b->next) {
        ++it;
        continue;
      }
      if (poison_) REEL_UNPOISON(b->ptr, b->size);
      put_(b->ptr);
      stats_.system_bytes -= b->size;
      stats_.cached_bytes -= b->size;
      delete b;
      it = large_free_.erase(it);
    }
  }

 private:
  // A block of a large segment: neighbours in address order within its segment.
  struct Block {
    char* ptr;
    std::size_t size;
    bool free;
    Block* prev;
    Block* next;
  };

  void* from_system(std::size_t bytes) {
    void* p = nullptr;
    try {
      p = get_(bytes);
    } catch (const Error&) {  // a failed cudaMalloc throws
    }
    if (!p) {  // give the cache back and try once more (this time a failure propagates)
      empty_cache();
      p = get_(bytes);
    }
    return p;
  }

  void* allocate_large(std::size_t bytes) {
    const std::size_t size = (bytes + kLargeGrain - 1) / kLargeGrain * kLargeGrain;
    Block* b = nullptr;
    {
      std::lock_guard<std::mutex> lock(mu_);
      // First fit in address order: the lowest free block that holds the request, so that the
      // pages in use stay packed at the start of the segments and their tails are never
      // touched (best fit scatters a step's tensors over more pages).
      auto it = large_free_.begin();
      while (it != large_free_.end() && it->second->size < size) ++it;
      if (it != large_free_.end()) {
        b = it->second;
        large_free_.erase(it);
        stats_.cached_bytes -= b->size;
        ++stats_.cache_hits;
        if (b->size - size >= kLargeGrain) {  // split: the rest stays free
          Block* rest = new Block{b->ptr + size, b->size - size, true, b, b->next};
          if (b->next) b->next->prev = rest;
          b->next = rest;
          b->size = size;
          large_free_.insert({rest->ptr, rest});
          stats_.cached_bytes += rest->size;
        }
      }
    }
    if (!b) {
      // A new segment of at least kSegmentBytes, so that the blocks carved from it can merge
      // again into room for any later request (pages never touched cost no memory).
      const std::size_t seg = std::max(size, kSegmentBytes);
      void* p = from_system(seg);
      if (!p) return nullptr;
      b = new Block{static_cast<char*>(p), seg, true, nullptr, nullptr};
      std::lock_guard<std::mutex> lock(mu_);
      ++stats_.system_allocations;
      stats_.system_bytes += seg;
      if (seg > size) {
        Block* rest = new Block{b->ptr + size, seg - size, true, b, nullptr};
        b->next = rest;
        b->size = size;
        large_free_.insert({rest->ptr, rest});
        stats_.cached_bytes += rest->size;
        if (poison_) REEL_POISON(rest->ptr, rest->size);
      }
    }
    std::lock_guard<std::mutex> lock(mu_);
    b->free = false;
    large_used_[b->ptr] = b;
    add_in_use(b->size);
    hand_out(b->ptr, bytes, b->size);
    return b->ptr;
  }

  void release_large(void* p) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = large_used_.find(p);
    if (it == large_used_.end()) return;  // not ours: nothing to do (never happens)
    Block* b = it->second;
    large_used_.erase(it);
    stats_.in_use_bytes -= b->size;
    stats_.cached_bytes += b->size;
    if (poison_) REEL_POISON(b->ptr, b->size);
    b->free = true;
    // Merge with the free neighbours: the one after joins b, b joins the one before (which
    // leaves the free set while it grows).
    if (b->next && b->next->free) absorb_next(b);
    if (b->prev && b->prev->free) {
      b = b->prev;
      large_free_.erase(b->ptr);
      absorb_next(b);
    }
    large_free_.insert({b->ptr, b});
  }

  // Joins b->next (free) to b: its free-set entry and its record go.
  void absorb_next(Block* b) {
    Block* n = b->next;
    large_free_.erase(n->ptr);
    b->size += n->size;
    b->next = n->next;
    if (n->next) n->next->prev = b;
    delete n;
  }

  void add_in_use(std::size_t bytes) {  // with mu_ held
    stats_.in_use_bytes += bytes;
    if (stats_.in_use_bytes > stats_.peak_in_use_bytes)
      stats_.peak_in_use_bytes = stats_.in_use_bytes;
  }

  void hand_out(void* p, std::size_t bytes, std::size_t cls) {
    if (!poison_) return;
    REEL_UNPOISON(p, bytes);
    REEL_POISON(static_cast<char*>(p) + bytes, cls - bytes);
  }

  std::function<void*(std::size_t)> get_;
  std::function<void(void*)> put_;
  std::mutex mu_;
  std::unordered_map<std::size_t, std::vector<void*>> free_;  // size class -> blocks
  std::map<char*, Block*> large_free_;                        // free large blocks by address
  std::unordered_map<void*, Block*> large_used_;
  AllocatorStats stats_;
  bool poison_;
};

// Pools are never destroyed: tensors held by static objects may be released after main.
CachingPool& cpu_pool() {
  static CachingPool* p = new CachingPool([](std::size_t n) { return std::aligned_alloc(64, n); },
                                          [](void* q) { std::free(q); }, true);
  return *p;
}

CachingPool& device_pool(int index) {
  static std::mutex mu;
  static auto* pools = new std::unordered_map<int, CachingPool*>;
  std::lock_guard<std::mutex> lock(mu);
  CachingPool*& p = (*pools)[index];
  if (!p)
    p = new CachingPool([index](std::size_t n) { return cuda::malloc_on(index, n); },
                        [index](void* q) { cuda::free_on(index, q); }, cuda::emulated());
  return *p;
}

struct PinnedUses {
  std::mutex mu;
  std::unordered_map<void*, std::vector<cuda::Event>> uses;  // block -> copies reading it
  struct Held {
    void* ptr;
    std::size_t bytes;
    std::vector<cuda::Event> events;
  };
  std::vector<Held> held;  // released while a copy may still read them
};

CachingPool& pinned_pool() {
  static CachingPool* p = new CachingPool([](std::size_t n) { return cuda::host_alloc_pinned(n); },
                                          [](void* q) { cuda::host_free_pinned(q); }, true);
  return *p;
}

PinnedUses& pinned_uses() {
  static PinnedUses* u = new PinnedUses;
  return *u;
}

// Returns to the pool every held block whose copies have all finished.
void release_finished_pinned() {
  PinnedUses& u = pinned_uses();
  std::lock_guard<std::mutex> lock(u.mu);
  for (size_t i = 0; i < u.held.size();) {
    PinnedUses::Held& h = u.held[i];
    bool done = true;
    for (cuda::Event e : h.events) done = done && cuda::event_done(e);
    if (!done) {
      ++i;
      continue;
    }
    for (cuda::Event e : h.events) cuda::event_destroy(e);
    pinned_pool().release(h.ptr, h.bytes);
    u.held[i] = std::move(u.held.back());
    u.held.pop_back();
  }
}

}  // namespace

void* pinned_allocate(std::size_t bytes) {
  if (bytes == 0) return nullptr;
  release_finished_pinned();
  return pinned_pool().allocate(bytes);
}

void pinned_release(void* ptr, std::size_t bytes) {
  if (!ptr) return;
  PinnedUses& u = pinned_uses();
  {
    std::lock_guard<std::mutex> lock(u.mu);
    auto it = u.uses.find(ptr);
    if (it != u.uses.end()) {
      u.held.push_back({ptr, bytes, std::move(it->second)});
      u.uses.erase(it);
      ptr = nullptr;
    }
  }
  if (ptr) pinned_pool().release(ptr, bytes);
  release_finished_pinned();
}

void pinned_record_use(void* ptr, void* event) {
  PinnedUses& u = pinned_uses();
  std::lock_guard<std::mutex> lock(u.mu);
  std::vector<cuda::Event>& events = u.uses[ptr];
  // A long-lived pinned tensor copied every step: drop the copies that are done.
  for (size_t i = 0; i < events.size();) {
    if (cuda::event_done(events[i])) {
      cuda::event_destroy(events[i]);
      events[i] = events.back();
      events.pop_back();
    } else {
      ++i;
    }
  }
  events.push_back(event);
}

AllocatorStats pinned_allocator_stats() { return pinned_pool().stats(); }

std::size_t allocation_size_class(std::size_t bytes) {
  if (bytes <= 512) return (bytes + 63) / 64 * 64;
  const int log2 = 63 - __builtin_clzll(static_cast<unsigned long long>(bytes - 1));
  const std::size_t step = std::size_t{1} << (log2 - 2);  // four classes per power of two
  return (bytes + step - 1) / step * step;
}

void* cpu_allocate(std::size_t bytes) {
  void* p = cpu_pool().allocate(bytes);
  REEL_CHECK(p != nullptr || bytes == 0,
             "out of host memory: could not allocate " << bytes << " bytes");
  return p;
}

void cpu_release(void* ptr, std::size_t bytes) { cpu_pool().release(ptr, bytes); }
AllocatorStats cpu_allocator_stats() { return cpu_pool().stats(); }
void cpu_empty_cache() { cpu_pool().empty_cache(); }

void* device_allocate(const Device& device, std::size_t bytes) {
  if (bytes == 0) return nullptr;
  check_device_usable(device);
  return device_pool(device.index).allocate(bytes);  // cudaMalloc failures throw
}

void device_release(const Device& device, void* ptr, std::size_t bytes) {
  device_pool(device.index).release(ptr, bytes);
}

AllocatorStats device_allocator_stats(const Device& device) {
  check_device_usable(device);
  return device_pool(device.index).stats();
}

void device_empty_cache(const Device& device) {
  check_device_usable(device);
  device_pool(device.index).empty_cache();
}

AllocatorStats memory_stats(const Device& device) {
  return device.is_cpu() ? cpu_allocator_stats() : device_allocator_stats(device);
}

void reset_peak_memory_stats(const Device& device) {
  if (device.is_cpu()) {
    cpu_pool().reset_peak();
    return;
  }
  check_device_usable(device);
  device_pool(device.index).reset_peak();
}

void empty_cache(const Device& device) {
  if (device.is_cpu())
    cpu_empty_cache();
  else
    device_empty_cache(device);
}

Buffer::Buffer(std::size_t bytes, const Device& device) : bytes_(bytes), device_(device) {
  data_ = device.is_cpu() ? cpu_allocate(bytes) : device_allocate(device, bytes);
}

Buffer::~Buffer() {
  if (device_.is_cpu())
    cpu_release(data_, bytes_);
  else
    device_release(device_, data_, bytes_);
}

void copy_to_device_async(const Device& device, void* dst, const void* src, std::size_t bytes) {
  if (bytes == 0) return;
  check_device_usable(device);
  void* staged = pinned_allocate(bytes);
  std::memcpy(staged, src, bytes);
  cuda::copy_host_to_device_async(device.index, dst, staged, bytes);
  pinned_record_use(staged, cuda::record_event(device.index));
  pinned_release(staged, bytes);  // held back until the copy's event has completed
}

}  // namespace reel
