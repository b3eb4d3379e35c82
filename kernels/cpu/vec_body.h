#pragma once
// The vector bodies of kernels/cpu/vec_kernels.h, written once over a vector type V and
// instantiated by vec_avx512.cpp, vec_avx2.cpp and vec_generic.cpp, each compiled for its ISA.
//
// V provides W (floats per vector), F (a GCC vector of W floats, the ISA's register type), I (a
// GCC vector of W int32) and fma(a, b, c) = a * b + c. Each file defines its V in an anonymous
// namespace, so every instantiation here has internal linkage: no AVX function can be merged into
// the baseline build by the linker. For the same reason this header calls no inline function of
// the standard library or of kernels/*_math.h: the bodies below are the SIMD forms of the
// formulas there (elementwise_math.h, softmax_math.h).
//
// Vector math: exp, log, tanh and sigmoid are our own, after Cephes (S. Moshier) in form:
// - exp: n = round(x / ln 2), r = x - n ln 2 in two parts (Cody and Waite), a degree-6
//   polynomial in r, then the result times 2^(n/2) twice so that results down to the smallest
//   denormal and up to the overflow are exact in scale;
// - log: x = m 2^e with m in [sqrt(1/2), sqrt(2)), log(1 + (m - 1)) by a degree-9 polynomial,
//   e ln 2 added in two parts; denormal inputs are scaled by 2^23 first;
// - tanh: an odd polynomial for |x| < 0.625, else 1 - 2 / (exp(2|x|) + 1), which is exactly +-1
//   once exp(2|x|) is large;
// - sigmoid: e = exp(-|x|), 1 / (1 + e) for x >= 0 and e / (1 + e) below, as math::sigmoid.
// Accuracy (tests/kernels/test_vecmath.cpp, against double precision over every 509th float):
// see the bounds stated there.

#include <cstdint>

#include "reel/kernels/cpu/vec_kernels.h"

// Every helper is forced inline: a call per vector (GCC otherwise keeps exp out of line in the
// streaming loops) costs more than the math.
#define REEL_VEC_INLINE inline __attribute__((always_inline))
// The table's entries inline everything they call, lambdas included.
#define REEL_VEC_ENTRY __attribute__((flatten))

