#pragma once
// Device dispatch for core's ops: one kernel family has the same function in reel::cpu and in
// reel::cuda, the CUDA one taking the device's stream last. REEL_KERNEL(device, fn, args...)
// calls the one for `device`.
#include <atomic>
#include <string>

#include "reel/core/device.h"
#include "reel/core/error.h"
#include "reel/kernels/cuda/runtime.h"

#if defined(REEL_WITH_CUDA)
#define REEL_KERNEL(device, fn, ...)                \
  ((device).is_cpu() ? ::reel::cpu::fn(__VA_ARGS__) \
                     : ::reel::cuda::fn(__VA_ARGS__, ::reel::cuda::stream_for((device).index)))
#else
#define REEL_KERNEL(device, fn, ...)  \
  ((device).is_cpu()                  \
       ? ::reel::cpu::fn(__VA_ARGS__) \
       : throw ::reel::Error(std::string(#fn) + ": this build of reel has no CUDA kernels"))
#endif

namespace reel {

// A backend choice read from the environment once: slot holds -1 until the first call, which
// stores parse(getenv(var)), or parse(fallback) when var is unset or empty; a store into slot
// (a set_*_backend call) wins over a concurrent first read. Each later call reads one atomic.
int backend_from_env(std::atomic<int>& slot, const char* var, const char* fallback,
                     int (*parse)(const std::string&));

// Which GEMM runs on CUDA devices: REEL_GEMM=custom (default: our regblock128), cublas, or one
// rung of our ladder by name (naive, tiled, regblock64, regblock128). Read once, at the first
// GEMM; each GEMM call then reads one atomic. cuda_gemm_backend() names the one in use
// ("regblock128" for custom); set_cuda_gemm_backend throws reel::Error on an unknown name and
// changes nothing then.
std::string cuda_gemm_backend();
void set_cuda_gemm_backend(const std::string& name);

// C = alpha op(A) op(B) + beta C on `device` (contract of kernels/gemm.h).
void device_gemm(const Device& device, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
                 float alpha, const float* A, int64_t lda, const float* B, int64_t ldb, float beta,
                 float* C, int64_t ldc);

}  // namespace reel
