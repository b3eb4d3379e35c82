// The AVX-512 SGEMM micro-kernel. This file alone is compiled with
// -mavx512f -mavx512vl -mavx2 -mfma; kernels/cpu/gemm.cpp calls it only after
// __builtin_cpu_supports("avx512f") said yes.
//
// Register tile: 14 rows x 32 columns of C in 28 zmm accumulators. Per step of k the kernel
// loads 2 vectors of a B row and broadcasts 14 values of A, each into 2 FMAs: 28 accumulators,
// 2 B vectors and 1 broadcast use 31 of the 32 registers, and 28 independent FMA chains cover
// two FMA pipes of latency 4. Measured in L1 on Zen 5, 14x32, 12x32, 8x48, 6x64 and 4x96 all
// reach the same FMA peak; 14x32 needs the fewest loads per FMA (16 per 28) and its 14 x kc
// slice of A (21 KiB at kc = 384) stays in L1.

// GCC 12 warns about an uninitialised value inside its own AVX-512 headers when the shuffle
// intrinsics are inlined (GCC bug 105593, fixed in GCC 13); the warning is silenced for the
// header's lines only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

#include <algorithm>
#include <array>
#include <cstdint>
#include <utility>

namespace reel::cpu::gemm_detail {

constexpr int kMr = 14;
constexpr int kNv = 2;  // vectors of 16 floats per row of the tile
extern const int gemm_avx512_mr = kMr;
extern const int gemm_avx512_nr = 16 * kNv;

namespace {

// C[0:ROWS, 0:n] = A * B + beta * C. a: [kc][kMr] (rows past ROWS unread), b: kc rows of at
// least NV * 16 floats at stride ldb, c: [ROWS, n] at stride ldc, n <= 16 * NV. NV < kNv
// serves a ragged last panel without FMAs on columns that do not exist.
template <int ROWS, int NV>
void tile(int64_t kc, const float* __restrict a, const float* __restrict b, int64_t ldb,
          float* __restrict c, int64_t ldc, int64_t n, const float& beta_ref) {
  // The C tile is read (beta != 0) or written at the end: start fetching it now.
#pragma GCC unroll 16
  for (int i = 0; i < ROWS; ++i) {
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + 16 * v), _MM_HINT_T0);
    }
  }
  __m512 acc[ROWS][NV];
#pragma GCC unroll 16
  for (int i = 0; i < ROWS; ++i) {
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_setzero_ps();
  }
  for (int64_t k = 0; k < kc; ++k) {
    __m512 bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) bv[v] = _mm512_loadu_ps(b + 16 * v);
#pragma GCC unroll 16
    for (int i = 0; i < ROWS; ++i) {
      const __m512 ai = _mm512_set1_ps(a[i]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_fmadd_ps(ai, bv[v], acc[i][v]);
    }
    a += kMr;
    b += ldb;
  }
  // beta is passed by reference so that it does not hold a zmm register through the loop.
  const float beta = beta_ref;
  __mmask16 mask[NV];
#pragma GCC unroll 4
  for (int v = 0; v < NV; ++v) {
    const int64_t left = std::min<int64_t>(16, n - 16 * v);
    mask[v] = static_cast<__mmask16>(left <= 0 ? 0u : (1u << left) - 1);
  }
  const __m512 beta_v = _mm512_set1_ps(beta);
#pragma GCC unroll 16
  for (int i = 0; i < ROWS; ++i) {
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      float* p = c + i * ldc + 16 * v;
      __m512 r = acc[i][v];
      if (beta == 1.0f) {
        r = _mm512_add_ps(r, _mm512_maskz_loadu_ps(mask[v], p));
      } else if (beta != 0.0f) {
        r = _mm512_fmadd_ps(beta_v, _mm512_maskz_loadu_ps(mask[v], p), r);
      }
      _mm512_mask_storeu_ps(p, mask[v], r);
    }
  }
}

using TileFn = void (*)(int64_t, const float*, const float*, int64_t, float*, int64_t, int64_t,
                        const float&);

// kTiles[nv - 1][rows - 1]
template <int... R>
constexpr std::array<std::array<TileFn, sizeof...(R)>, 2> make_tiles(
    std::integer_sequence<int, R...>) {
  return {{{&tile<R + 1, 1>...}, {&tile<R + 1, 2>...}}};
}