namespace reel::cpu::vec {

template <class V>
using F = typename V::F;
template <class V>
using I = typename V::I;

template <class V>
REEL_VEC_INLINE F<V> splat(float s) {
  F<V> r;
  for (int i = 0; i < V::W; ++i) r[i] = s;
  return r;
}
template <class V>
REEL_VEC_INLINE F<V> load(const float* p) {
  F<V> r;
  __builtin_memcpy(&r, p, sizeof(r));
  return r;
}
template <class V>
REEL_VEC_INLINE void store(float* p, F<V> v) {
  __builtin_memcpy(p, &v, sizeof(v));
}
// The first m < W floats of p, the other lanes `fill`.
template <class V>
REEL_VEC_INLINE F<V> load_part(const float* p, int64_t m, float fill) {
  F<V> r = splat<V>(fill);
  for (int64_t i = 0; i < m; ++i) r[i] = p[i];
  return r;
}
template <class V>
REEL_VEC_INLINE void store_part(float* p, F<V> v, int64_t m) {
  for (int64_t i = 0; i < m; ++i) p[i] = v[i];
}
template <class V>
REEL_VEC_INLINE F<V> as_float(I<V> i) {
  return (F<V>)i;
}
template <class V>
REEL_VEC_INLINE I<V> as_int(F<V> f) {
  return (I<V>)f;
}
template <class V>
REEL_VEC_INLINE F<V> select(I<V> mask, F<V> a, F<V> b) {
  return mask ? a : b;
}
template <class V>
REEL_VEC_INLINE F<V> vmax(F<V> a, F<V> b) {
  return a > b ? a : b;
}
template <class V>
REEL_VEC_INLINE float hsum(F<V> v) {
  float s = 0.0f;
  for (int i = 0; i < V::W; ++i) s += v[i];
  return s;
}
template <class V>
REEL_VEC_INLINE float hmax(F<V> v) {
  float m = v[0];
  for (int i = 1; i < V::W; ++i) m = v[i] > m ? v[i] : m;
  return m;
}

// ---------------------------------------------------------------------------------------------
// Vector math

template <class V>
REEL_VEC_INLINE F<V> exp(F<V> x) {
  // Beyond these, exp is 0 (below 2^-150) or overflows; NaN passes through the comparisons.
  x = select<V>(x < splat<V>(-104.0f), splat<V>(-104.0f), x);
  x = select<V>(x > splat<V>(89.0f), splat<V>(89.0f), x);
  // n = round(x log2(e)) by adding and subtracting 1.5 * 2^23.
  const F<V> magic = splat<V>(12582912.0f);
  const F<V> t = V::fma(x, splat<V>(1.44269504088896341f), magic);
  const F<V> n = t - magic;
  const I<V> ni = as_int<V>(t) - as_int<V>(magic);
  // r = x - n ln 2, ln 2 = 0.693359375 - 2.12194440e-4 (the first part exact times n).
  F<V> r = V::fma(n, splat<V>(-0.693359375f), x);
  r = V::fma(n, splat<V>(2.12194440e-4f), r);
  F<V> p = splat<V>(1.9875691500e-4f);
  p = V::fma(p, r, splat<V>(1.3981999507e-3f));
  p = V::fma(p, r, splat<V>(8.3334519073e-3f));
  p = V::fma(p, r, splat<V>(4.1665795894e-2f));
  p = V::fma(p, r, splat<V>(1.6666665459e-1f));
  p = V::fma(p, r, splat<V>(5.0000001201e-1f));
  p = V::fma(p, r * r, r) + splat<V>(1.0f);
  // times 2^n as 2^n1 * 2^n2, n1 = floor(n / 2): both normal for n in [-150, 128].
  const I<V> n1 = ni >> 1;
  const I<V> n2 = ni - n1;
  p = p * as_float<V>((n1 + 127) << 23);
  return p * as_float<V>((n2 + 127) << 23);
}

template <class V>
REEL_VEC_INLINE F<V> log(F<V> x) {
  const I<V> denormal = x < splat<V>(1.17549435e-38f);  // also 0, negatives and -inf
  const F<V> xs = select<V>(denormal, x * splat<V>(8388608.0f), x);
  const I<V> bits = as_int<V>(xs);
  I<V> e = ((bits >> 23) & 0xff) - 126;
  e = e - (denormal & 23);
  // m in [0.5, 1): x = m 2^e.
  F<V> m = as_float<V>((bits & 0x807fffff) | 0x3f000000);
  const I<V> small = m < splat<V>(0.707106781186547524f);
  e = e + small;  // small is -1 where true
  m = select<V>(small, m + m, m) - splat<V>(1.0f);
  const F<V> z = m * m;
  F<V> p = splat<V>(7.0376836292e-2f);
  p = V::fma(p, m, splat<V>(-1.1514610310e-1f));
  p = V::fma(p, m, splat<V>(1.1676998740e-1f));
  p = V::fma(p, m, splat<V>(-1.2420140846e-1f));
  p = V::fma(p, m, splat<V>(1.4249322787e-1f));
  p = V::fma(p, m, splat<V>(-1.6668057665e-1f));
  p = V::fma(p, m, splat<V>(2.0000714765e-1f));
  p = V::fma(p, m, splat<V>(-2.4999993993e-1f));
  p = V::fma(p, m, splat<V>(3.3333331174e-1f));
  const F<V> fe = __builtin_convertvector(e, F<V>);
  F<V> y = p * m * z;
  y = V::fma(fe, splat<V>(-2.12194440e-4f), y);
  y = V::fma(z, splat<V>(-0.5f), y);
  F<V> r = m + y;
  r = V::fma(fe, splat<V>(0.693359375f), r);
  // Special values: log(+inf) = +inf, log(0) = -inf, log(x < 0) = NaN, NaN stays NaN.
  const F<V> inf = splat<V>(__builtin_inff());
  r = select<V>(x == inf, inf, r);
  r = select<V>(x == splat<V>(0.0f), -inf, r);
  r = select<V>(x < splat<V>(0.0f), splat<V>(__builtin_nanf("")), r);
  return select<V>(x != x, x, r);
}

template <class V>
REEL_VEC_INLINE F<V> tanh(F<V> x) {
  const I<V> sign = as_int<V>(x) & (-2147483647 - 1);
  const F<V> a = as_float<V>(as_int<V>(x) & 0x7fffffff);
  // |x| >= 0.625: 1 - 2 / (exp(2|x|) + 1), exactly 1 from exp(2|x|) > 2^25 on (and for inf).
  F<V> big = splat<V>(1.0f) - splat<V>(2.0f) / (exp<V>(a + a) + splat<V>(1.0f));
  big = as_float<V>(as_int<V>(big) | sign);
  // |x| < 0.625: x + x^3 P(x^2).
  const F<V> z = x * x;
  F<V> p = splat<V>(-5.70498872745e-3f);
  p = V::fma(p, z, splat<V>(2.06390887954e-2f));
  p = V::fma(p, z, splat<V>(-5.37397155531e-2f));
  p = V::fma(p, z, splat<V>(1.33314422036e-1f));
  p = V::fma(p, z, splat<V>(-3.33332819422e-1f));
  // The sign copied back gives tanh(-0) = -0 (x + x z P is +0 there).
  const F<V> small = as_float<V>(as_int<V>(V::fma(p * z, x, x)) | sign);
  return select<V>(a < splat<V>(0.625f), small, big);
}

template <class V>
REEL_VEC_INLINE F<V> sigmoid(F<V> x) {
  const F<V> e = exp<V>(as_float<V>(as_int<V>(x) | (-2147483647 - 1)));
  const F<V> r = splat<V>(1.0f) / (splat<V>(1.0f) + e);
  return select<V>(x >= splat<V>(0.0f), r, e * r);
}

// ---------------------------------------------------------------------------------------------
// Per-op functors: the SIMD forms of elementwise_math.h, same formulas, same order.

template <class V, int Op>
REEL_VEC_INLINE F<V> unary_f(F<V> x) {
  if constexpr (Op == 0) return -x;  // Neg
  if constexpr (Op == 1) return exp<V>(x);
  if constexpr (Op == 2) return log<V>(x);
  if constexpr (Op == 3) return tanh<V>(x);
  if constexpr (Op == 4) return sigmoid<V>(x);
  if constexpr (Op == 5) return select<V>(x > splat<V>(0.0f), x, splat<V>(0.0f));  // Relu
}

template <class V, int Op>
REEL_VEC_INLINE F<V> unary_b(F<V> g, F<V> x, F<V> y) {
  if constexpr (Op == 0) return -g;
  if constexpr (Op == 1) return g * y;
  if constexpr (Op == 2) return g / x;
  if constexpr (Op == 3) return g * (splat<V>(1.0f) - y * y);
  if constexpr (Op == 4) return g * y * (splat<V>(1.0f) - y);
  if constexpr (Op == 5)
    return select<V>(y > splat<V>(0.0f), g, splat<V>(0.0f));  // y > 0 iff x > 0
}

template <class V, int Op>
REEL_VEC_INLINE F<V> binary_f(F<V> a, F<V> b) {
  if constexpr (Op == 0) return a + b;
  if constexpr (Op == 1) return a - b;
  if constexpr (Op == 2) return a * b;
  if constexpr (Op == 3) return a / b;
}

template <class V, int Side, int Op>
REEL_VEC_INLINE F<V> binary_b(F<V> g, F<V> a, F<V> b) {
  if constexpr (Side == 0) {
    if constexpr (Op == 0 || Op == 1) return g;
    if constexpr (Op == 2) return g * b;
    if constexpr (Op == 3) return g / b;
  } else {
    if constexpr (Op == 0) return g;
    if constexpr (Op == 1) return -g;
    if constexpr (Op == 2) return g * a;
    if constexpr (Op == 3) return -g * a / (b * b);
  }
}

// ---------------------------------------------------------------------------------------------
// Loops. An input is a stream: contiguous, or one value broadcast (Contig false).

template <class V, bool Contig>
struct In {
  const float* p;
  F<V> v;
  // q may be null for a broadcast input that the op does not read.
  explicit In(const float* q) : p(q), v(Contig || q == nullptr ? F<V>{} : splat<V>(*q)) {}
  F<V> at(int64_t i) const {
    if constexpr (Contig) return load<V>(p + i);
    return v;
  }
  F<V> part(int64_t i, int64_t m) const {
    if constexpr (Contig) return load_part<V>(p + i, m, 1.0f);
    return v;
  }
};

// From this many floats of output (4 MiB) a loop writes with non-temporal stores: an output that
// large leaves the caches anyway, and streaming it skips reading each line before it is written
// (a third less traffic for a unary op, a quarter less for a binary one).
constexpr int64_t kStreamMin = int64_t{1} << 20;

// out[i] = f(in0[i], in1[i], ...) over [n], two vectors per step, a partial vector at the end.
// `may_stream`: out is not also an input, so it may be written with non-temporal stores.
template <class V, class Fn, class... Ins>
REEL_VEC_INLINE void map_to(float* out, int64_t n, bool may_stream, Fn fn, const Ins&... ins) {
  constexpr int W = V::W;
  int64_t i = 0;
  if (may_stream && n >= kStreamMin) {
    // Ordinary stores up to a whole vector's alignment, then streaming ones.
    for (; i < n && reinterpret_cast<uintptr_t>(out + i) % sizeof(F<V>) != 0; ++i)
      store_part<V>(out + i, fn(ins.part(i, 1)...), 1);
    for (; i + 2 * W <= n; i += 2 * W) {
      const F<V> r0 = fn(ins.at(i)...);
      const F<V> r1 = fn(ins.at(i + W)...);
      V::stream(out + i, r0);
      V::stream(out + i + W, r1);
    }
    V::fence();  // the streamed lines are visible to other threads before this returns
  }
  for (; i + 2 * W <= n; i += 2 * W) {
    const F<V> r0 = fn(ins.at(i)...);
    const F<V> r1 = fn(ins.at(i + W)...);
    store<V>(out + i, r0);
    store<V>(out + i + W, r1);
  }
  for (; i + W <= n; i += W) store<V>(out + i, fn(ins.at(i)...));
  if (i < n) store_part<V>(out + i, fn(ins.part(i, n - i)...), n - i);
}

template <class V, class Fn, class... Ins>
REEL_VEC_INLINE void map(float* out, int64_t n, Fn fn, const Ins&... ins) {
  map_to<V>(out, n, false, fn, ins...);
}

template <class V, int Op>
REEL_VEC_ENTRY void unary_fwd(const float* x, float* y, int64_t n) {
  map_to<V>(
      y, n, x != y, [](F<V> v) { return unary_f<V, Op>(v); }, In<V, true>(x));
}

// Reads only what the derivative needs (x for log; y for exp, tanh, sigmoid and relu).
template <class V, int Op>
REEL_VEC_ENTRY void unary_bwd(const float* g, const float* x, const float* y, float* dx,
                              int64_t n) {
  const F<V> unused{};
  auto map = [dx, n, st = dx != g && dx != x && dx != y](auto fn, const auto&... ins) {
    map_to<V>(dx, n, st, fn, ins...);
  };
  if constexpr (Op == 0) {
    map([unused](F<V> gv) { return unary_b<V, Op>(gv, unused, unused); }, In<V, true>(g));
  } else if constexpr (Op == 2) {
    map([unused](F<V> gv, F<V> xv) { return unary_b<V, Op>(gv, xv, unused); }, In<V, true>(g),
        In<V, true>(x));
  } else {
    map([unused](F<V> gv, F<V> yv) { return unary_b<V, Op>(gv, unused, yv); }, In<V, true>(g),
        In<V, true>(y));
  }
}

template <class V, int Op>
REEL_VEC_ENTRY void binary_fwd(const float* a, int64_t sa, const float* b, int64_t sb, float* out,
                               int64_t n) {
  auto f = [](F<V> x, F<V> y) { return binary_f<V, Op>(x, y); };
  auto map = [out, n, st = out != a && out != b](auto fn, const auto&... ins) {
    map_to<V>(out, n, st, fn, ins...);
  };
  if (sa != 0 && sb != 0) {
    map(f, In<V, true>(a), In<V, true>(b));
  } else if (sa != 0) {
    map(f, In<V, true>(a), In<V, false>(b));
  } else if (sb != 0) {
    map(f, In<V, false>(a), In<V, true>(b));
  } else {
    map(f, In<V, false>(a), In<V, false>(b));
  }
}

template <class V, int Side, int Op>
REEL_VEC_ENTRY void binary_bwd(const float* g, const float* a, int64_t sa, const float* b,
                               int64_t sb, float* out, int64_t n) {
  auto map = [out, n, st = out != g && out != a && out != b](auto fn, const auto&... ins) {
    map_to<V>(out, n, st, fn, ins...);
  };
  if constexpr (Op == 0 || Op == 1) {  // add, sub: a and b unread
    if constexpr (Side == 1 && Op == 1) {
      map([](F<V> gv) { return -gv; }, In<V, true>(g));
    } else {
      map([](F<V> gv) { return gv; }, In<V, true>(g));
    }
    return;
  }
  auto f = [](F<V> gv, F<V> x, F<V> y) { return binary_b<V, Side, Op>(gv, x, y); };
  const In<V, true> gi(g);
  if (sa != 0 && sb != 0) {
    map(f, gi, In<V, true>(a), In<V, true>(b));
  } else if (sa != 0) {
    map(f, gi, In<V, true>(a), In<V, false>(b));
  } else if (sb != 0) {
    map(f, gi, In<V, false>(a), In<V, true>(b));
  } else {
    map(f, gi, In<V, false>(a), In<V, false>(b));
  }
}

template <class V>
REEL_VEC_ENTRY void fill(float* y, float value, int64_t n) {
  const F<V> v = splat<V>(value);
  map_to<V>(y, n, true, [v]() { return v; });
}

template <class V>
REEL_VEC_ENTRY void axpy(float alpha, const float* x, float* y, int64_t n) {
  const F<V> a = splat<V>(alpha);
  map<V>(
      y, n, [a](F<V> xv, F<V> yv) { return V::fma(a, xv, yv); }, In<V, true>(x), In<V, true>(y));
}

template <class V>
REEL_VEC_ENTRY void scale(float alpha, float* y, int64_t n) {
  const F<V> a = splat<V>(alpha);
  map<V>(
      y, n, [a](F<V> yv) { return yv * a; }, In<V, true>(y));
}

template <class V>
REEL_VEC_ENTRY void copy(const float* x, float* y, int64_t n) {
  map_to<V>(
      y, n, x != y, [](F<V> v) { return v; }, In<V, true>(x));
}

// Sum over [n] of term(vector at i, lanes valid), four accumulators, in float within blocks of
// 4096 elements and in double across blocks. `fill` is the input value of the lanes past n.
template <class V, class Term, class... Ins>
REEL_VEC_INLINE double reduce(int64_t n, Term term, float fill, const Ins&... ins) {
  constexpr int W = V::W;
  constexpr int64_t kBlock = 4096;
  double total = 0.0;
  for (int64_t b0 = 0; b0 < n; b0 += kBlock) {
    const int64_t b1 = b0 + kBlock < n ? b0 + kBlock : n;
    F<V> acc0 = splat<V>(0.0f), acc1 = acc0, acc2 = acc0, acc3 = acc0;
    int64_t i = b0;
    for (; i + 4 * W <= b1; i += 4 * W) {
      acc0 = acc0 + term(load<V>(ins + i)...);
      acc1 = acc1 + term(load<V>(ins + i + W)...);
      acc2 = acc2 + term(load<V>(ins + i + 2 * W)...);
      acc3 = acc3 + term(load<V>(ins + i + 3 * W)...);
    }
    for (; i + W <= b1; i += W) acc0 = acc0 + term(load<V>(ins + i)...);
    if (i < b1) acc1 = acc1 + term(load_part<V>(ins + i, b1 - i, fill)...);
    total += static_cast<double>(hsum<V>((acc0 + acc1) + (acc2 + acc3)));
  }
  return total;
}

template <class V>
REEL_VEC_ENTRY double sum(const float* x, int64_t n) {
  return reduce<V>(
      n, [](F<V> v) { return v; }, 0.0f, x);
}

template <class V>
REEL_VEC_ENTRY float row_max(const float* x, int64_t n) {
  constexpr int W = V::W;
  const float ninf = -__builtin_inff();
  F<V> m0 = splat<V>(ninf), m1 = m0;
  int64_t i = 0;
  for (; i + 2 * W <= n; i += 2 * W) {
    m0 = vmax<V>(m0, load<V>(x + i));
    m1 = vmax<V>(m1, load<V>(x + i + W));
  }
  for (; i + W <= n; i += W) m0 = vmax<V>(m0, load<V>(x + i));
  if (i < n) m1 = vmax<V>(m1, load_part<V>(x + i, n - i, ninf));
  return hmax<V>(vmax<V>(m0, m1));
}

// The scalar exp and log of lane 0, through the vector code.
template <class V>
REEL_VEC_ENTRY float exp1(float x) {
  return exp<V>(splat<V>(x))[0];
}
template <class V>
REEL_VEC_ENTRY float log1(float x) {
  return log<V>(splat<V>(x))[0];
}

// Rows up to this long stay in L1 (with their output) and take one exp per element; longer rows
// are read in chunks of it with an online maximum and sum of exponentials.
constexpr int64_t kSoftmaxChunk = 2048;

template <class V>
REEL_VEC_ENTRY void softmax_rows(const float* x, float* y, int64_t rows, int64_t C, bool log,
                                 double* row_sums) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* px = x + r * C;  // [C]
    float* py = y + r * C;        // [C]
    float m;
    double s;
    if (C <= kSoftmaxChunk) {
      m = row_max<V>(px, C);
      const F<V> mv = splat<V>(m);
      if (log) {
        s = reduce<V>(
            C, [mv](F<V> v) { return exp<V>(v - mv); }, -__builtin_inff(), px);
      } else {
        // y = exp(x - m), summed as it is written; scaled below.
        constexpr int W = V::W;
        F<V> acc0 = splat<V>(0.0f), acc1 = acc0;
        int64_t i = 0;
        for (; i + 2 * W <= C; i += 2 * W) {
          const F<V> e0 = exp<V>(load<V>(px + i) - mv), e1 = exp<V>(load<V>(px + i + W) - mv);
          store<V>(py + i, e0);
          store<V>(py + i + W, e1);
          acc0 = acc0 + e0;
          acc1 = acc1 + e1;
        }
        for (; i < C; i += W) {
          const int64_t m_left = C - i < W ? C - i : W;
          const F<V> e = exp<V>(load_part<V>(px + i, m_left, -__builtin_inff()) - mv);
          store_part<V>(py + i, e, m_left);
          acc0 = acc0 + e;
        }
        s = static_cast<double>(hsum<V>(acc0 + acc1));
        scale<V>(static_cast<float>(1.0 / s), py, C);
        continue;
      }
    } else {
      m = -__builtin_inff();
      s = 0.0;
      for (int64_t c0 = 0; c0 < C; c0 += kSoftmaxChunk) {
        const int64_t len = C - c0 < kSoftmaxChunk ? C - c0 : kSoftmaxChunk;
        const float cm = row_max<V>(px + c0, len);
        if (cm > m) {
          s *= static_cast<double>(exp1<V>(m - cm));
          m = cm;
        }
        const F<V> mv = splat<V>(m);
        s += reduce<V>(
            len, [mv](F<V> v) { return exp<V>(v - mv); }, -__builtin_inff(), px + c0);
      }
      if (!log) {
        const F<V> mv = splat<V>(m), inv = splat<V>(static_cast<float>(1.0 / s));
        map<V>(
            py, C, [mv, inv](F<V> v) { return exp<V>(v - mv) * inv; }, In<V, true>(px));
        continue;
      }
    }
    // log_softmax: x - max - log(sum), as math::log_softmax_value.
    const F<V> mv = splat<V>(m), ls = splat<V>(log1<V>(static_cast<float>(s)));
    map<V>(
        py, C, [mv, ls](F<V> v) { return v - mv - ls; }, In<V, true>(px));
    if (row_sums != nullptr)
      row_sums[r] = reduce<V>(
          C, [](F<V> v) { return v; }, 0.0f, py);
  }
}

