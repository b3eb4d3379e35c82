// The AVX2 + FMA SGEMM micro-kernel. This file alone is compiled with -mavx2 -mfma;
// kernels/cpu/gemm.cpp calls it only after __builtin_cpu_supports("avx2") and ("fma") said yes.
//
// Register tile: 6 rows x 16 columns of C in 12 ymm accumulators. Per step of k the kernel loads
// 2 vectors of a B row and broadcasts 6 values of A: 12 accumulators + 2 B vectors + 1 broadcast
// fill 15 of the 16 ymm registers.

#include <immintrin.h>

#include <array>
#include <cstdint>
#include <utility>

namespace reel::cpu::gemm_detail {

extern const int gemm_avx2_mr = 6;
extern const int gemm_avx2_nr = 16;

namespace {

constexpr int kMr = 6;
constexpr int kNv = 2;  // vectors of 8 floats per row of the tile

// C[0:ROWS, 0:n] = A * B + beta * C. a: [kc][kMr] (rows past ROWS unread), b: kc rows of
// kNv * 8 floats at stride ldb, c: [ROWS, n] at stride ldc, n <= 8 * kNv.
template <int ROWS>
void tile(int64_t kc, const float* __restrict a, const float* __restrict b, int64_t ldb,
          float* __restrict c, int64_t ldc, int64_t n, const float& beta_ref) {
#pragma GCC unroll 16
  for (int i = 0; i < ROWS; ++i) {
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + 15), _MM_HINT_T0);
  }
  __m256 acc[ROWS][kNv];
#pragma GCC unroll 16
  for (int i = 0; i < ROWS; ++i) {
#pragma GCC unroll 16
    for (int v = 0; v < kNv; ++v) acc[i][v] = _mm256_setzero_ps();
  }
  for (int64_t k = 0; k < kc; ++k) {
    __m256 bv[kNv];
#pragma GCC unroll 16
    for (int v = 0; v < kNv; ++v) bv[v] = _mm256_loadu_ps(b + 8 * v);
#pragma GCC unroll 16
    for (int i = 0; i < ROWS; ++i) {
      const __m256 ai = _mm256_broadcast_ss(a + i);
#pragma GCC unroll 16
      for (int v = 0; v < kNv; ++v) acc[i][v] = _mm256_fmadd_ps(ai, bv[v], acc[i][v]);
    }
    a += kMr;
    b += ldb;
  }
  // beta is passed by reference so that it does not hold a register through the loop.
  const float beta = beta_ref;
  if (n == 8 * kNv) {
    // A full tile: plain loads and stores (AMD's masked moves are microcoded and slow).
#pragma GCC unroll 16
    for (int i = 0; i < ROWS; ++i) {
#pragma GCC unroll 16
      for (int v = 0; v < kNv; ++v) {
        float* p = c + i * ldc + 8 * v;
        __m256 r = acc[i][v];
        if (beta == 1.0f) {
          r = _mm256_add_ps(r, _mm256_loadu_ps(p));
        } else if (beta != 0.0f) {
          r = _mm256_fmadd_ps(_mm256_set1_ps(beta), _mm256_loadu_ps(p), r);
        }
        _mm256_storeu_ps(p, r);
      }
    }
    return;
  }
  __m256i mask[kNv];
#pragma GCC unroll 16
  for (int v = 0; v < kNv; ++v) {
    const int left = static_cast<int>(n) - 8 * v;
    mask[v] =
        _mm256_cmpgt_epi32(_mm256_set1_epi32(left), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
#pragma GCC unroll 16
  for (int i = 0; i < ROWS; ++i) {
#pragma GCC unroll 16
    for (int v = 0; v < kNv; ++v) {
      float* p = c + i * ldc + 8 * v;
      __m256 r = acc[i][v];
      if (beta == 1.0f) {
        r = _mm256_add_ps(r, _mm256_maskload_ps(p, mask[v]));
      } else if (beta != 0.0f) {
        r = _mm256_fmadd_ps(_mm256_set1_ps(beta), _mm256_maskload_ps(p, mask[v]), r);
      }
      _mm256_maskstore_ps(p, mask[v], r);
    }
  }
}

using TileFn = void (*)(int64_t, const float*, const float*, int64_t, float*, int64_t, int64_t,
                        const float&);

template <int... R>
constexpr auto make_tiles(std::integer_sequence<int, R...>) {
  return std::array<TileFn, sizeof...(R)>{&tile<R + 1>...};
}

constexpr std::array<TileFn, kMr> kTiles = make_tiles(std::make_integer_sequence<int, kMr>());

}  // namespace

// C[0:m, 0:n] = A * B + beta * C, with beta == 0 not reading C.
// a: [kc][6] packed A (alpha folded in); b: kc rows of 16 floats at stride ldb (a packed
// panel, ldb == 16, or B itself); c: [m, n] at stride ldc; 1 <= m <= 6, 1 <= n <= 16.
void gemm_ukernel_avx2(int64_t kc, const float* a, const float* b, int64_t ldb, float* c,
                       int64_t ldc, int64_t m, int64_t n, float beta) {
  kTiles[m - 1](kc, a, b, ldb, c, ldc, n, beta);
}

}  // namespace reel::cpu::gemm_detail
