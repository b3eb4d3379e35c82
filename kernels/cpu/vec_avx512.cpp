// The vector bodies (vec_body.h) for AVX-512: 16 floats per vector. This file alone is compiled
// with -mavx512f -mavx512vl -mavx2 -mfma; vec_table() calls it only when cpu_has(Isa::Avx512).

// GCC 12 warns about an uninitialised value inside its own AVX-512 headers (GCC bug 105593, see
// gemm_avx512.cpp); the warning is silenced for the header's lines only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

#include "reel/kernels/cpu/vec_body.h"

namespace reel::cpu {
namespace {
struct Avx512 {
  static constexpr int W = 16;
  using F = __m512;
  typedef int32_t I __attribute__((vector_size(64)));
  static F fma(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }
  // p aligned to sizeof(F)
  static void stream(float* p, F v) { _mm512_stream_ps(p, v); }
  static void fence() { _mm_sfence(); }
};
constexpr VecKernels kTable = vec::make_table<Avx512>();
}  // namespace

const VecKernels& vec_kernels_avx512() { return kTable; }

}  // namespace reel::cpu