template <class V>
REEL_VEC_ENTRY void softmax_backward_rows(const float* g, const float* y, float* dx, int64_t rows,
                                          int64_t C, bool log) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* pg = g + r * C;  // [C]
    const float* py = y + r * C;  // [C]
    float* pd = dx + r * C;       // [C]
    if (log) {
      // dx = g - exp(y) * sum_j g_j, as math::log_softmax_grad.
      const F<V> sg = splat<V>(static_cast<float>(reduce<V>(
          C, [](F<V> v) { return v; }, 0.0f, pg)));
      map<V>(
          pd, C, [sg](F<V> gv, F<V> yv) { return gv - exp<V>(yv) * sg; }, In<V, true>(pg),
          In<V, true>(py));
    } else {
      // dx = y * (g - sum_j g_j y_j), as math::softmax_grad.
      const F<V> dot = splat<V>(static_cast<float>(reduce<V>(
          C, [](F<V> gv, F<V> yv) { return gv * yv; }, 0.0f, pg, py)));
      map<V>(
          pd, C, [dot](F<V> gv, F<V> yv) { return yv * (gv - dot); }, In<V, true>(pg),
          In<V, true>(py));
    }
  }
}

template <class V>
REEL_VEC_ENTRY void exp_scale_sub(const float* log_probs, float* d, int64_t n, float w,
                                  float offset) {
  const F<V> wv = splat<V>(w), ov = splat<V>(offset);
  map_to<V>(
      d, n, d != log_probs, [wv, ov](F<V> v) { return wv * (exp<V>(v) - ov); },
      In<V, true>(log_probs));
}

