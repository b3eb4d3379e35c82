#pragma once
// cuBLAS versions of reel ops, for comparison with our own kernels (REEL_GEMM=cublas). Only in
// builds with the real CUDA backend (REEL_WITH_CUBLAS).
#include <cstdint>

#include "reel/kernels/common.h"

namespace reel::vendor {

// Same contract as reel::cuda::gemm (row-major, kernels/gemm.h); device pointers.
void cublas_gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                 const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
                 int64_t ldc, cudaStream_t stream);

}  // namespace reel::vendor
