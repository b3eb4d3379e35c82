// The CPU pointwise, reduction, softmax, cross-entropy and copy kernels against plain scalar
// loops (the formulas of kernels/*_math.h, sums in double): ragged lengths around the vector
// widths (4, 8, 16) and both sides of the parallel threshold, broadcasts, every ISA body this CPU
// runs, on 1 and 2 threads.

#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "reel/core/random.h"
#include "reel/kernels/copy.h"
#include "reel/kernels/cpu/parallel.h"
#include "reel/kernels/elementwise.h"
#include "reel/kernels/reduce.h"
#include "reel/kernels/softmax.h"

namespace {

using reel::math::Binary;
using reel::math::Unary;

// Uniform values in [-1, 1) from reel's seeded generator.
struct Lcg {
  explicit Lcg(uint64_t seed) : g(seed) {}
  reel::Generator g;
  float next() { return 2.0f * g.uniform() - 1.0f; }
};

std::vector<float> random(size_t n, uint64_t seed, float lo = -4.0f, float hi = 4.0f) {
  Lcg r{seed};
  std::vector<float> v(n);
  for (float& x : v) x = lo + (hi - lo) * 0.5f * (r.next() + 1.0f);
  return v;
}

// Runs body once per ISA this CPU has and per thread count 1, 2.
void for_each_config(const std::function<void(const std::string&)>& body) {
  for (const char* isa : {"avx512", "avx2", "generic"}) {
    if (!reel::cpu::vec_force_isa(isa)) continue;
    for (int threads : {1, 2}) {
      reel::cpu::set_num_threads(threads);
      body(std::string(isa) + " threads=" + std::to_string(threads));
    }
  }
  reel::cpu::vec_force_isa(nullptr);
  reel::cpu::set_num_threads(0);
}

bool close(float got, double want, double rel = 1e-5, double abs = 1e-6) {
  if (std::isnan(want)) return std::isnan(got);
  return std::fabs(got - want) <= abs + rel * std::fabs(want);
}

const int64_t kLengths[] = {0, 1, 3, 4, 7, 8, 15, 16, 17, 31, 33, 100, 1000, 300001};

}  // namespace

TEST_CASE("unary forward and backward match the scalar formulas") {
  for_each_config([](const std::string& config) {
    CAPTURE(config);
    for (int op = 0; op < 6; ++op) {
      const Unary u = static_cast<Unary>(op);
      for (int64_t n : kLengths) {
        CAPTURE(op);
        CAPTURE(n);
        std::vector<float> x = random(n, 1 + n, u == Unary::Log ? 0.01f : -6.0f, 6.0f);
        std::vector<float> g = random(n, 2 + n), y(n + 1, 7.0f), dx(n + 1, 7.0f);
        reel::cpu::unary_forward(u, x.data(), y.data(), n);
        reel::cpu::unary_backward(u, g.data(), x.data(), y.data(), dx.data(), n);
        int bad = 0;
        for (int64_t i = 0; i < n; ++i) {
          const float want = reel::math::unary_forward(u, x[i]);
          const float dwant = reel::math::unary_backward(u, g[i], x[i], y[i]);
          bad += !close(y[i], want, 1e-6) + !close(dx[i], dwant, 1e-6);
        }
        CHECK(bad == 0);
        CHECK(y[n] == 7.0f);  // nothing written past the end
        CHECK(dx[n] == 7.0f);
      }
    }
  });
}

