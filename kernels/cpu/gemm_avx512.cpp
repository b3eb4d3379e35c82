// The AVX-512 SGEMM micro-kernel. This file alone is compiled with
// -mavx512f -mavx512vl -mavx2 -mfma; kernels/cpu/gemm.cpp calls it only after
// __builtin_cpu_supports("avx512f") said yes.
//
// Register tile: kMr rows x kNr columns of C in kMr * kNv zmm accumulators. Per step of k the
// kernel loads kNv vectors of a B row and broadcasts kMr values of A into FMAs (the broadcast
// folds into the FMA as a {1to16} memory operand). 14 x 32 uses 28 accumulators, 2 B vectors
// and leaves 2 registers to spare; 14 rows give 28 independent FMA chains, enough to cover
// two FMA pipes of latency 4 with room for load latency.

#include <immintrin.h>

#include <array>
#include <cstdint>
#include <utility>

#ifndef REEL_GEMM_AVX512_MR
#define REEL_GEMM_AVX512_MR 14
#endif
#ifndef REEL_GEMM_AVX512_NV
#define REEL_GEMM_AVX512_NV 2
#endif

namespace reel::cpu::gemm_detail {

extern const int gemm_avx512_mr = REEL_GEMM_AVX512_MR;
extern const int gemm_avx512_nr = 16 * REEL_GEMM_AVX512_NV;

namespace {

constexpr int kMr = REEL_GEMM_AVX512_MR;
constexpr int kNv = REEL_GEMM_AVX512_NV;

// C[0:ROWS, 0:n] = A * B + beta * C. a: [kc][kMr] (rows past ROWS unread), b: kc rows of
// kNv * 16 floats at stride ldb, c: [ROWS, n] at stride ldc, n <= 16 * kNv.
template <int ROWS>
void tile(int64_t kc, const float* __restrict a, const float* __restrict b, int64_t ldb,
          float* __restrict c, int64_t ldc, int64_t n, const float& beta_ref) {
  // The C tile is read (beta != 0) or written at the end: start fetching it now.
  #pragma GCC unroll 16
  for (int i = 0; i < ROWS; ++i) {
    #pragma GCC unroll 16
    for (int v = 0; v < kNv; ++v) {
      _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + 16 * v), _MM_HINT_T0);
    }
  }
  __m512 acc[ROWS][kNv];
  #pragma GCC unroll 16
  for (int i = 0; i < ROWS; ++i) {
    #pragma GCC unroll 16
    for (int v = 0; v < kNv; ++v) acc[i][v] = _mm512_setzero_ps();
  }
  for (int64_t k = 0; k < kc; ++k) {
    __m512 bv[kNv];
    #pragma GCC unroll 16
    for (int v = 0; v < kNv; ++v) bv[v] = _mm512_loadu_ps(b + 16 * v);
    #pragma GCC unroll 16
    for (int i = 0; i < ROWS; ++i) {
      const __m512 ai = _mm512_set1_ps(a[i]);
      #pragma GCC unroll 16
      for (int v = 0; v < kNv; ++v) acc[i][v] = _mm512_fmadd_ps(ai, bv[v], acc[i][v]);
    }
    a += kMr;
    b += ldb;
  }
  // beta is passed by reference so that it does not hold a zmm register through the loop.
  const float beta = beta_ref;
  __mmask16 mask[kNv];
  #pragma GCC unroll 16
  for (int v = 0; v < kNv; ++v) {
    const int64_t left = n - 16 * v;
    mask[v] = left >= 16 ? __mmask16(0xffff) : left <= 0 ? __mmask16(0) : __mmask16((1u << left) - 1);
  }
  if (beta == 0.0f) {
    #pragma GCC unroll 16
    for (int i = 0; i < ROWS; ++i) {
      #pragma GCC unroll 16
      for (int v = 0; v < kNv; ++v) _mm512_mask_storeu_ps(c + i * ldc + 16 * v, mask[v], acc[i][v]);
    }
  } else if (beta == 1.0f) {
    #pragma GCC unroll 16
    for (int i = 0; i < ROWS; ++i) {
      #pragma GCC unroll 16
      for (int v = 0; v < kNv; ++v) {
        float* p = c + i * ldc + 16 * v;
        _mm512_mask_storeu_ps(p, mask[v], _mm512_add_ps(acc[i][v], _mm512_maskz_loadu_ps(mask[v], p)));
      }
    }
  } else {
    const __m512 bb = _mm512_set1_ps(beta);
    #pragma GCC unroll 16
    for (int i = 0; i < ROWS; ++i) {
      #pragma GCC unroll 16
      for (int v = 0; v < kNv; ++v) {
        float* p = c + i * ldc + 16 * v;
        _mm512_mask_storeu_ps(p, mask[v],
                              _mm512_fmadd_ps(bb, _mm512_maskz_loadu_ps(mask[v], p), acc[i][v]));
      }
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
// a: [kc][kMr] packed A (alpha folded in); b: kc rows of kNr floats at stride ldb (a packed
// panel, ldb == kNr, or B itself); c: [m, n] at stride ldc; 1 <= m <= kMr, 1 <= n <= kNr.
void gemm_ukernel_avx512(int64_t kc, const float* a, const float* b, int64_t ldb, float* c,
                         int64_t ldc, int64_t m, int64_t n, float beta) {
  kTiles[m - 1](kc, a, b, ldb, c, ldc, n, beta);
}

}  // namespace reel::cpu::gemm_detail
