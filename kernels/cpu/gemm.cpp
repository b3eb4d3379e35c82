// The SGEMM driver: cache blocking, packing, threading and run-time choice of the micro-kernel.
// Compiled with baseline x86-64 flags: the ISA-specific micro-kernels live in gemm_avx512.cpp
// and gemm_avx2.cpp and are called only when the CPU has their instructions.
//
// Loop nest of one thread, over its own rectangle of C (rows [m0, m1), columns [n0, n1)).
// The vector axis of the micro-kernel runs along N (C is row-major), so B is the operand that is
// loaded as vectors and A the one that is broadcast; relative to BLIS (column-major) the roles
// of A and B and of M and N swap:
//
//   for i0 in [m0, m1) step kMc            A block of mc x kc rows stays in L3
//     for p0 in [0, K) step kKc
//       pack A[i0:i0+mc, p0:p0+kc]         -> a_pack [mc/mr][kc][mr], alpha folded in
//       for j0 in [n0, n1) step kNc
//         pack B[p0:p0+kc, j0:j0+nc]       -> b_pack [nc/nr][kc][nr], stays in L2
//         for ir in [0, mc) step mr        A micro-panel (kc x mr, 21 KiB) stays in L1
//           for jr in [0, nc) step nr      B micro-panels stream from L2
//             micro-kernel: C[ir:ir+mr, jr:jr+nr] (+)= A micro-panel * B micro-panel
//
// When a thread has few rows of C (M small: LSTM steps) every element of B is used by only a
// few micro-kernel calls, so copying B would cost about as much as the FMAs that use it: the
// micro-kernel then reads B in place (row stride ldb) and only a ragged last panel is copied.
//
// Threads: each thread computes a rectangle of C from a grid of tm x tn rectangles and packs its
// own A rows and B columns into its own buffers, so a call has no barrier besides the end of
// its parallel region. The grid (rows or columns first) minimises per-thread FMAs plus copies.
// Small products run on the calling thread: with OMP_WAIT_POLICY=passive a parallel region
// costs 20 to 50 us on our VMs (measured), the time of about 5 MFLOP.

#include "reel/kernels/gemm.h"

#include <omp.h>
#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <new>

#include "reel/kernels/cpu/parallel.h"