TEST_CASE("broadcasting binary ops and their gradients") {
  struct Shape3 {
    std::vector<int64_t> out, a, b;  // a and b broadcast to out (same rank)
  };
  const Shape3 cases[] = {{{300001}, {300001}, {300001}},    {{5, 33}, {5, 33}, {1, 33}},
                          {{5, 33}, {5, 1}, {5, 33}},        {{4, 17, 9}, {4, 17, 9}, {1, 17, 1}},
                          {{3, 4, 5}, {1, 1, 1}, {3, 4, 5}}, {{6, 70, 80}, {6, 70, 80}, {6, 1, 80}},
                          {{2, 3, 1}, {2, 1, 1}, {1, 3, 1}}};
  for_each_config([&](const std::string& config) {
    CAPTURE(config);
    for (const Shape3& c : cases) {
      const int nd = static_cast<int>(c.out.size());
      auto strides = [&](const std::vector<int64_t>& s) {
        std::vector<int64_t> st(nd);
        int64_t k = 1;
        for (int d = nd - 1; d >= 0; --d) {
          st[d] = s[d] == 1 ? 0 : k;
          k *= s[d];
        }
        return st;
      };
      int64_t n = 1, na = 1, nb = 1;
      for (int d = 0; d < nd; ++d) n *= c.out[d], na *= c.a[d], nb *= c.b[d];
      const std::vector<float> a = random(na, 3), b = random(nb, 4, 0.5f, 3.0f), g = random(n, 5);
      const auto sa = strides(c.a), sb = strides(c.b), sg = strides(c.out);
      std::vector<float> out(n), grad(n);
      for (int op = 0; op < 4; ++op) {
        const Binary bo = static_cast<Binary>(op);
        CAPTURE(op);
        CAPTURE(n);
        reel::cpu::binary_forward(bo, a.data(), sa.data(), b.data(), sb.data(), out.data(),
                                  c.out.data(), nd);
        int bad = 0;
        std::vector<int64_t> idx(nd, 0);
        for (int64_t i = 0; i < n; ++i) {
          int64_t rem = i, ia = 0, ib = 0;
          for (int d = nd - 1; d >= 0; --d) {
            idx[d] = rem % c.out[d];
            rem /= c.out[d];
            ia += idx[d] * sa[d];
            ib += idx[d] * sb[d];
          }
          bad += out[i] != reel::math::binary_forward(bo, a[ia], b[ib]);
        }
        CHECK(bad == 0);
        for (int side = 0; side < 2; ++side) {
          reel::cpu::binary_backward(bo, side, g.data(), sg.data(), a.data(), sa.data(), b.data(),
                                     sb.data(), grad.data(), c.out.data(), nd);
          int gbad = 0;
          for (int64_t i = 0; i < n; ++i) {
            int64_t rem = i, ia = 0, ib = 0;
            for (int d = nd - 1; d >= 0; --d) {
              const int64_t k = rem % c.out[d];
              rem /= c.out[d];
              ia += k * sa[d];
              ib += k * sb[d];
            }
            const float want = side == 0 ? reel::math::binary_backward_a(bo, g[i], a[ia], b[ib])
                                         : reel::math::binary_backward_b(bo, g[i], a[ia], b[ib]);
            gbad += !close(grad[i], want, 1e-6);
          }
          CHECK(gbad == 0);
        }
      }
    }
  });
}

TEST_CASE("fill, axpy and scale") {
  for_each_config([](const std::string& config) {
    CAPTURE(config);
    for (int64_t n : kLengths) {
      CAPTURE(n);
      std::vector<float> y(n + 1, 9.0f), x = random(n, 6);
      reel::cpu::fill(y.data(), -0.0f, n);
      int bad = 0;
      for (int64_t i = 0; i < n; ++i) bad += !(y[i] == 0.0f && std::signbit(y[i]));
      std::vector<float> z = random(n, 7);
      const std::vector<float> z0 = z;
      reel::cpu::axpy(0.75f, x.data(), z.data(), n);
      for (int64_t i = 0; i < n; ++i) bad += !close(z[i], z0[i] + 0.75 * x[i], 1e-6);
      reel::cpu::scale(-2.0f, z.data(), n);
      for (int64_t i = 0; i < n; ++i) bad += !close(z[i], -2.0 * (z0[i] + 0.75 * x[i]), 1e-6);
      CHECK(bad == 0);
      CHECK(y[n] == 9.0f);
    }
  });
}

