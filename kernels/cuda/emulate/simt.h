#pragma once
// SIMT emulation: lets a CUDA kernel file compile with the host compiler and run on the CPU.
// A launch runs the grid's blocks one after another on the calling thread; inside a block,
// every CUDA thread is a fibre (Boost.Context fcontext, about 10 ns a switch), and the
// scheduler switches fibres at __syncthreads() and at warp operations. So:
//   - __shared__ is `static`: blocks never run at the same time, so one static is one block's
//     shared memory, separate per kernel and per template instance;
//   - threadIdx, blockIdx, blockDim, gridDim are globals set before a fibre is resumed;
//   - warp shuffles, ballots and __syncwarp are barriers over the warp's fibres that exchange
//     values; a warp operation that some lanes of its mask skip is reported as a deadlock, as
//     it is undefined on a GPU;
//   - set_shuffle_seed() runs the fibres between two barriers in a seeded random order, which
//     turns a missing barrier into a wrong result.
// Limits: no preemption (a spin-wait on another block hangs) and races finer than a barrier
// interval are not seen; static __shared__ arrays keep the previous block's values (only
// dynamic shared memory is NaN-filled); __shfl_xor_sync with a width below 32 whose source lies
// outside the lane's group returns the lane's own value (CUDA reads from an earlier group).
// A real GPU run covers those.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <type_traits>

// CUDA's host_defines.h makes these empty for a host compiler; a kernel file must see ours.
#undef __global__
#undef __device__
#undef __host__
#undef __forceinline__
#undef __noinline__
#undef __launch_bounds__
#undef __constant__
#undef __shared__
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)
#define __constant__ static
#define __shared__ static

struct uint3 {
  unsigned int x, y, z;
};
struct dim3 {
  unsigned int x, y, z;
  constexpr dim3(unsigned int x_ = 1, unsigned int y_ = 1, unsigned int z_ = 1)
      : x(x_), y(y_), z(z_) {}
};
typedef struct CUstream_st* cudaStream_t;
// CUDA's vector type for 16-byte loads and stores (aligned as on the device, so a misaligned
// reinterpret_cast shows under UBSan as it would fault on a GPU).
struct alignas(16) float4 {
  float x, y, z, w;
};

namespace reel::emu {

// The running fibre's coordinates (set by the scheduler before each switch into a fibre).
extern thread_local uint3 g_thread_idx;
extern thread_local uint3 g_block_idx;
extern thread_local dim3 g_block_dim;
extern thread_local dim3 g_grid_dim;

// Runs body() once per CUDA thread of a grid x block launch. smem_bytes of dynamic shared
// memory are filled with NaN bytes at each block's start, so a read before a write shows.
// Throws reel::Error on a deadlock (a barrier or warp operation that cannot complete) or
// when the launch shape is invalid.
void launch(dim3 grid, dim3 block, std::size_t smem_bytes, const std::function<void()>& body);

// 0: fibres run in thread order between barriers; otherwise a random order from this seed.
// REEL_EMU_SHUFFLE=<seed> in the environment sets the initial value.
void set_shuffle_seed(uint64_t seed);
uint64_t shuffle_seed();

// Barrier over the block.
void sync_threads();
// The current launch's dynamic shared memory.
void* dynamic_smem();

enum class WarpOp : int { Sync, ShflIdx, ShflUp, ShflDown, ShflXor, Ballot, Any, All };
// A warp-wide exchange of 64-bit values: waits until every lane in mask has arrived, then
// returns this lane's result of op (arg: the source lane, delta or xor mask).
uint64_t warp_exchange(WarpOp op, unsigned mask, uint64_t value, int arg, int width);

template <class T>
uint64_t to_bits(T v) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value, "warp value");
  uint64_t b = 0;
  std::memcpy(&b, &v, sizeof(T));
  return b;
}
template <class T>
T from_bits(uint64_t b) {
  T v;
  std::memcpy(&v, &b, sizeof(T));
  return v;
}

}  // namespace reel::emu

#define threadIdx (::reel::emu::g_thread_idx)
#define blockIdx (::reel::emu::g_block_idx)
#define blockDim (::reel::emu::g_block_dim)
#define gridDim (::reel::emu::g_grid_dim)
#define warpSize 32

inline void __syncthreads() { ::reel::emu::sync_threads(); }
inline void __syncwarp(unsigned mask = 0xffffffffu) {
  ::reel::emu::warp_exchange(::reel::emu::WarpOp::Sync, mask, 0, 0, 32);
}
template <class T>
T __shfl_sync(unsigned mask, T v, int src, int width = 32) {
  using namespace ::reel::emu;
  return from_bits<T>(warp_exchange(WarpOp::ShflIdx, mask, to_bits(v), src, width));
}
template <class T>
T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  using namespace ::reel::emu;
  return from_bits<T>(
      warp_exchange(WarpOp::ShflUp, mask, to_bits(v), static_cast<int>(delta), width));
}
template <class T>
T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  using namespace ::reel::emu;
  return from_bits<T>(
      warp_exchange(WarpOp::ShflDown, mask, to_bits(v), static_cast<int>(delta), width));
}
template <class T>
T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
  using namespace ::reel::emu;
  return from_bits<T>(warp_exchange(WarpOp::ShflXor, mask, to_bits(v), lane_mask, width));
}
inline unsigned __ballot_sync(unsigned mask, int pred) {
  using namespace ::reel::emu;
  return static_cast<unsigned>(warp_exchange(WarpOp::Ballot, mask, pred != 0, 0, 32));
}
inline int __any_sync(unsigned mask, int pred) {
  using namespace ::reel::emu;
  return static_cast<int>(warp_exchange(WarpOp::Any, mask, pred != 0, 0, 32));
}
inline int __all_sync(unsigned mask, int pred) {
  using namespace ::reel::emu;
  return static_cast<int>(warp_exchange(WarpOp::All, mask, pred != 0, 0, 32));
}

// Atomics: fibres of one launch never run at the same time, so a plain update is atomic.
template <class T>
T atomicAdd(T* p, T v) {
  T old = *p;
  *p = old + v;
  return old;
}
template <class T>
T atomicMax(T* p, T v) {
  T old = *p;
  *p = old < v ? v : old;
  return old;
}
template <class T>
T atomicMin(T* p, T v) {
  T old = *p;
  *p = v < old ? v : old;
  return old;
}
template <class T>
T atomicExch(T* p, T v) {
  T old = *p;
  *p = v;
  return old;
}
template <class T>
T atomicCAS(T* p, T compare, T v) {
  T old = *p;
  if (old == compare) *p = v;
  return old;
}

// CUDA's device math that the host library lacks.
template <class T>
T min(T a, T b) {
  return b < a ? b : a;
}
template <class T>
T max(T a, T b) {
  return a < b ? b : a;
}
inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline float __saturatef(float x) { return x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x); }
inline int __float_as_int(float x) { return ::reel::emu::from_bits<int>(::reel::emu::to_bits(x)); }
inline float __int_as_float(int x) {
  return ::reel::emu::from_bits<float>(::reel::emu::to_bits(x));
}
template <class T>
T __ldg(const T* p) {
  return *p;
}
