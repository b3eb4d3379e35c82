// CUDA SGEMM, as a ladder of versions a learner can benchmark one step at a time:
//   naive        one thread per element of C, every operand read from global memory;
//   tiled        16x16 tiles of op(A) and op(B) staged in shared memory;
//   regblock64   64x64 block tile, each thread computes a 4x4 register tile;
//   regblock128  128x128 block tile, 8x8 per thread (the default).
// Row-major, C = alpha op(A) op(B) + beta C as in kernels/gemm.h; the transposes are resolved
// when a tile is loaded, so every version handles NN, NT, TN and TT.
#include "reel/kernels/cuda/launch.h"
//
#include <cstring>

#include "reel/kernels/cuda/device_utils.h"
#include "reel/kernels/gemm.h"

namespace reel::cuda {

namespace {

// op(A)[m][k] of A: [M, K] (lda) or, transposed, [K, M] (lda).
__device__ __forceinline__ float load_a(const float* A, int64_t lda, bool ta, int64_t m,
                                        int64_t k) {
  return ta ? A[k * lda + m] : A[m * lda + k];
}
// op(B)[k][n] of B: [K, N] (ldb) or, transposed, [N, K] (ldb).
__device__ __forceinline__ float load_b(const float* B, int64_t ldb, bool tb, int64_t k,
                                        int64_t n) {
  return tb ? B[n * ldb + k] : B[k * ldb + n];
}
// C[m][n] = alpha * acc + beta * C[m][n]; beta == 0 does not read C (NaN-safe, as BLAS).
__device__ __forceinline__ void store_c(float* C, int64_t ldc, int64_t m, int64_t n, float alpha,
                                        float acc, float beta) {
  float* c = C + m * ldc + n;
  *c = beta == 0.0f ? alpha * acc : alpha * acc + beta * *c;
}

struct GemmArgs {
  bool ta, tb;
  int64_t M, N, K;
  float alpha;
  const float* A;  // see load_a
  int64_t lda;
  const float* B;  // see load_b
  int64_t ldb;
  float beta;
  float* C;  // [M, N] with row stride ldc
  int64_t ldc;
};

// Tiles of C are numbered along gridDim.x alone (up to 2^31 - 1 blocks; gridDim.y stops at
// 65535): block b covers tile row b / tiles_n, tile column b % tiles_n.
__device__ __forceinline__ void tile_of_block(int64_t N, int tile_n, int64_t* tm, int64_t* tn) {
  const int64_t tiles_n = (N + tile_n - 1) / tile_n;
  *tm = blockIdx.x / tiles_n;
  *tn = blockIdx.x % tiles_n;
}

// Rung 1. Block 16x16 threads, one C element each.
__global__ void gemm_naive_kernel(GemmArgs p) {
  int64_t tm, tn;
  tile_of_block(p.N, 16, &tm, &tn);
  const int64_t n = tn * 16 + threadIdx.x;
  const int64_t m = tm * 16 + threadIdx.y;
  if (m >= p.M || n >= p.N) return;
  float acc = 0.0f;
  for (int64_t k = 0; k < p.K; ++k)
    acc += load_a(p.A, p.lda, p.ta, m, k) * load_b(p.B, p.ldb, p.tb, k, n);
  store_c(p.C, p.ldc, m, n, p.alpha, acc, p.beta);
}

// Rung 2. Block 16x16 threads; per step a 16x16 tile of op(A) and of op(B) in shared memory.
constexpr int kTile = 16;
__global__ void gemm_tiled_kernel(GemmArgs p) {
  __shared__ float as[kTile][kTile + 1];  // [m][k], padded against bank conflicts
  __shared__ float bs[kTile][kTile + 1];  // [k][n]
  const int tx = threadIdx.x, ty = threadIdx.y;
  int64_t tm, tn;
  tile_of_block(p.N, kTile, &tm, &tn);
  const int64_t n = tn * kTile + tx;
  const int64_t m = tm * kTile + ty;
  float acc = 0.0f;
  for (int64_t k0 = 0; k0 < p.K; k0 += kTile) {
    const int64_t am = m, ak = k0 + tx;
    as[ty][tx] = am < p.M && ak < p.K ? load_a(p.A, p.lda, p.ta, am, ak) : 0.0f;
    const int64_t bk = k0 + ty, bn = n;
    bs[ty][tx] = bk < p.K && bn < p.N ? load_b(p.B, p.ldb, p.tb, bk, bn) : 0.0f;
    __syncthreads();
    REEL_UNROLL
    for (int k = 0; k < kTile; ++k) acc += as[ty][k] * bs[k][tx];
    __syncthreads();  // the tiles are overwritten next step
  }
  if (m < p.M && n < p.N) store_c(p.C, p.ldc, m, n, p.alpha, acc, p.beta);
}

// Rungs 3 and 4. A BM x BN tile of C per block of (BM/TM)*(BN/TN) threads, each computing a
// TM x TN register tile; BK-deep slices of op(A) and op(B) staged in shared memory.
template <int BM, int BN, int BK, int TM, int TN>
__global__ void gemm_regblock_kernel(GemmArgs p) {
  constexpr int kThreads = (BM / TM) * (BN / TN);
  __shared__ float as[BK][BM + 4];  // op(A) slice, stored [k][m] so a thread reads TM in a row
  __shared__ float bs[BK][BN + 4];  // op(B) slice, [k][n]
  const int t = threadIdx.x;
  const int tr = t / (BN / TN), tc = t % (BN / TN);
  int64_t tm, tn;
  tile_of_block(p.N, BN, &tm, &tn);
  const int64_t m0 = tm * BM, n0 = tn * BN;
  float acc[TM][TN];
  REEL_UNROLL
  for (int i = 0; i < TM; ++i) {
    REEL_UNROLL
    for (int j = 0; j < TN; ++j) acc[i][j] = 0.0f;
  }
  float a_reg[TM], b_reg[TN];
  for (int64_t k0 = 0; k0 < p.K; k0 += BK) {
    // Consecutive threads walk the contiguous dimension of each operand (coalesced reads).
    for (int e = t; e < BM * BK; e += kThreads) {
      const int mm = p.ta ? e % BM : e / BK, kk = p.ta ? e / BM : e % BK;
      const int64_t m = m0 + mm, k = k0 + kk;
      as[kk][mm] = m < p.M && k < p.K ? load_a(p.A, p.lda, p.ta, m, k) : 0.0f;
    }
    for (int e = t; e < BK * BN; e += kThreads) {
      const int kk = p.tb ? e % BK : e / BN, nn = p.tb ? e / BK : e % BN;
      const int64_t k = k0 + kk, n = n0 + nn;
      bs[kk][nn] = k < p.K && n < p.N ? load_b(p.B, p.ldb, p.tb, k, n) : 0.0f;
    }
    __syncthreads();
    REEL_UNROLL
    for (int kk = 0; kk < BK; ++kk) {
      REEL_UNROLL
      for (int i = 0; i < TM; ++i) a_reg[i] = as[kk][tr * TM + i];
      REEL_UNROLL
      for (int j = 0; j < TN; ++j) b_reg[j] = bs[kk][tc * TN + j];
      REEL_UNROLL
      for (int i = 0; i < TM; ++i) {
        REEL_UNROLL
        for (int j = 0; j < TN; ++j) acc[i][j] += a_reg[i] * b_reg[j];
      }
    }
    __syncthreads();  // the slices are overwritten next step
  }
  REEL_UNROLL
  for (int i = 0; i < TM; ++i) {
    const int64_t m = m0 + tr * TM + i;
    if (m >= p.M) continue;
    REEL_UNROLL
    for (int j = 0; j < TN; ++j) {
      const int64_t n = n0 + tc * TN + j;
      if (n < p.N) store_c(p.C, p.ldc, m, n, p.alpha, acc[i][j], p.beta);
    }
  }
}

// Blocks for the tiles of an M x N product: one per tm x tn tile, all along gridDim.x.
dim3 tile_grid(int64_t M, int64_t N, int tm, int tn) {
  const int64_t blocks = ((M + tm - 1) / tm) * ((N + tn - 1) / tn);
  if (blocks > 0x7fffffff)
    throw Error("gemm: " + std::to_string(M) + " x " + std::to_string(N) +
                " needs more than 2^31 - 1 thread blocks");
  return dim3(static_cast<unsigned>(blocks));
}

template <int BM, int BN, int BK, int TM, int TN>
void launch_regblock(const GemmArgs& p, cudaStream_t stream) {
  launch_kernel(gemm_regblock_kernel<BM, BN, BK, TM, TN>, tile_grid(p.M, p.N, BM, BN),
                dim3((BM / TM) * (BN / TN)), 0, stream, p);
}

const char* const kVariants[] = {"naive", "tiled", "regblock64", "regblock128", nullptr};

}  // namespace

const char* const* gemm_variants() { return kVariants; }

void gemm_variant_at(int index, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
                     float alpha, const float* A, int64_t lda, const float* B, int64_t ldb,
                     float beta, float* C, int64_t ldc, cudaStream_t stream) {
  if (index < 0 || index > 3)
    throw Error("gemm: CUDA GEMM variant " + std::to_string(index) + " does not exist (0 to 3)");
  const GemmArgs p{trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc};
  if (M == 0 || N == 0) return;
  if (index == 0)
    launch_kernel(gemm_naive_kernel, tile_grid(M, N, 16, 16), dim3(16, 16), 0, stream, p);
  else if (index == 1)
    launch_kernel(gemm_tiled_kernel, tile_grid(M, N, kTile, kTile), dim3(kTile, kTile), 0, stream,
                  p);
  else if (index == 2)
    launch_regblock<64, 64, 16, 4, 4>(p, stream);
  else
    launch_regblock<128, 128, 8, 8, 8>(p, stream);
}

void gemm_variant(const char* variant, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
                  float alpha, const float* A, int64_t lda, const float* B, int64_t ldb, float beta,
                  float* C, int64_t ldc, cudaStream_t stream) {
  const std::string v = variant ? variant : "";
  for (int i = 0; kVariants[i]; ++i)
    if (v == kVariants[i]) {
      gemm_variant_at(i, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, stream);
      return;
    }
  throw Error("gemm: unknown CUDA GEMM variant '" + v +
              "' (expected naive, tiled, regblock64 or regblock128)");
}

void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
          int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc,
          cudaStream_t stream) {
  gemm_variant_at(3, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, stream);
}

}  // namespace reel::cuda