TEST_CASE("sum_reduce over any set of dimensions adds into out") {
  const std::vector<std::vector<int64_t>> shapes = {
      {7}, {300001}, {3, 4, 5, 6}, {32, 16, 19, 21}, {5, 9000}, {2, 3, 1, 5}};
  for_each_config([&](const std::string& config) {
    CAPTURE(config);
    for (const auto& shape : shapes) {
      const int nd = static_cast<int>(shape.size());
      int64_t n = 1;
      for (int64_t s : shape) n *= s;
      const std::vector<float> x = random(n, 8);
      for (int mask = 0; mask < (1 << nd); ++mask) {  // bit d set: dimension d reduced
        CAPTURE(mask);
        CAPTURE(nd);
        std::vector<int64_t> ostr(nd);
        int64_t k = 1;
        for (int d = nd - 1; d >= 0; --d) {
          const bool reduced = (mask >> d) & 1;
          ostr[d] = reduced ? 0 : k;
          k *= reduced ? 1 : shape[d];
        }
        std::vector<float> out(k, 1.0f);
        std::vector<double> want(k, 1.0), mass(k, 1.0);  // mass: sum of |terms|
        for (int64_t i = 0; i < n; ++i) {
          int64_t rem = i, o = 0;
          for (int d = nd - 1; d >= 0; --d) {
            o += rem % shape[d] * ostr[d];
            rem /= shape[d];
          }
          want[o] += x[i];
          mass[o] += std::fabs(x[i]);
        }
        reel::cpu::sum_reduce(x.data(), shape.data(), nd, out.data(), ostr.data());
        int bad = 0;
        // Float sums: an error bound that grows with the terms' magnitude.
        for (int64_t i = 0; i < k; ++i) bad += !close(out[i], want[i], 0.0, 2e-6 * mass[i]);
        CHECK(bad == 0);
      }
    }
  });
}

TEST_CASE("softmax and log_softmax, forward and backward") {
  struct Case {
    int64_t outer, C, inner;
  };
  const Case cases[] = {{1, 1, 1},    {3, 7, 1}, {5, 33, 1}, {64, 1000, 1},
                        {3, 5000, 1}, {2, 3, 4}, {4, 17, 5}};
  for_each_config([&](const std::string& config) {
    CAPTURE(config);
    for (const Case& c : cases) {
      for (bool log : {false, true}) {
        CAPTURE(c.outer);
        CAPTURE(c.C);
        CAPTURE(c.inner);
        CAPTURE(log);
        const int64_t n = c.outer * c.C * c.inner;
        std::vector<float> x = random(n, 9, -20.0f, 20.0f), g = random(n, 10), y(n), dx(n);
        reel::cpu::softmax_forward(x.data(), y.data(), c.outer, c.C, c.inner, log);
        reel::cpu::softmax_backward(g.data(), y.data(), dx.data(), c.outer, c.C, c.inner, log);
        int bad = 0;
        for (int64_t o = 0; o < c.outer; ++o) {
          for (int64_t i = 0; i < c.inner; ++i) {
            auto at = [&](int64_t cc) { return (o * c.C + cc) * c.inner + i; };
            double mx = -INFINITY, s = 0.0, acc = 0.0;
            for (int64_t cc = 0; cc < c.C; ++cc) mx = std::fmax(mx, x[at(cc)]);
            for (int64_t cc = 0; cc < c.C; ++cc) s += std::exp(x[at(cc)] - mx);
            for (int64_t cc = 0; cc < c.C; ++cc) {
              const double p = std::exp(x[at(cc)] - mx) / s;
              const double want = log ? x[at(cc)] - mx - std::log(s) : p;
              bad += !close(y[at(cc)], want, 1e-5, 1e-6);
              acc += log ? g[at(cc)] : g[at(cc)] * static_cast<double>(y[at(cc)]);
            }
            for (int64_t cc = 0; cc < c.C; ++cc) {
              const double yy = y[at(cc)];
              const double want = log ? g[at(cc)] - std::exp(yy) * acc : yy * (g[at(cc)] - acc);
              bad += !close(dx[at(cc)], want, 1e-4, 1e-5);
            }
          }
        }
        CHECK(bad == 0);
      }
    }
  });
}

