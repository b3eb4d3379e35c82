#pragma once
// CPU single-precision GEMM: a cache-blocked, packed, OpenMP-threaded driver
// (kernels/cpu/gemm.cpp) over register-tile micro-kernels chosen at run time for the CPU
// (kernels/cpu/gemm_avx512.cpp, kernels/cpu/gemm_avx2.cpp, or a portable one).

#include <cstdint>

#include "reel/kernels/common.h"

namespace reel::cpu {

// Row-major single-precision GEMM: C = alpha * op(A) * op(B) + beta * C
// op(A): [M, K]. A is [M, K] with row stride lda >= K, or when trans_a, [K, M] with lda >= M.
// op(B): [K, N]. B is [K, N] with ldb >= N, or when trans_b, [N, K] with ldb >= K.
// C: [M, N] with ldc >= N. beta == 0 means C is not read (NaN in C does not propagate).
// M, N or K may be 0 (K == 0: C = beta * C).
// alpha == 0 means A and B are not read (C = beta * C), as in BLAS.
// Threads: reel::cpu::num_threads() (kernels/cpu/parallel.h), fewer for small products.
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
          int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

// The same product with B given by pointers, for implicit GEMMs (a convolution reads its input
// through them without an im2col copy): op(B)[k, j] = b_rows[k][j] (b_rows: [K] pointers, each
// to N floats), or when trans_b, op(B)[k, j] = b_rows[j][k] (b_rows: [N] pointers to K floats).
void gemm_rows_b(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                 const float* A, int64_t lda, const float* const* b_rows, float beta, float* C,
                 int64_t ldc);

// The micro-kernel chosen at run time on this CPU: "avx512", "avx2" or "generic".
// REEL_GEMM_ISA=avx512|avx2|generic in the environment picks one (if this CPU has it).
const char* gemm_isa();

// Forces the micro-kernel ("avx512", "avx2" or "generic"); nullptr or "auto" restores the
// run-time choice. Returns false, and changes nothing, for an unknown name or an ISA this CPU
// lacks. For tests and benchmarks; not safe to call while another thread runs gemm().
bool gemm_force_isa(const char* isa);

// The naive triple loop, for tests and as the first rung of the ladder (same contract as gemm).
void gemm_naive(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
                int64_t ldc);

}  // namespace reel::cpu

namespace reel::cuda {

// Same contract as reel::cpu::gemm; A, B, C are device pointers. Runs our fastest version
// (regblock128).
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
          int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc,
          cudaStream_t stream);
// One rung of the ladder by name: "naive", "tiled", "regblock64" or "regblock128" (throws
// reel::Error on another name).
void gemm_variant(const char* variant, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
                  float alpha, const float* A, int64_t lda, const float* B, int64_t ldb, float beta,
                  float* C, int64_t ldc, cudaStream_t stream);
// The rung at `index` of gemm_variants() (0 naive, 1 tiled, 2 regblock64, 3 regblock128): the
// same without a name to look up, for callers that chose once.
void gemm_variant_at(int index, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
                     float alpha, const float* A, int64_t lda, const float* B, int64_t ldb,
                     float beta, float* C, int64_t ldc, cudaStream_t stream);
// The rung names, nullptr-terminated.
const char* const* gemm_variants();

}  // namespace reel::cuda