// One round of a W x W transpose in registers: rows i and i + S (i & S == 0) swap their
// off-diagonal S x S blocks. After the rounds S = W/2, ..., 2, 1 row r holds column r.
template <class V, int S>
REEL_VEC_INLINE void transpose_round(F<V>* r) {
  using Mask = I<V>;
  Mask lo, hi;
  for (int l = 0; l < V::W; ++l) {
    lo[l] = (l & S) ? V::W + l - S : l;
    hi[l] = (l & S) ? V::W + l : l + S;
  }
  for (int i = 0; i < V::W; ++i) {
    if (i & S) continue;
    const F<V> a = r[i], b = r[i + S];
    r[i] = __builtin_shuffle(a, b, lo);
    r[i + S] = __builtin_shuffle(a, b, hi);
  }
  if constexpr (S > 1) transpose_round<V, S / 2>(r);
}

// out[c * ld_out + r] = in[r * ld_in + c] for r < rows, c < cols: W x W blocks through
// registers, the ragged edges element by element.
template <class V>
REEL_VEC_ENTRY void transpose(const float* in, int64_t ld_in, float* out, int64_t ld_out,
                              int64_t rows, int64_t cols) {
  constexpr int W = V::W;
  int64_t r0 = 0;
  for (; r0 + W <= rows; r0 += W) {
    int64_t c0 = 0;
    for (; c0 + W <= cols; c0 += W) {
      F<V> t[W];
      for (int i = 0; i < W; ++i) t[i] = load<V>(in + (r0 + i) * ld_in + c0);
      transpose_round<V, W / 2>(t);
      for (int i = 0; i < W; ++i) store<V>(out + (c0 + i) * ld_out + r0, t[i]);
    }
    for (int64_t r = r0; r < r0 + W; ++r)
      for (int64_t c = c0; c < cols; ++c) out[c * ld_out + r] = in[r * ld_in + c];
  }
  for (int64_t r = r0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) out[c * ld_out + r] = in[r * ld_in + c];
}

