// The vector bodies (vec_body.h) for AVX2 + FMA: 8 floats per vector. This file alone is
// compiled with -mavx2 -mfma; vec_table() calls it only when cpu_has(Isa::Avx2).
#include <immintrin.h>

#include "reel/kernels/cpu/vec_body.h"

namespace reel::cpu {
namespace {
struct Avx2 {
  static constexpr int W = 8;
  using F = __m256;
  typedef int32_t I __attribute__((vector_size(32)));
  static F fma(F a, F b, F c) { return _mm256_fmadd_ps(a, b, c); }
  // p aligned to sizeof(F)
  static void stream(float* p, F v) { _mm256_stream_ps(p, v); }
  static void fence() { _mm_sfence(); }
};
constexpr VecKernels kTable = vec::make_table<Avx2>();
}  // namespace

const VecKernels& vec_kernels_avx2() { return kTable; }

}  // namespace reel::cpu
