#include "reel/core/dispatch.h"

#include <cstdlib>
#include <mutex>
#include <string>

#include "reel/kernels/gemm.h"
#if defined(REEL_WITH_CUBLAS)
#include "reel/kernels/vendor/cublas.h"
#endif

namespace reel {

namespace {

std::mutex g_mu;
std::string& backend_storage() {
  static std::string* b = [] {
    const char* env = std::getenv("REEL_GEMM");
    return new std::string(env && *env ? env : "custom");
  }();
  return *b;
}

void check_backend(const std::string& name) {
  REEL_CHECK(name == "custom" || name == "cublas" || name == "naive" || name == "tiled" ||
                 name == "regblock64" || name == "regblock128",
             "REEL_GEMM: unknown GEMM '" << name
                                         << "' (expected custom, cublas, naive, tiled, "
                                            "regblock64 or regblock128)");
#if !defined(REEL_WITH_CUBLAS)
  REEL_CHECK(name != "cublas", "REEL_GEMM=cublas: this build of reel has no cuBLAS "
                               "(it needs the real CUDA backend)");
#endif
}

}  // namespace

std::string cuda_gemm_backend() {
  std::lock_guard<std::mutex> lock(g_mu);
  return backend_storage();
}

void set_cuda_gemm_backend(const std::string& name) {
  check_backend(name);
  std::lock_guard<std::mutex> lock(g_mu);
  backend_storage() = name;
}

void device_gemm(const Device& device, bool trans_a, bool trans_b, int64_t M, int64_t N,
                 int64_t K, float alpha, const float* A, int64_t lda, const float* B,
                 int64_t ldb, float beta, float* C, int64_t ldc) {
  if (device.is_cpu()) {
    cpu::gemm(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
#if defined(REEL_WITH_CUDA)
  const std::string backend = cuda_gemm_backend();
  check_backend(backend);
  cudaStream_t stream = cuda::stream_for(device.index);
#if defined(REEL_WITH_CUBLAS)
  if (backend == "cublas") {
    vendor::cublas_gemm(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, stream);
    return;
  }
#endif
  cuda::gemm_variant(backend == "custom" ? "regblock128" : backend.c_str(), trans_a, trans_b, M,
                     N, K, alpha, A, lda, B, ldb, beta, C, ldc, stream);
#else
  throw Error("matmul: this build of reel has no CUDA kernels");
#endif
}

}  // namespace reel
