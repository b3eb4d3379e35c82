// The SIMT emulation's scheduler: fibres on Boost.Context's fcontext, one per CUDA thread.
#include "reel/kernels/cuda/emulate/simt.h"

#include <sys/mman.h>

#include <boost/context/detail/fcontext.hpp>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <vector>

#include "reel/kernels/error.h"

#if defined(__SANITIZE_ADDRESS__)
#define REEL_EMU_ASAN 1
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

namespace fc = boost::context::detail;

namespace reel::emu {

thread_local uint3 g_thread_idx{0, 0, 0};
thread_local uint3 g_block_idx{0, 0, 0};
thread_local dim3 g_block_dim{1, 1, 1};
thread_local dim3 g_grid_dim{1, 1, 1};

namespace {

#ifdef REEL_EMU_ASAN
constexpr std::size_t kStackSize = 256 * 1024;  // instrumented frames are larger
#else
constexpr std::size_t kStackSize = 64 * 1024;
#endif
constexpr std::size_t kGuardSize = 4096;
constexpr unsigned kMaxThreads = 1024;

enum class State { Runnable, AtBarrier, AtWarp, Done };

struct Fiber {
  fc::fcontext_t ctx = nullptr;  // where this fibre resumes
  State state = State::Runnable;
  uint3 tid{0, 0, 0};
  char* stack_lo = nullptr;  // lowest usable byte of its stack
  void* fake_stack = nullptr;
  // The pending warp operation.
  WarpOp op = WarpOp::Sync;
  unsigned mask = 0;
  uint64_t value = 0, result = 0;
  int arg = 0, width = 32;
};

// Stacks for up to kMaxThreads fibres, mapped once per OS thread without reserve and reused:
// a fresh page costs 12 to 17 us on first touch here, so launches must not remap them.
struct StackPool {
  char* base = nullptr;
  StackPool() = default;
  StackPool(const StackPool&) = delete;
  StackPool& operator=(const StackPool&) = delete;
  ~StackPool() {
    if (base) munmap(base, kMaxThreads * (kStackSize + kGuardSize));
  }
  char* stack(unsigned i) {
    if (!base) {
      const std::size_t total = kMaxThreads * (kStackSize + kGuardSize);
      void* p = mmap(nullptr, total, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
      if (p == MAP_FAILED) throw Error("SIMT emulation: could not map fibre stacks");
      base = static_cast<char*>(p);
      // A guard page below every stack turns an overflow into a fault, not a corruption.
      for (unsigned k = 0; k < kMaxThreads; ++k)
        mprotect(base + k * (kStackSize + kGuardSize), kGuardSize, PROT_NONE);
    }
    return base + i * (kStackSize + kGuardSize) + kGuardSize;
  }
};

struct Launch {
  std::vector<Fiber> fibers;
  fc::fcontext_t sched_ctx = nullptr;
  Fiber* current = nullptr;
  const std::function<void()>* body = nullptr;
  std::string error;
  std::vector<unsigned char> smem;
  const void* sched_stack_bottom = nullptr;
  std::size_t sched_stack_size = 0;
  void* sched_fake_stack = nullptr;
};

thread_local Launch* t_launch = nullptr;
thread_local StackPool t_stacks;
uint64_t g_shuffle_seed = [] {
  const char* s = std::getenv("REEL_EMU_SHUFFLE");
  return s ? std::strtoull(s, nullptr, 10) : 0ULL;
}();

#ifdef REEL_EMU_ASAN
void asan_report_hook(const char*) {
  if (t_launch && t_launch->current) {
    const uint3 t = t_launch->current->tid;
    std::fprintf(stderr,
                 "reel SIMT emulation: the report above comes from block (%u, %u, %u), thread "
                 "(%u, %u, %u) of the running kernel\n",
                 g_block_idx.x, g_block_idx.y, g_block_idx.z, t.x, t.y, t.z);
  }
}
#endif

void start_switch(void** fake_stack, const void* bottom, std::size_t size) {
#ifdef REEL_EMU_ASAN
  __sanitizer_start_switch_fiber(fake_stack, bottom, size);
#else
  (void)fake_stack, (void)bottom, (void)size;
#endif
}
void finish_switch(void* fake_stack, const void** bottom_old, std::size_t* size_old) {
#ifdef REEL_EMU_ASAN
  __sanitizer_finish_switch_fiber(fake_stack, bottom_old, size_old);
#else
  (void)fake_stack, (void)bottom_old, (void)size_old;
#endif
}

// Runs on the fibre's own stack.
void fiber_entry(fc::transfer_t t) {
  Launch* L = t_launch;
  L->sched_ctx = t.fctx;
  finish_switch(nullptr, &L->sched_stack_bottom, &L->sched_stack_size);
  Fiber* f = static_cast<Fiber*>(t.data);
  try {
    (*L->body)();
  } catch (const std::exception& e) {
    if (L->error.empty()) L->error = e.what();
  } catch (...) {
    if (L->error.empty()) L->error = "unknown exception in an emulated kernel";
  }
  f->state = State::Done;
  start_switch(nullptr, L->sched_stack_bottom, L->sched_stack_size);  // this stack is done
  fc::jump_fcontext(L->sched_ctx, nullptr);
  std::abort();  // never resumed
}

// Called by a fibre: back to the scheduler until it resumes this fibre.
void yield() {
  Launch* L = t_launch;
  Fiber* f = L->current;
  start_switch(&f->fake_stack, L->sched_stack_bottom, L->sched_stack_size);
  fc::transfer_t t = fc::jump_fcontext(L->sched_ctx, nullptr);
  L->sched_ctx = t.fctx;
  finish_switch(f->fake_stack, nullptr, nullptr);
}

void resume(Launch& L, Fiber& f) {
  L.current = &f;
  g_thread_idx = f.tid;
  start_switch(&L.sched_fake_stack, f.stack_lo, kStackSize);
  fc::transfer_t t = fc::jump_fcontext(f.ctx, &f);
  finish_switch(L.sched_fake_stack, nullptr, nullptr);
  f.ctx = t.fctx;
  L.current = nullptr;
}

std::string where(const Fiber& f) {
  char buf[160];
  std::snprintf(buf, sizeof buf, "block (%u, %u, %u), thread (%u, %u, %u)", g_block_idx.x,
                g_block_idx.y, g_block_idx.z, f.tid.x, f.tid.y, f.tid.z);
  return buf;
}

// Completes every warp operation whose lanes have all arrived. Returns true when some fibre
// became runnable; throws on an operation that can never complete.
bool resolve_warps(Launch& L) {
  bool released = false;
  const unsigned n = static_cast<unsigned>(L.fibers.size());
  for (unsigned w0 = 0; w0 < n; w0 += 32) {
    const unsigned w1 = std::min(n, w0 + 32);
    for (unsigned i = w0; i < w1; ++i) {
      Fiber& lead = L.fibers[i];
      if (lead.state != State::AtWarp) continue;
      const unsigned mask = lead.mask;
      // Every existing lane of the mask must be waiting on the same operation.
      bool complete = true;
      for (unsigned j = w0; j < w1; ++j) {
        if (!(mask >> (j - w0) & 1u)) continue;
        const Fiber& f = L.fibers[j];
        if (f.state == State::AtWarp && f.mask == mask && f.op == lead.op) continue;
        if (f.state == State::Runnable || f.state == State::AtWarp) {
          // Still running, or in another group of lanes that may complete first (Volta and
          // later allow divergent groups with their own masks): not complete yet.
          complete = false;
          continue;
        }
        throw Error("SIMT emulation: deadlock: a warp operation in " + where(lead) +
                    " waits for lane " + std::to_string(j - w0) + ", which " +
                    (f.state == State::Done ? "has exited" : "waits at __syncthreads()") +
                    " (undefined behaviour on a GPU)");
      }
      if (!complete) continue;
      auto in_group = [&](int lane) {
        return lane >= 0 && static_cast<unsigned>(lane) < w1 - w0 && (mask >> lane & 1u);
      };
      uint64_t ballot = 0;
      for (unsigned j = w0; j < w1; ++j)
        if ((mask >> (j - w0) & 1u) && L.fibers[j].value) ballot |= 1ull << (j - w0);
      for (unsigned j = w0; j < w1; ++j) {
        if (!(mask >> (j - w0) & 1u)) continue;
        Fiber& f = L.fibers[j];
        const int lane = static_cast<int>(j - w0);
        const int width = f.width;
        const int seg = lane & ~(width - 1);
        int src = lane;
        switch (f.op) {
          case WarpOp::ShflIdx:
            src = seg + (f.arg & (width - 1));
            break;
          case WarpOp::ShflUp:
            src = lane - f.arg >= seg ? lane - f.arg : lane;
            break;
          case WarpOp::ShflDown:
            src = lane + f.arg < seg + width ? lane + f.arg : lane;
            break;
          case WarpOp::ShflXor: {
            const int x = lane ^ f.arg;
            src = x >= seg && x < seg + width ? x : lane;
            break;
          }
          default:
            break;
        }
        switch (f.op) {
          case WarpOp::Ballot:
            f.result = ballot;
            break;
          case WarpOp::Any:
            f.result = ballot != 0;
            break;
          case WarpOp::All: {
            uint64_t need = 0;
            for (unsigned k = w0; k < w1; ++k)
              if (mask >> (k - w0) & 1u) need |= 1ull << (k - w0);
            f.result = ballot == need;
            break;
          }
          case WarpOp::Sync:
            f.result = 0;
            break;
          default:
            if (!in_group(src))
              throw Error("SIMT emulation: a warp shuffle in " + where(f) + " reads lane " +
                          std::to_string(src) +
                          ", which does not take part (not in the mask, or past the end of a "
                          "partial warp): undefined on a GPU");
            f.result = L.fibers[w0 + src].value;
            break;
        }
      }
      for (unsigned j = w0; j < w1; ++j)
        if (mask >> (j - w0) & 1u) L.fibers[j].state = State::Runnable;
      released = true;
    }
  }
  return released;
}

void run_block(Launch& L, uint64_t& rng) {
  const unsigned n = static_cast<unsigned>(L.fibers.size());
  if (!L.smem.empty())  // NaN bytes: a read before a write shows
    std::memset(L.smem.data(), 0xff, L.smem.size());
  for (unsigned i = 0; i < n; ++i) {
    Fiber& f = L.fibers[i];
    f.state = State::Runnable;
    f.fake_stack = nullptr;
    f.tid = {i % g_block_dim.x, (i / g_block_dim.x) % g_block_dim.y,
             i / (g_block_dim.x * g_block_dim.y)};
    f.stack_lo = t_stacks.stack(i);
    f.ctx = fc::make_fcontext(f.stack_lo + kStackSize, kStackSize, fiber_entry);
  }
  std::vector<unsigned> order(n);
  for (unsigned i = 0; i < n; ++i) order[i] = i;
  for (;;) {
    if (g_shuffle_seed != 0) {
      for (unsigned i = n; i > 1; --i) {  // Fisher-Yates with a xorshift generator
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        std::swap(order[i - 1], order[rng % i]);
      }
    }
    for (unsigned i : order)
      if (L.fibers[i].state == State::Runnable) resume(L, L.fibers[i]);
    if (!L.error.empty()) throw Error("emulated kernel failed: " + L.error);
    unsigned done = 0, at_barrier = 0;
    for (const Fiber& f : L.fibers) {
      done += f.state == State::Done;
      at_barrier += f.state == State::AtBarrier;
    }
    if (done == n) return;
    if (resolve_warps(L)) continue;
    if (done + at_barrier == n) {  // exited threads no longer take part in barriers
      for (Fiber& f : L.fibers)
        if (f.state == State::AtBarrier) f.state = State::Runnable;
      continue;
    }
    for (const Fiber& f : L.fibers)
      if (f.state == State::AtWarp)
        throw Error("SIMT emulation: deadlock: the warp operation in " + where(f) +
                    " can never complete (its lanes wait at different warp operations or "
                    "masks, or other threads of the block wait at __syncthreads())");
    throw Error("SIMT emulation: deadlock in the block");  // not reached
  }
}

}  // namespace

void set_shuffle_seed(uint64_t seed) { g_shuffle_seed = seed; }
uint64_t shuffle_seed() { return g_shuffle_seed; }

void launch(dim3 grid, dim3 block, std::size_t smem_bytes, const std::function<void()>& body) {
  const uint64_t threads = uint64_t{block.x} * block.y * block.z;
  if (threads == 0 || threads > kMaxThreads || block.z > 64 || grid.x == 0 || grid.y == 0 ||
      grid.z == 0 || grid.y > 65535 || grid.z > 65535)
    throw Error("SIMT emulation: invalid launch: grid (" + std::to_string(grid.x) + ", " +
                std::to_string(grid.y) + ", " + std::to_string(grid.z) + "), block (" +
                std::to_string(block.x) + ", " + std::to_string(block.y) + ", " +
                std::to_string(block.z) + ")");
  if (t_launch) throw Error("SIMT emulation: a kernel cannot launch another kernel");
#ifdef REEL_EMU_ASAN
  static const bool hooked = (__asan_set_error_report_callback(asan_report_hook), true);
  (void)hooked;
#endif
  Launch L;
  L.fibers.resize(threads);
  L.body = &body;
  L.smem.assign(smem_bytes, 0xff);
  t_launch = &L;
  g_grid_dim = grid;
  g_block_dim = block;
  uint64_t rng = g_shuffle_seed * 0x9e3779b97f4a7c15ull + 1;
  try {
    for (unsigned bz = 0; bz < grid.z; ++bz)
      for (unsigned by = 0; by < grid.y; ++by)
        for (unsigned bx = 0; bx < grid.x; ++bx) {
          g_block_idx = {bx, by, bz};
          run_block(L, rng);
        }
  } catch (...) {
    // Fibres left suspended hold nothing that needs destroying (kernels keep plain values on
    // their stacks); their stacks are reused by the next launch.
    t_launch = nullptr;
    throw;
  }
  t_launch = nullptr;
}

void sync_threads() {
  Launch* L = t_launch;
  if (!L || !L->current) return;  // host code: nothing to wait for
  L->current->state = State::AtBarrier;
  yield();
}

void* dynamic_smem() { return t_launch ? t_launch->smem.data() : nullptr; }

uint64_t warp_exchange(WarpOp op, unsigned mask, uint64_t value, int arg, int width) {
  Launch* L = t_launch;
  if (!L || !L->current) throw Error("SIMT emulation: warp operation outside a kernel");
  Fiber* f = L->current;
  const unsigned lane = static_cast<unsigned>(f - L->fibers.data()) % 32;
  if (!(mask >> lane & 1u))
    throw Error("SIMT emulation: " + where(*f) +
                " calls a warp operation with a mask that "
                "leaves out its own lane");
  if (width <= 0 || width > 32 || (width & (width - 1)))
    throw Error("SIMT emulation: warp operation width " + std::to_string(width) +
                " is not a power of two up to 32");
  f->op = op;
  f->mask = mask;
  f->value = value;
  f->arg = arg;
  f->width = width;
  f->state = State::AtWarp;
  yield();
  return f->result;
}

}  // namespace reel::emu