// ---------------------------------------------------------------------------------------------
// The LSTM step of one batch row: the SIMD form of math::lstm_unit_forward and
// math::lstm_unit_backward (kernels/lstm_math.h), same formulas, W units at a time and a
// partial vector for the last H % W.

// Calls body(j, m) for the units [j, j + m) of [0, H), m = W but for the last.
template <class V, class Body>
REEL_VEC_INLINE void over_units(int64_t H, Body body) {
  int64_t j = 0;
  for (; j + V::W <= H; j += V::W) body(j, int64_t{V::W});
  if (j < H) body(j, H - j);
}
template <class V>
REEL_VEC_INLINE F<V> load_n(const float* p, int64_t m) {
  return m == V::W ? load<V>(p) : load_part<V>(p, m, 0.0f);
}
template <class V>
REEL_VEC_INLINE void store_n(float* p, F<V> v, int64_t m) {
  if (m == V::W)
    store<V>(p, v);
  else
    store_part<V>(p, v, m);
}

template <class V>
REEL_VEC_ENTRY void lstm_forward_row(float* a, const float* c_prev, float* c, float* h, float* out,
                                     int64_t H) {
  over_units<V>(H, [&](int64_t j, int64_t m) {
    const F<V> i = sigmoid<V>(load_n<V>(a + j, m));
    const F<V> f = sigmoid<V>(load_n<V>(a + H + j, m));
    const F<V> g = tanh<V>(load_n<V>(a + 2 * H + j, m));
    const F<V> o = sigmoid<V>(load_n<V>(a + 3 * H + j, m));
    const F<V> cn = V::fma(f, load_n<V>(c_prev + j, m), i * g);  // c = f c_prev + i g
    const F<V> hn = o * tanh<V>(cn);                             // h = o tanh(c)
    store_n<V>(a + j, i, m);
    store_n<V>(a + H + j, f, m);
    store_n<V>(a + 2 * H + j, g, m);
    store_n<V>(a + 3 * H + j, o, m);
    store_n<V>(c + j, cn, m);
    store_n<V>(h + j, hn, m);
    store_n<V>(out + j, hn, m);
  });
}

