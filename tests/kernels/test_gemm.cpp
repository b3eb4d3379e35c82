// reel::cpu::gemm against a double-precision triple loop: ragged sizes, sizes that straddle the
// cache blocks (kKc = 384, kNc = 256, micro-tiles up to 14 x 32), all four transpose
// combinations, alpha and beta, padded strides, empty products, every micro-kernel this CPU
// runs, on 1 and 2 threads.

#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "reel/core/random.h"
#include "reel/kernels/cpu/parallel.h"
#include "reel/kernels/gemm.h"

namespace {

// Uniform values in [-1, 1) from reel's seeded generator.
struct Lcg {
  explicit Lcg(uint64_t seed) : g(seed) {}
  reel::Generator g;
  float next() { return 2.0f * g.uniform() - 1.0f; }
};

struct Case {
  bool ta, tb;
  int64_t M, N, K;
  float alpha, beta;
  int64_t pad_a = 0, pad_b = 0, pad_c = 0;  // extra elements per row beyond the minimum stride
};

std::string describe(const Case& c) {
  return std::string(c.ta ? "T" : "N") + (c.tb ? "T" : "N") + " M=" + std::to_string(c.M) +
         " N=" + std::to_string(c.N) + " K=" + std::to_string(c.K) +
         " alpha=" + std::to_string(c.alpha) + " beta=" + std::to_string(c.beta) +
         " pads=" + std::to_string(c.pad_a) + "," + std::to_string(c.pad_b) + "," +
         std::to_string(c.pad_c) + " isa=" + reel::cpu::gemm_isa() +
         " threads=" + std::to_string(reel::cpu::num_threads());
}

// Runs one case through `fn` (gemm or gemm_naive) and checks every element of C, padding
// included (it must be untouched).
template <class Fn>
void check(const Case& c, Fn fn, uint64_t seed = 1) {
  CAPTURE(describe(c));
  Lcg rng{seed};
  // A: [M, K] (or [K, M] when ta) with row stride lda; B likewise; C: [M, N] with ldc.
  const int64_t a_rows = c.ta ? c.K : c.M, a_cols = c.ta ? c.M : c.K;
  const int64_t b_rows = c.tb ? c.N : c.K, b_cols = c.tb ? c.K : c.N;
  const int64_t lda = a_cols + c.pad_a, ldb = b_cols + c.pad_b, ldc = c.N + c.pad_c;
  std::vector<float> A(static_cast<size_t>(a_rows * lda)), B(static_cast<size_t>(b_rows * ldb));
  std::vector<float> C(static_cast<size_t>(c.M * ldc));
  for (float& x : A) x = rng.next();
  for (float& x : B) x = rng.next();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (float& x : C) x = c.beta == 0.0f ? nan : rng.next();
  const std::vector<float> C0 = C;

  fn(c.ta, c.tb, c.M, c.N, c.K, c.alpha, A.data(), lda, B.data(), ldb, c.beta, C.data(), ldc);

  int bad = 0;
  for (int64_t i = 0; i < c.M; ++i) {
    for (int64_t j = 0; j < ldc; ++j) {
      const float got = C[static_cast<size_t>(i * ldc + j)];
      const float before = C0[static_cast<size_t>(i * ldc + j)];
      if (j >= c.N) {  // padding: untouched (NaN compares unequal, so compare bits)
        if (std::memcmp(&got, &before, sizeof got) != 0 && bad++ < 5) {
          FAIL_CHECK("padding written at i=" << i << " j=" << j);
        }
        continue;
      }
      double sum = 0.0, mag = 0.0;
      for (int64_t k = 0; k < c.K; ++k) {
        const double a =
            c.ta ? A[static_cast<size_t>(k * lda + i)] : A[static_cast<size_t>(i * lda + k)];
        const double b =
            c.tb ? B[static_cast<size_t>(j * ldb + k)] : B[static_cast<size_t>(k * ldb + j)];
        sum += a * b;
        mag += std::fabs(a * b);
      }
      double want = c.alpha * sum;
      double tol = 1e-6 * std::fabs(c.alpha) * mag * 4.0 + 1e-30;
      if (c.beta != 0.0f) {
        want += static_cast<double>(c.beta) * before;
        tol += 1e-6 * std::fabs(c.beta * before);
      }
      if (!(std::fabs(got - want) <= tol) && bad++ < 5) {
        FAIL_CHECK("C[" << i << "," << j << "] = " << got << ", want " << want << " (tol " << tol
                        << ")");
      }
    }
  }
  CHECK(bad == 0);
}

void run_gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
              int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  reel::cpu::gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void run_naive(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
               int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  reel::cpu::gemm_naive(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

// Sizes for every transpose combination: ragged, one-element, and block straddling.
const std::vector<std::vector<int64_t>> kShapes = {
    {1, 1, 1},   {7, 7, 7},     {33, 33, 33},  {1, 257, 33},  {257, 1, 33},  {33, 7, 257},
    {15, 33, 1}, {14, 32, 385}, {29, 65, 384}, {5, 300, 770}, {57, 257, 64}, {130, 20, 17},
};

void run_all_cases() {
  for (const auto& s : kShapes) {
    for (int t = 0; t < 4; ++t) {
      check({(t & 1) != 0, (t & 2) != 0, s[0], s[1], s[2], 1.0f, 0.0f}, run_gemm);
    }
  }
  // alpha / beta, padded strides, NaN-filled C with beta == 0.
  for (int t = 0; t < 4; ++t) {
    const bool ta = (t & 1) != 0, tb = (t & 2) != 0;
    check({ta, tb, 33, 47, 29, -0.5f, 1.0f, 3, 5, 7}, run_gemm, 2);
    check({ta, tb, 31, 70, 400, 2.0f, -0.75f, 1, 17, 2}, run_gemm, 3);
    check({ta, tb, 9, 129, 50, 1.5f, 0.0f, 4, 4, 9}, run_gemm, 4);
  }
  // K == 0: C = beta * C; M == 0 / N == 0: nothing.
  check({false, false, 5, 9, 0, 1.0f, 0.5f, 0, 0, 3}, run_gemm);
  check({false, false, 5, 9, 0, 1.0f, 0.0f}, run_gemm);
  check({true, false, 0, 9, 4, 1.0f, 0.5f}, run_gemm);
  check({false, true, 4, 0, 4, 1.0f, 0.5f}, run_gemm);
  // alpha == 0 reads neither A nor B: C = beta * C.
  check({false, false, 6, 10, 8, 0.0f, 2.0f}, run_gemm);
}

// Restores the thread count and micro-kernel when a test case ends.
struct Restore {
  ~Restore() {
    reel::cpu::set_num_threads(0);
    reel::cpu::gemm_force_isa(nullptr);
  }
};

}  // namespace

TEST_CASE("gemm_naive matches the double-precision reference") {
  for (int t = 0; t < 4; ++t) {
    check({(t & 1) != 0, (t & 2) != 0, 13, 17, 19, 0.5f, 0.0f, 1, 2, 3}, run_naive);
    check({(t & 1) != 0, (t & 2) != 0, 6, 5, 11, -1.0f, 0.25f}, run_naive);
  }
}

TEST_CASE("gemm_isa names a known micro-kernel") {
  const std::string isa = reel::cpu::gemm_isa();
  CHECK((isa == "avx512" || isa == "avx2" || isa == "generic"));
  CHECK_FALSE(reel::cpu::gemm_force_isa("sse9"));
  CHECK(reel::cpu::gemm_isa() == isa);
}

TEST_CASE("gemm matches the double-precision reference on every micro-kernel and thread count") {
  Restore restore;
  for (const char* isa : {"generic", "avx2", "avx512"}) {
    if (!reel::cpu::gemm_force_isa(isa)) {
      MESSAGE("this CPU cannot run the " << isa << " micro-kernel: skipped");
      continue;
    }
    CHECK(std::string(reel::cpu::gemm_isa()) == isa);
    for (int threads : {1, 2}) {
      reel::cpu::set_num_threads(threads);
      run_all_cases();
    }
  }
}

TEST_CASE("gemm on products big enough to be threaded and cache-blocked") {
  Restore restore;
  for (int threads : {1, 2}) {
    reel::cpu::set_num_threads(threads);
    // Above the single-thread cut (M * N * K), split by rows and by columns, with few rows (B
    // read in place, A shared by the team), and with M above the row block kMc = 2048.
    check({false, false, 300, 260, 400, 1.0f, 0.0f}, run_gemm, 5);
    check({true, true, 40, 600, 390, 1.0f, 1.0f, 2, 3, 4}, run_gemm, 6);
    check({false, false, 30, 1030, 390, -1.0f, 0.5f, 0, 1, 2}, run_gemm, 7);
    check({true, false, 2100, 40, 100, 1.0f, 0.0f}, run_gemm, 8);
  }
}