constexpr auto kTiles = make_tiles(std::make_integer_sequence<int, kMr>());

// In-register transpose of a 16 x 16 block: r[i] holds row i on entry, column i on return.
inline void transpose16(__m512 r[16]) {
  __m512 t[16];
  for (int g = 0; g < 16; g += 4) {  // within 128-bit lanes: pairs of rows, then 4 x 4 blocks
    const __m512 lo01 = _mm512_unpacklo_ps(r[g], r[g + 1]);
    const __m512 hi01 = _mm512_unpackhi_ps(r[g], r[g + 1]);
    const __m512 lo23 = _mm512_unpacklo_ps(r[g + 2], r[g + 3]);
    const __m512 hi23 = _mm512_unpackhi_ps(r[g + 2], r[g + 3]);
    auto pd = [](__m512 x) { return _mm512_castps_pd(x); };
    // t[g + c], 128-bit lane L: rows g..g+3 of column 4L + c
    t[g + 0] = _mm512_castpd_ps(_mm512_unpacklo_pd(pd(lo01), pd(lo23)));
    t[g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(pd(lo01), pd(lo23)));
    t[g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(pd(hi01), pd(hi23)));
    t[g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(pd(hi01), pd(hi23)));
  }
  for (int c = 0; c < 4; ++c) {  // gather lane L of t[c], t[4 + c], t[8 + c], t[12 + c]
    const __m512 v0 = _mm512_shuffle_f32x4(t[c], t[4 + c], 0x44);
    const __m512 v1 = _mm512_shuffle_f32x4(t[c], t[4 + c], 0xee);
    const __m512 w0 = _mm512_shuffle_f32x4(t[8 + c], t[12 + c], 0x44);
    const __m512 w1 = _mm512_shuffle_f32x4(t[8 + c], t[12 + c], 0xee);
    r[c] = _mm512_shuffle_f32x4(v0, w0, 0x88);
    r[4 + c] = _mm512_shuffle_f32x4(v0, w0, 0xdd);
    r[8 + c] = _mm512_shuffle_f32x4(v1, w1, 0x88);
    r[12 + c] = _mm512_shuffle_f32x4(v1, w1, 0xdd);
  }
}

}  // namespace

// Transposing copy for packing: out[k * out_stride + i] = alpha * src[i * ld + k] for
// i < rows, k < kc, and 0 for rows <= i < width. src: [rows, kc] at row stride ld;
// out: kc rows of width floats at stride out_stride; rows <= width <= 16.
void gemm_pack_transpose_avx512(const float* src, int64_t ld, int64_t rows, int64_t kc, float alpha,
                                float* out, int64_t out_stride, int64_t width) {
  const __mmask16 store_mask = static_cast<__mmask16>((1u << width) - 1);
  const __m512 scale = _mm512_set1_ps(alpha);
  for (int64_t k0 = 0; k0 < kc; k0 += 16) {
    const int64_t n = std::min<int64_t>(16, kc - k0);
    const __mmask16 load_mask = static_cast<__mmask16>((1u << n) - 1);
    __m512 r[16];
    for (int i = 0; i < 16; ++i) {
      r[i] = i < rows ? _mm512_mul_ps(scale, _mm512_maskz_loadu_ps(load_mask, src + i * ld + k0))
                      : _mm512_setzero_ps();
    }
    transpose16(r);
    for (int64_t j = 0; j < n; ++j) {
      _mm512_mask_storeu_ps(out + (k0 + j) * out_stride, store_mask, r[j]);
    }
  }
}

// C[0:m, 0:n] = A * B + beta * C, with beta == 0 not reading C.
// a: [kc][kMr] packed A (alpha folded in); b: kc rows of kNr floats at stride ldb (a packed
// panel, ldb == kNr, or B itself); c: [m, n] at stride ldc; 1 <= m <= kMr, 1 <= n <= kNr.
void gemm_ukernel_avx512(int64_t kc, const float* a, const float* b, int64_t ldb, float* c,
                         int64_t ldc, int64_t m, int64_t n, float beta) {
  kTiles[n > 16 ? 1 : 0][m - 1](kc, a, b, ldb, c, ldc, n, beta);
}

}  // namespace reel::cpu::gemm_detail