TEST_CASE("cross-entropy forward and backward, with smoothing and ignored rows") {
  for_each_config([](const std::string& config) {
    CAPTURE(config);
    for (int64_t N : {1, 5, 300}) {
      for (int64_t C : {1, 10, 1000}) {
        for (float eps : {0.0f, 0.1f}) {
          CAPTURE(N);
          CAPTURE(C);
          CAPTURE(eps);
          const std::vector<float> logits = random(N * C, 11 + N + C, -8.0f, 8.0f);
          std::vector<int64_t> t(N);
          int64_t count = 0;
          for (int64_t r = 0; r < N; ++r) {
            t[r] = r % 4 == 3 ? -100 : (r * 7) % C;
            count += t[r] != -100;
          }
          std::vector<float> lp(N * C), d(N * C, 5.0f);
          float loss = 0.0f;
          const float g = 1.5f;
          reel::cpu::cross_entropy_forward(logits.data(), t.data(), lp.data(), &loss, nullptr, N, C,
                                           eps, -100, count);
          reel::cpu::cross_entropy_backward(&g, lp.data(), t.data(), d.data(), N, C, eps, -100,
                                            count);
          double total = 0.0;
          int bad = 0;
          for (int64_t r = 0; r < N; ++r) {
            const float* x = logits.data() + r * C;
            double mx = -INFINITY, s = 0.0;
            for (int64_t c = 0; c < C; ++c) mx = std::fmax(mx, x[c]);
            for (int64_t c = 0; c < C; ++c) s += std::exp(x[c] - mx);
            for (int64_t c = 0; c < C; ++c) {
              const double l = x[c] - mx - std::log(s);
              bad += !close(lp[r * C + c], l, 1e-5, 1e-5);
              const double st = (c == t[r] ? 1.0 - eps : 0.0) + eps / static_cast<double>(C);
              if (t[r] != -100) total -= st * l;
              const double dw = t[r] == -100 ? 0.0 : g / count * (std::exp(l) - st);
              bad += !close(d[r * C + c], dw, 1e-5, 1e-6);
            }
          }
          CHECK(bad == 0);
          CHECK(close(loss, count > 0 ? total / count : NAN, 1e-5, 1e-6));
        }
      }
    }
  });
}

TEST_CASE("strided copies: transposes, permutes and broadcasts") {
  struct Case {
    std::vector<int64_t> shape, perm;  // out = in permuted: out dim d is in dim perm[d]
  };
  const Case cases[] = {{{37, 53}, {1, 0}},
                        {{300, 200}, {1, 0}},
                        {{3, 17, 19, 5}, {0, 2, 1, 3}},
                        {{3, 17, 19, 5}, {3, 1, 0, 2}},
                        {{8, 33, 40}, {0, 2, 1}},
                        {{300001}, {0}}};
  for_each_config([&](const std::string& config) {
    CAPTURE(config);
    for (const Case& c : cases) {
      const int nd = static_cast<int>(c.shape.size());
      int64_t n = 1;
      for (int64_t s : c.shape) n *= s;
      std::vector<int64_t> in_st(nd), out_shape(nd), st(nd), ost(nd);
      int64_t k = 1;
      for (int d = nd - 1; d >= 0; --d) in_st[d] = k, k *= c.shape[d];
      for (int d = 0; d < nd; ++d) out_shape[d] = c.shape[c.perm[d]], st[d] = in_st[c.perm[d]];
      k = 1;
      for (int d = nd - 1; d >= 0; --d) ost[d] = k, k *= out_shape[d];
      const std::vector<float> x = random(n, 12);
      std::vector<float> y(n, NAN);
      reel::cpu::strided_copy(x.data(), st.data(), y.data(), ost.data(), out_shape.data(), nd);
      int bad = 0;
      for (int64_t i = 0; i < n; ++i) {
        int64_t rem = i, src = 0;
        for (int d = nd - 1; d >= 0; --d) {
          src += rem % out_shape[d] * st[d];
          rem /= out_shape[d];
        }
        bad += y[i] != x[src];
      }
      CHECK(bad == 0);
    }
    // A broadcast: [4, 1000] from [1000] (in stride 0 on the first dimension).
    const std::vector<float> row = random(1000, 13);
    std::vector<float> y(4000);
    const int64_t shape[] = {4, 1000}, si[] = {0, 1}, so[] = {1000, 1};
    reel::cpu::strided_copy(row.data(), si, y.data(), so, shape, 2);
    int bad = 0;
    for (int64_t i = 0; i < 4000; ++i) bad += y[i] != row[i % 1000];
    CHECK(bad == 0);
    // A column broadcast: [300, 7] from [300, 1] (in stride 0 on the last dimension).
    const std::vector<float> col = random(300, 14);
    std::vector<float> z(2100);
    const int64_t shape2[] = {300, 7}, si2[] = {1, 0}, so2[] = {7, 1};
    reel::cpu::strided_copy(col.data(), si2, z.data(), so2, shape2, 2);
    bad = 0;
    for (int64_t i = 0; i < 2100; ++i) bad += z[i] != col[i / 7];
    CHECK(bad == 0);
  });
}