template <class V>
REEL_VEC_ENTRY void lstm_backward_row(const float* a, const float* c, const float* c_prev,
                                      const float* dh, const float* dout, float* dc, float* da,
                                      float* dh_carry, int64_t H) {
  const F<V> one = splat<V>(1.0f);
  over_units<V>(H, [&](int64_t j, int64_t m) {
    const F<V> i = load_n<V>(a + j, m), f = load_n<V>(a + H + j, m);
    const F<V> g = load_n<V>(a + 2 * H + j, m), o = load_n<V>(a + 3 * H + j, m);
    F<V> dhv = load_n<V>(dh + j, m);
    if (dout) dhv = dhv + load_n<V>(dout + j, m);
    const F<V> tc = tanh<V>(load_n<V>(c + j, m));
    const F<V> dct = load_n<V>(dc + j, m) + dhv * o * (one - tc * tc);
    store_n<V>(da + 3 * H + j, dhv * tc * o * (one - o), m);                    // da_o
    store_n<V>(da + j, dct * g * i * (one - i), m);                             // da_i
    store_n<V>(da + 2 * H + j, dct * i * (one - g * g), m);                     // da_g
    store_n<V>(da + H + j, dct * load_n<V>(c_prev + j, m) * f * (one - f), m);  // da_f
    store_n<V>(dc + j, dct * f, m);                                             // dc_prev
    store_n<V>(dh_carry + j, splat<V>(0.0f), m);
  });
}

