// The vector bodies (vec_body.h) for baseline x86-64: SSE2, 4 floats per vector, no FMA (a
// multiply and an add, each rounded).
#include <immintrin.h>

#include "reel/kernels/cpu/vec_body.h"

namespace reel::cpu {
namespace {
struct Generic {
  static constexpr int W = 4;
  using F = __m128;
  typedef int32_t I __attribute__((vector_size(16)));
  static F fma(F a, F b, F c) { return a * b + c; }
  // p aligned to sizeof(F)
  static void stream(float* p, F v) { _mm_stream_ps(p, v); }
  static void fence() { _mm_sfence(); }
};
constexpr VecKernels kTable = vec::make_table<Generic>();
}  // namespace

const VecKernels& vec_kernels_generic() { return kTable; }

}  // namespace reel::cpu
