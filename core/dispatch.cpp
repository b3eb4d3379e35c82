#include "reel/core/dispatch.h"

#include <atomic>
#include <cstdlib>
#include <string>

#include "reel/kernels/gemm.h"
#if defined(REEL_WITH_CUBLAS)
#include "reel/kernels/vendor/cublas.h"
#endif

namespace reel {

namespace {

// The CUDA GEMM, chosen once (REEL_GEMM, read at the first use) and changed only by
// set_cuda_gemm_backend: every GEMM call reads one atomic, with no lock and no string compare.
enum class GemmBackend { Naive, Tiled, Regblock64, Regblock128, Cublas };
constexpr const char* kBackendNames[] = {"naive", "tiled", "regblock64", "regblock128", "cublas"};

// REEL_GEMM's value as a GemmBackend (an int, for backend_from_env).
int parse_backend(const std::string& name) {
  if (name == "custom") return static_cast<int>(GemmBackend::Regblock128);
  for (int i = 0; i < 5; ++i)
    if (name == kBackendNames[i]) {
#if !defined(REEL_WITH_CUBLAS)
      REEL_CHECK(i != static_cast<int>(GemmBackend::Cublas),
                 "REEL_GEMM=cublas: this build of reel has no cuBLAS "
                 "(it needs the real CUDA backend)");
#endif
      return i;
    }
  throw Error("REEL_GEMM: unknown GEMM '" + name +
              "' (expected custom, cublas, naive, tiled, regblock64 or regblock128)");
}

// -1 until the first use reads REEL_GEMM.
std::atomic<int> g_backend{-1};

GemmBackend backend() {
  return static_cast<GemmBackend>(
      backend_from_env(g_backend, "REEL_GEMM", "custom", &parse_backend));
}

}  // namespace

int backend_from_env(std::atomic<int>& slot, const char* var, const char* fallback,
                     int (*parse)(const std::string&)) {
  int b = slot.load(std::memory_order_relaxed);
  if (b < 0) {
    const char* env = std::getenv(var);
    b = parse(env && *env ? env : fallback);
    int expected = -1;  // a concurrent store wins
    if (!slot.compare_exchange_strong(expected, b)) b = expected;
  }
  return b;
}

std::string cuda_gemm_backend() { return kBackendNames[static_cast<int>(backend())]; }

void set_cuda_gemm_backend(const std::string& name) { g_backend.store(parse_backend(name)); }

void device_gemm(const Device& device, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
                 float alpha, const float* A, int64_t lda, const float* B, int64_t ldb, float beta,
                 float* C, int64_t ldc) {
  if (device.is_cpu()) {
    cpu::gemm(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
#if defined(REEL_WITH_CUDA)
  const GemmBackend b = backend();
  cudaStream_t stream = cuda::stream_for(device.index);
#if defined(REEL_WITH_CUBLAS)
  if (b == GemmBackend::Cublas) {
    vendor::cublas_gemm(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, stream);
    return;
  }
#endif
  // The first four backends are the ladder's rungs, in gemm_variants() order.
  cuda::gemm_variant_at(static_cast<int>(b), trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta,
                        C, ldc, stream);
#else
  throw Error("matmul: this build of reel has no CUDA kernels");
#endif
}

}  // namespace reel
