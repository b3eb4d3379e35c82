#pragma once
// What every kernels/cuda/*.cu file includes first. The same source is built twice:
//  - by nvcc into the real library (libreel.a), launching with <<< >>>;
//  - by the host compiler with REEL_CUDA_EMULATION defined, against the SIMT emulation, into
//    the test-only libreel_emu.a, so that CI runs every kernel on the CPU.
// Both define the same functions in namespace reel::cuda; no program links both libraries.
// Kernel files never write <<< >>> themselves: they call reel::launch_kernel() so that both
// builds see one source (CI greps for it).
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

#include "reel/kernels/error.h"

#if defined(REEL_CUDA_EMULATION)
#include "reel/kernels/cuda/emulate/simt.h"
#define REEL_UNROLL
// Dynamic shared memory: one per-launch buffer, NaN-filled at each block's start.
#define REEL_DYNAMIC_SMEM(T, name) T* name = static_cast<T*>(::reel::emu::dynamic_smem())
#else
#include <cuda_runtime.h>
#define REEL_UNROLL _Pragma("unroll")
#define REEL_DYNAMIC_SMEM(T, name)                  \
  extern __shared__ unsigned char reel_dyn_smem_[]; \
  T* name = reinterpret_cast<T*>(reel_dyn_smem_)
#endif

namespace reel {

// Throws reel::Error naming the call, the file and line and CUDA's error string.
#if !defined(REEL_CUDA_EMULATION)
inline void cuda_check(cudaError_t e, const char* call, const char* file, int line) {
  if (e == cudaSuccess) return;
  throw Error(std::string(call) + " failed at " + file + ":" + std::to_string(line) + ": " +
              cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")");
}
#define REEL_CUDA_CHECK(call) ::reel::cuda_check((call), #call, __FILE__, __LINE__)
#endif

// grid x block threads run kernel(args...) with smem_bytes of dynamic shared memory on stream.
template <class... KArgs, class... Args>
void launch_kernel(void (*kernel)(KArgs...), dim3 grid, dim3 block, std::size_t smem_bytes,
                   cudaStream_t stream, Args&&... args) {
  if (grid.x == 0 || grid.y == 0 || grid.z == 0) return;  // nothing to do (empty tensors)
#if defined(REEL_CUDA_EMULATION)
  (void)stream;
  emu::launch(grid, block, smem_bytes, [&] { kernel(static_cast<KArgs>(args)...); });
#else
  // clang-format reads a header as C++, where >>> would be split.
  // clang-format off
  kernel<<<grid, block, smem_bytes, stream>>>(static_cast<KArgs>(std::forward<Args>(args))...);
  // clang-format on
  REEL_CUDA_CHECK(cudaGetLastError());
#endif
}

// Blocks of `threads` covering n elements.
inline unsigned blocks_for(int64_t n, unsigned threads) {
  const int64_t b = (n + threads - 1) / threads;
  return static_cast<unsigned>(b < 1 ? 1 : (b > 65535 * 16 ? 65535 * 16 : b));
}

}  // namespace reel