template <class V>
constexpr VecKernels make_table() {
  return VecKernels{
      {&unary_fwd<V, 0>, &unary_fwd<V, 1>, &unary_fwd<V, 2>, &unary_fwd<V, 3>, &unary_fwd<V, 4>,
       &unary_fwd<V, 5>},
      {&unary_bwd<V, 0>, &unary_bwd<V, 1>, &unary_bwd<V, 2>, &unary_bwd<V, 3>, &unary_bwd<V, 4>,
       &unary_bwd<V, 5>},
      {&binary_fwd<V, 0>, &binary_fwd<V, 1>, &binary_fwd<V, 2>, &binary_fwd<V, 3>},
      {{&binary_bwd<V, 0, 0>, &binary_bwd<V, 0, 1>, &binary_bwd<V, 0, 2>, &binary_bwd<V, 0, 3>},
       {&binary_bwd<V, 1, 0>, &binary_bwd<V, 1, 1>, &binary_bwd<V, 1, 2>, &binary_bwd<V, 1, 3>}},
      &fill<V>,
      &axpy<V>,
      &scale<V>,
      &copy<V>,
      &sum<V>,
      &softmax_rows<V>,
      &softmax_backward_rows<V>,
      &exp_scale_sub<V>,
      &transpose<V>,
      &lstm_forward_row<V>,
      &lstm_backward_row<V>};
}

}  // namespace reel::cpu::vec
