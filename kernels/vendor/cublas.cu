// cuBLAS SGEMM behind reel's row-major contract.
#include "reel/kernels/cuda/launch.h"
//
#include <cublas_v2.h>

#include <mutex>
#include <string>
#include <vector>

#include "reel/kernels/error.h"
#include "reel/kernels/vendor/cublas.h"

namespace reel {

// REEL_CUDA_CHECK (kernels/cuda/launch.h) also checks cuBLAS calls through this overload.
inline void cuda_check(cublasStatus_t s, const char* call, const char* file, int line) {
  if (s == CUBLAS_STATUS_SUCCESS) return;
  throw Error(std::string(call) + " failed at " + file + ":" + std::to_string(line) + ": " +
              cublasGetStatusName(s) + " (" + cublasGetStatusString(s) + ")");
}

namespace vendor {

namespace {

cublasHandle_t handle_for_current_device() {
  static std::mutex mu;
  static std::vector<cublasHandle_t> handles;
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess) throw Error("cublas_gemm: no current CUDA device");
  std::lock_guard<std::mutex> lock(mu);
  if (static_cast<int>(handles.size()) <= device) handles.resize(device + 1, nullptr);
  if (!handles[device]) REEL_CUDA_CHECK(cublasCreate(&handles[device]));
  return handles[device];
}

}  // namespace

void cublas_gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                 const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
                 int64_t ldc, cudaStream_t stream) {
  if (M == 0 || N == 0) return;
  cublasHandle_t h = handle_for_current_device();
  REEL_CUDA_CHECK(cublasSetStream(h, stream));
  // cuBLAS is column-major: a row-major C[M, N] is a column-major C^T[N, M], and
  // C^T = op(B)^T op(A)^T, so B goes first with the same transpose flags.
  REEL_CUDA_CHECK(cublasSgemm_64(h, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                                 trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K, &alpha, B, ldb, A,
                                 lda, &beta, C, ldc));
}

}  // namespace vendor
}  // namespace reel