namespace reel::cpu {

namespace gemm_detail {

// The micro-kernel contract, shared by every ISA:
// C[0:m, 0:n] = A * B + beta * C, and with beta == 0 C is not read.
// a: [kc][mr] packed A (alpha folded in; rows past m are zero); b: kc rows of nr floats at
// stride ldb (a packed panel with ldb == nr, or B itself); c: [m, n] at stride ldc;
// 1 <= m <= mr, 1 <= n <= nr.
void gemm_ukernel_avx512(int64_t kc, const float* a, const float* b, int64_t ldb, float* c,
                         int64_t ldc, int64_t m, int64_t n, float beta);
void gemm_ukernel_avx2(int64_t kc, const float* a, const float* b, int64_t ldb, float* c,
                       int64_t ldc, int64_t m, int64_t n, float beta);
// Tile shapes of those kernels, defined beside them.
extern const int gemm_avx512_mr, gemm_avx512_nr, gemm_avx2_mr, gemm_avx2_nr;

}  // namespace gemm_detail

namespace {

using UkernelFn = void (*)(int64_t kc, const float* a, const float* b, int64_t ldb, float* c,
                           int64_t ldc, int64_t m, int64_t n, float beta);

struct Ukernel {
  const char* name;
  UkernelFn fn;
  int mr;
  int nr;
};

// Cache blocks. kKc x mr of A (14 x 384 x 4 B = 21 KiB) sits in L1 while kKc x kNc of B
// (384 KiB) streams from L2 (1 MiB per core); kMc x kKc of A (3 MiB) sits in L3.
constexpr int64_t kKc = 384;
constexpr int64_t kNc = 256;
constexpr int64_t kMc = 2048;

// Below this many FMAs (M * N * K) a call runs on the calling thread (see the top comment).
constexpr double kMinFmasPerThread = 4.0e6;

// A thread whose rectangle has at most this many micro-tile rows reads B in place.
constexpr int64_t kDirectBMaxRowTiles = 4;

// ---------------------------------------------------------------------------------------------
// The portable micro-kernel: 4 x 8 accumulators that the compiler keeps in 8 SSE registers.

constexpr int kGenericMr = 4;
constexpr int kGenericNr = 8;

void ukernel_generic(int64_t kc, const float* a, const float* b, int64_t ldb, float* c,
                     int64_t ldc, int64_t m, int64_t n, float beta) {
  float acc[kGenericMr][kGenericNr] = {};
  for (int64_t k = 0; k < kc; ++k) {
    for (int i = 0; i < kGenericMr; ++i) {
      for (int j = 0; j < kGenericNr; ++j) acc[i][j] += a[i] * b[j];
    }
    a += kGenericMr;
    b += ldb;
  }
  for (int64_t i = 0; i < m; ++i) {
    float* row = c + i * ldc;
    if (beta == 0.0f) {
      for (int64_t j = 0; j < n; ++j) row[j] = acc[i][j];
    } else {
      for (int64_t j = 0; j < n; ++j) row[j] = acc[i][j] + beta * row[j];
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Run-time choice of the micro-kernel.

const Ukernel& generic_kernel() {
  static const Ukernel k{"generic", &ukernel_generic, kGenericMr, kGenericNr};
  return k;
}

// nullptr when this CPU (and OS) cannot run that kernel or the name is unknown.
const Ukernel* kernel_by_name(const char* name) {
  __builtin_cpu_init();
  if (std::strcmp(name, "avx512") == 0) {
    static const Ukernel k{"avx512", &gemm_detail::gemm_ukernel_avx512,
                           gemm_detail::gemm_avx512_mr, gemm_detail::gemm_avx512_nr};
    // The kernel's file is compiled with -mavx512f -mavx512vl -mavx2 -mfma.
    const bool ok = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
                    __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    return ok ? &k : nullptr;
  }
  if (std::strcmp(name, "avx2") == 0) {
    static const Ukernel k{"avx2", &gemm_detail::gemm_ukernel_avx2, gemm_detail::gemm_avx2_mr,
                           gemm_detail::gemm_avx2_nr};
    const bool ok = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    return ok ? &k : nullptr;
  }
  if (std::strcmp(name, "generic") == 0) return &generic_kernel();
  return nullptr;
}

const Ukernel& auto_kernel() {
  static const Ukernel* const k = [] {
    if (const char* env = std::getenv("REEL_GEMM_ISA")) {
      if (const Ukernel* forced = kernel_by_name(env)) return forced;
    }
    for (const char* name : {"avx512", "avx2"}) {
      if (const Ukernel* best = kernel_by_name(name)) return best;
    }
    return &generic_kernel();
  }();
  return *k;
}

std::atomic<const Ukernel*> g_forced{nullptr};

const Ukernel& current_kernel() {
  const Ukernel* k = g_forced.load(std::memory_order_relaxed);
  return k != nullptr ? *k : auto_kernel();
}

// ---------------------------------------------------------------------------------------------
// Packing buffers: one pair per thread, grown when needed and never returned, so that steady
// state calls touch no fresh page (a first touch costs 12 to 17 us per 4 KiB on our VMs).

class PackBuffer {
 public:
  PackBuffer() = default;
  PackBuffer(const PackBuffer&) = delete;
  PackBuffer& operator=(const PackBuffer&) = delete;
  ~PackBuffer() { std::free(data_); }

  // At least n floats, 64-byte aligned. Contents are not kept across growth.
  float* get(size_t n) {
    if (n > capacity_) {
      std::free(data_);
      capacity_ = std::max(n, capacity_ + capacity_ / 2);
      size_t bytes = capacity_ * sizeof(float);
      // Big buffers are 2 MiB aligned and ask for transparent huge pages: fewer TLB misses
      // and one page fault per 2 MiB instead of 512.
      const size_t huge = size_t{2} << 20;
      const size_t align = bytes >= huge ? huge : 64;
      bytes = (bytes + align - 1) / align * align;
      data_ = static_cast<float*>(std::aligned_alloc(align, bytes));
      if (data_ == nullptr) throw std::bad_alloc();
      if (align == huge) madvise(data_, bytes, MADV_HUGEPAGE);
      capacity_ = bytes / sizeof(float);
    }
    return data_;
  }

 private:
  float* data_ = nullptr;
  size_t capacity_ = 0;
};

thread_local PackBuffer t_a_pack;
thread_local PackBuffer t_b_pack;

// ---------------------------------------------------------------------------------------------
// Packing. MR and NR are template parameters so that the inner loops have fixed trip counts;
// pack_dispatch() maps the kernel's run-time tile shape onto them.

// out: [kc][MR] = alpha * op(A)[0:rows, 0:kc], zero past rows.
// a: op(A) at the block's first element; op(A)[i, k] = a[i * lda + k], or a[k * lda + i]
// when trans.
template <int MR>
void pack_a_panel(bool trans, const float* a, int64_t lda, int64_t rows, int64_t kc, float alpha,
                  float* out) {
  if (trans) {
    for (int64_t k = 0; k < kc; ++k) {
      const float* src = a + k * lda;
      float* dst = out + k * MR;
      if (rows == MR) {
        for (int i = 0; i < MR; ++i) dst[i] = alpha * src[i];
      } else {
        for (int i = 0; i < MR; ++i) dst[i] = i < rows ? alpha * src[i] : 0.0f;
      }
    }
    return;
  }
  if (rows == MR) {
    const float* src[MR];
    for (int i = 0; i < MR; ++i) src[i] = a + i * lda;
    for (int64_t k = 0; k < kc; ++k) {
      float* dst = out + k * MR;
      for (int i = 0; i < MR; ++i) dst[i] = alpha * src[i][k];
    }
    return;
  }
  for (int64_t k = 0; k < kc; ++k) {
    float* dst = out + k * MR;
    for (int i = 0; i < MR; ++i) dst[i] = i < rows ? alpha * a[i * lda + k] : 0.0f;
  }
}

// out: [kc][NR] = op(B)[0:kc, 0:cols], zero past cols.
// b: op(B) at the block's first element; op(B)[k, j] = b[k * ldb + j], or b[j * ldb + k]
// when trans.
template <int NR>
void pack_b_panel(bool trans, const float* b, int64_t ldb, int64_t cols, int64_t kc,
                  float* out) {
  if (!trans) {
    for (int64_t k = 0; k < kc; ++k) {
      const float* src = b + k * ldb;
      float* dst = out + k * NR;
      if (cols == NR) {
        for (int j = 0; j < NR; ++j) dst[j] = src[j];
      } else {
        for (int j = 0; j < NR; ++j) dst[j] = j < cols ? src[j] : 0.0f;
      }
    }
    return;
  }
  if (cols == NR) {
    const float* src[NR];
    for (int j = 0; j < NR; ++j) src[j] = b + j * ldb;
    for (int64_t k = 0; k < kc; ++k) {
      float* dst = out + k * NR;
      for (int j = 0; j < NR; ++j) dst[j] = src[j][k];
    }
    return;
  }
  for (int64_t k = 0; k < kc; ++k) {
    float* dst = out + k * NR;
    for (int j = 0; j < NR; ++j) dst[j] = j < cols ? b[j * ldb + k] : 0.0f;
  }
}

using PackAFn = void (*)(bool, const float*, int64_t, int64_t, int64_t, float, float*);
using PackBFn = void (*)(bool, const float*, int64_t, int64_t, int64_t, float*);

// The tile shapes of the kernels in this build; a kernel with another shape fails loudly.
PackAFn pack_a_for(int mr) {
  switch (mr) {
    case 4: return &pack_a_panel<4>;
    case 6: return &pack_a_panel<6>;
    case 8: return &pack_a_panel<8>;
    case 12: return &pack_a_panel<12>;
    case 14: return &pack_a_panel<14>;
    case 16: return &pack_a_panel<16>;
    default: std::abort();
  }
}

PackBFn pack_b_for(int nr) {
  switch (nr) {
    case 8: return &pack_b_panel<8>;
    case 16: return &pack_b_panel<16>;
    case 32: return &pack_b_panel<32>;
    case 48: return &pack_b_panel<48>;
    case 64: return &pack_b_panel<64>;
    default: std::abort();
  }
}

// ---------------------------------------------------------------------------------------------
// One thread's share.

struct Problem {
  bool trans_a, trans_b;
  int64_t M, N, K;
  float alpha;
  const float* A;  // op(A): [M, K], see gemm.h
  int64_t lda;
  const float* B;  // op(B): [K, N]
  int64_t ldb;
  float beta;
  float* C;  // [M, N]
  int64_t ldc;
};

const float* a_at(const Problem& p, int64_t i, int64_t k) {
  return p.trans_a ? p.A + k * p.lda + i : p.A + i * p.lda + k;
}

const float* b_at(const Problem& p, int64_t k, int64_t j) {
  return p.trans_b ? p.B + j * p.ldb + k : p.B + k * p.ldb + j;
}

// C[m0:m1, n0:n1] of the product, on the calling thread.
void gemm_rect(const Problem& p, const Ukernel& uk, int64_t m0, int64_t m1, int64_t n0,
               int64_t n1) {
  const int64_t mr = uk.mr, nr = uk.nr;
  const PackAFn pack_a = pack_a_for(uk.mr);
  const PackBFn pack_b = pack_b_for(uk.nr);
  const int64_t mc_max = std::min(kMc, (m1 - m0 + mr - 1) / mr * mr);
  const int64_t kc_max = std::min(kKc, p.K);
  const int64_t nc_max = std::min(kNc, (n1 - n0 + nr - 1) / nr * nr);
  const bool direct_b = !p.trans_b && (m1 - m0 + mr - 1) / mr <= kDirectBMaxRowTiles;
  // a_pack: [mc_max / mr][kc][mr]; b_pack: [nc_max / nr][kc][nr] (direct_b: one panel).
  float* a_pack = t_a_pack.get(static_cast<size_t>(mc_max * kc_max));
  float* b_pack = t_b_pack.get(static_cast<size_t>((direct_b ? nr : nc_max) * kc_max));

  for (int64_t i0 = m0; i0 < m1; i0 += kMc) {
    const int64_t mc = std::min(kMc, m1 - i0);
    for (int64_t p0 = 0; p0 < p.K; p0 += kKc) {
      const int64_t kc = std::min(kKc, p.K - p0);
      const float beta = p0 == 0 ? p.beta : 1.0f;
      for (int64_t ir = 0; ir < mc; ir += mr) {
        pack_a(p.trans_a, a_at(p, i0 + ir, p0), p.lda, std::min(mr, mc - ir), kc, p.alpha,
               a_pack + ir * kc);
      }
      for (int64_t j0 = n0; j0 < n1; j0 += kNc) {
        const int64_t nc = std::min(kNc, n1 - j0);
        if (!direct_b) {
          for (int64_t jr = 0; jr < nc; jr += nr) {
            pack_b(p.trans_b, b_at(p, p0, j0 + jr), p.ldb, std::min(nr, nc - jr), kc,
                   b_pack + jr * kc);
          }
        } else if (nc % nr != 0) {
          // The ragged last panel: the kernel reads nr columns, which B does not have.
          const int64_t jr = nc / nr * nr;
          pack_b(false, b_at(p, p0, j0 + jr), p.ldb, nc - jr, kc, b_pack);
        }
        for (int64_t ir = 0; ir < mc; ir += mr) {
          const float* a_panel = a_pack + ir * kc;  // [kc][mr]
          const int64_t m = std::min(mr, mc - ir);
          float* c_row = p.C + (i0 + ir) * p.ldc + j0;  // [m, nc] at ldc
          for (int64_t jr = 0; jr < nc; jr += nr) {
            const int64_t n = std::min(nr, nc - jr);
            if (!direct_b) {
              uk.fn(kc, a_panel, b_pack + jr * kc, nr, c_row + jr, p.ldc, m, n, beta);
            } else if (n == nr) {
              uk.fn(kc, a_panel, b_at(p, p0, j0 + jr), p.ldb, c_row + jr, p.ldc, m, n, beta);
            } else {
              uk.fn(kc, a_panel, b_pack, nr, c_row + jr, p.ldc, m, n, beta);
            }
          }
        }
      }
    }
  }
}

// C = beta * C, for K == 0 or alpha == 0. beta == 0 writes zeros without reading C.
void scale_c(int64_t M, int64_t N, float beta, float* C, int64_t ldc) {
  for (int64_t i = 0; i < M; ++i) {
    float* row = C + i * ldc;
    if (beta == 0.0f) {
      std::fill(row, row + N, 0.0f);
    } else if (beta != 1.0f) {
      for (int64_t j = 0; j < N; ++j) row[j] *= beta;
    }
  }
}

// A tm x tn grid of rectangles over C, in micro-tiles: thread t gets row block t / tn and
// column block t % tn.
struct Grid {
  int tm, tn;
};

// Per-thread cost in FMAs of a tm x tn grid: the largest rectangle's FMAs plus its copies.
// A copied element costs about as much as kPackCost FMAs (a core does ~100 FMA/ns at peak and
// copies ~6 floats/ns).
double grid_cost(const Problem& p, const Ukernel& uk, int tm, int tn) {
  constexpr double kPackCost = 16.0;
  const int64_t row_tiles = (p.M + uk.mr - 1) / uk.mr;
  const int64_t col_tiles = (p.N + uk.nr - 1) / uk.nr;
  const double rows = std::min<double>(p.M, (row_tiles + tm - 1) / tm * uk.mr);
  const double cols = static_cast<double>((col_tiles + tn - 1) / tn * uk.nr);
  const double k = static_cast<double>(p.K);
  const bool direct_b = !p.trans_b && (row_tiles + tm - 1) / tm <= kDirectBMaxRowTiles;
  return rows * cols * k + kPackCost * (rows * k + (direct_b ? 0.0 : cols * k));
}

Grid choose_grid(const Problem& p, const Ukernel& uk, int threads) {
  Grid best{1, threads};
  double best_cost = -1.0;
  for (int tm = 1; tm <= threads; ++tm) {
    if (threads % tm != 0) continue;
    const int tn = threads / tm;
    const double cost = grid_cost(p, uk, tm, tn);
    if (best_cost < 0.0 || cost < best_cost) {
      best = {tm, tn};
      best_cost = cost;
    }
  }
  return best;
}

// The rectangle of thread t of the grid: micro-tile aligned ranges of rows and columns.
void run_share(const Problem& p, const Ukernel& uk, Grid g, int t) {
  const int64_t row_tiles = (p.M + uk.mr - 1) / uk.mr;
  const int64_t col_tiles = (p.N + uk.nr - 1) / uk.nr;
  const int64_t ti = t / g.tn, tj = t % g.tn;
  const int64_t m0 = std::min(p.M, row_tiles * ti / g.tm * uk.mr);
  const int64_t m1 = std::min(p.M, row_tiles * (ti + 1) / g.tm * uk.mr);
  const int64_t n0 = std::min(p.N, col_tiles * tj / g.tn * uk.nr);
  const int64_t n1 = std::min(p.N, col_tiles * (tj + 1) / g.tn * uk.nr);
  if (m0 < m1 && n0 < n1) gemm_rect(p, uk, m0, m1, n0, n1);
}

}  // namespace

void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
          const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
          int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || alpha == 0.0f) {
    scale_c(M, N, beta, C, ldc);
    return;
  }
  const Problem p{trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc};
  const Ukernel& uk = current_kernel();
  const double fmas = static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K);
  const int threads = static_cast<int>(
      std::max<double>(1.0, std::min<double>(num_threads(), fmas / kMinFmasPerThread)));
  if (threads == 1) {
    gemm_rect(p, uk, 0, M, 0, N);
    return;
  }
#pragma omp parallel num_threads(threads)
  {
    // The team may be smaller than asked (nested parallelism, thread limits).
    const int team = omp_get_num_threads();
    const Grid g = choose_grid(p, uk, team);
    run_share(p, uk, g, omp_get_thread_num());
  }
}

const char* gemm_isa() { return current_kernel().name; }

bool gemm_force_isa(const char* isa) {
  if (isa == nullptr || std::strcmp(isa, "auto") == 0) {
    g_forced.store(nullptr, std::memory_order_relaxed);
    return true;
  }
  const Ukernel* k = kernel_by_name(isa);
  if (k == nullptr) return false;
  g_forced.store(k, std::memory_order_relaxed);
  return true;
}

void gemm_naive(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
                int64_t ldc) {
  for (int64_t i = 0; i < M; ++i) {
    for (int64_t j = 0; j < N; ++j) {
      float sum = 0.0f;
      if (alpha != 0.0f) {
        for (int64_t k = 0; k < K; ++k) {
          const float a = trans_a ? A[k * lda + i] : A[i * lda + k];
          const float b = trans_b ? B[j * ldb + k] : B[k * ldb + j];
          sum += a * b;
        }
      }
      float& c = C[i * ldc + j];
      c = beta == 0.0f ? alpha * sum : alpha * sum + beta * c;
    }
  }
}

}  // namespace reel::cpu
