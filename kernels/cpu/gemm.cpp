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
// When C has few rows (M small: LSTM steps) every element of B is used by only a few
// micro-kernel calls, so copying B would cost about as much as the FMAs that use it: the
// micro-kernel then reads B in place (row stride ldb) and only a ragged last panel is copied.
//
// Threads: see "Threads" below. Each thread packs into its own buffers, which grow and are
// never returned, so a call in steady state touches no fresh page.

#include "reel/kernels/gemm.h"

#include <omp.h>
#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <new>
#include <thread>
#include <vector>

#include "reel/kernels/cpu/isa.h"
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
// Transposing copy for packing, see gemm_avx512.cpp.
void gemm_pack_transpose_avx512(const float* src, int64_t ld, int64_t rows, int64_t kc, float alpha,
                                float* out, int64_t out_stride, int64_t width);
// Tile shapes of those kernels, defined beside them.
extern const int gemm_avx512_mr, gemm_avx512_nr, gemm_avx2_mr, gemm_avx2_nr;

}  // namespace gemm_detail

namespace {

using UkernelFn = void (*)(int64_t kc, const float* a, const float* b, int64_t ldb, float* c,
                           int64_t ldc, int64_t m, int64_t n, float beta);

// out[k * out_stride + i] = alpha * src[i * ld + k] for i < rows, k < kc; 0 for
// rows <= i < width <= 16. Optional: the packing routines below fall back to scalar code.
using TransposeFn = void (*)(const float* src, int64_t ld, int64_t rows, int64_t kc, float alpha,
                             float* out, int64_t out_stride, int64_t width);

struct Ukernel {
  const char* name;
  UkernelFn fn;
  int mr;
  int nr;
  TransposeFn transpose;
};

// Cache blocks (the largest; even_block() evens them out). kKc x mr of A (14 x 384 x 4 B =
// 21 KiB) sits in L1 while kKc x kNc of B (384 KiB) streams from L2 (1 MiB per core); kMc x kKc
// of A (3 MiB) sits in L3. Chosen by measurement on Zen 5 among kKc 256..512, kNc 128..512.
constexpr int64_t kKc = 384;
constexpr int64_t kNc = 256;
constexpr int64_t kMc = 2048;

// Each thread gets at least this many FMAs (M * N * K / threads); smaller products run on
// fewer threads, down to the calling thread alone. With OMP_WAIT_POLICY=passive a parallel
// region costs 20 to 50 us on our VMs (measured), the time of about 2 to 5 M FMAs.
constexpr double kMinFmasPerThread = 4.0e6;

// A product with at most this many micro-tile rows (M <= 56 with the AVX-512 kernel) reads B
// in place. Decided per call, not per rectangle: in place, B's rows are far apart, which costs
// more the more rows of B a rectangle reads (measured: M = 64, N = 6272 ran at half speed).
constexpr int64_t kDirectBMaxRowTiles = 4;

// ---------------------------------------------------------------------------------------------
// The portable micro-kernel: 4 x 8 accumulators that the compiler keeps in 8 SSE registers.

constexpr int kGenericMr = 4;
constexpr int kGenericNr = 8;

void ukernel_generic(int64_t kc, const float* a, const float* b, int64_t ldb, float* c, int64_t ldc,
                     int64_t m, int64_t n, float beta) {
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
  static const Ukernel k{"generic", &ukernel_generic, kGenericMr, kGenericNr, nullptr};
  return k;
}

// nullptr when this CPU (and OS) cannot run that kernel or the name is unknown.
const Ukernel* kernel_by_name(const char* name) {
  Isa isa;
  if (!isa_from_name(name, &isa) || !cpu_has(isa)) return nullptr;
  switch (isa) {
    case Isa::Avx512: {
      static const Ukernel k{"avx512", &gemm_detail::gemm_ukernel_avx512,
                             gemm_detail::gemm_avx512_mr, gemm_detail::gemm_avx512_nr,
                             &gemm_detail::gemm_pack_transpose_avx512};
      return &k;
    }
    case Isa::Avx2: {
      static const Ukernel k{"avx2", &gemm_detail::gemm_ukernel_avx2, gemm_detail::gemm_avx2_mr,
                             gemm_detail::gemm_avx2_nr, nullptr};
      return &k;
    }
    case Isa::Generic:
      return &generic_kernel();
  }
  return nullptr;
}

const Ukernel& auto_kernel() {
  static const Ukernel* const k = [] {
    if (const char* env = std::getenv("REEL_GEMM_ISA")) {
      if (const Ukernel* forced = kernel_by_name(env)) return forced;
    }
    return kernel_by_name(isa_name(best_isa()));
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
      size_t bytes = std::max(n, capacity_ + capacity_ / 2) * sizeof(float);
      std::free(data_);
      data_ = nullptr;
      capacity_ = 0;
      // Big buffers are 2 MiB aligned and ask for transparent huge pages: fewer TLB misses
      // and one page fault per 2 MiB instead of 512.
      const size_t huge = size_t{2} << 20;
      const size_t align = bytes >= huge ? huge : 64;
      bytes = (bytes + align - 1) / align * align;
      float* data = static_cast<float*>(std::aligned_alloc(align, bytes));
      if (data == nullptr) throw std::bad_alloc();
      if (align == huge) madvise(data, bytes, MADV_HUGEPAGE);
      data_ = data;
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

// out: [ceil(rows / MR)][kc][MR] = alpha * op(A)[0:rows, 0:kc], zero past rows.
// a: op(A) at the block's first element; op(A)[i, k] = a[i * lda + k], or a[k * lda + i]
// when trans.
template <int MR>
void pack_a_block(bool trans, const float* a, int64_t lda, int64_t rows, int64_t kc, float alpha,
                  TransposeFn transpose, float* out) {
  const int64_t full = rows / MR * MR;
  if (trans) {
    // Rows of A are contiguous along M: read each once, left to right.
    for (int64_t k = 0; k < kc; ++k) {
      const float* src = a + k * lda;
      float* dst = out + k * MR;
      for (int64_t i0 = 0; i0 < full; i0 += MR) {
        float* d = dst + i0 * kc;
        for (int i = 0; i < MR; ++i) d[i] = alpha * src[i0 + i];
      }
      if (full < rows) {
        float* d = dst + full * kc;
        for (int i = 0; i < MR; ++i) d[i] = full + i < rows ? alpha * src[full + i] : 0.0f;
      }
    }
    return;
  }
  // Rows of A are contiguous along K: a transpose, MR rows at a time.
  if (transpose != nullptr && MR <= 16) {
    for (int64_t i0 = 0; i0 < rows; i0 += MR) {
      transpose(a + i0 * lda, lda, std::min<int64_t>(MR, rows - i0), kc, alpha, out + i0 * kc, MR,
                MR);
    }
    return;
  }
  for (int64_t i0 = 0; i0 < full; i0 += MR) {
    const float* src[MR];
    for (int i = 0; i < MR; ++i) src[i] = a + (i0 + i) * lda;
    float* dst = out + i0 * kc;
    for (int64_t k = 0; k < kc; ++k) {
      for (int i = 0; i < MR; ++i) dst[k * MR + i] = alpha * src[i][k];
    }
  }
  if (full < rows) {
    float* dst = out + full * kc;
    for (int64_t k = 0; k < kc; ++k) {
      for (int i = 0; i < MR; ++i) {
        dst[k * MR + i] = full + i < rows ? alpha * a[(full + i) * lda + k] : 0.0f;
      }
    }
  }
}

constexpr int64_t kPackPrefetchRows = 8;

// out: [ceil(cols / NR)][kc][NR] = op(B)[0:kc, 0:cols], zero past cols.
// b: op(B) at the block's first element; op(B)[k, j] = b[k * ldb + j], or b[j * ldb + k]
// when trans.
//
// Rows given by pointers (gemm_rows_b): rows is not null, b is unused, and op(B)[k, j] of the
// block is rows[k][j] (not trans; rows and each pointer already offset to the block), or
// rows[j][k] (trans).
template <int NR>
void pack_b_block(bool trans, const float* b, int64_t ldb, const float* const* rows, int64_t cols,
                  int64_t kc, TransposeFn transpose, float* out) {
  const int64_t full = cols / NR * NR;
  if (!trans) {
    // Rows of B are contiguous along N: read each once, left to right (reading a panel at a
    // time would touch a new page every row).
    for (int64_t k = 0; k < kc; ++k) {
      const float* src = rows ? rows[k] : b + k * ldb;
      float* dst = out + k * NR;
      // The hardware prefetcher does not follow short runs at a long stride: fetch the row a
      // few ahead, one cache line (16 floats) at a time.
      if (k + kPackPrefetchRows < kc) {
        const float* ahead = rows ? rows[k + kPackPrefetchRows] : src + kPackPrefetchRows * ldb;
        for (int64_t j = 0; j < cols; j += 16) __builtin_prefetch(ahead + j);
      }
      for (int64_t j0 = 0; j0 < full; j0 += NR) {
        float* d = dst + j0 * kc;
        std::memcpy(d, src + j0, sizeof(float) * NR);  // vector moves (a loop stays scalar)
      }
      if (full < cols) {
        float* d = dst + full * kc;
        for (int j = 0; j < NR; ++j) d[j] = full + j < cols ? src[full + j] : 0.0f;
      }
    }
    return;
  }
  // Rows of B are contiguous along K: a transpose, NR rows at a time.
  if (transpose != nullptr && NR % 16 == 0 && rows == nullptr) {
    for (int64_t j0 = 0; j0 < cols; j0 += NR) {
      for (int64_t h = 0; h < NR; h += 16) {
        const int64_t n = std::max<int64_t>(0, std::min<int64_t>(16, cols - j0 - h));
        transpose(b + (j0 + h) * ldb, ldb, n, kc, 1.0f, out + j0 * kc + h, NR, 16);
      }
    }
    return;
  }
  for (int64_t j0 = 0; j0 < full; j0 += NR) {
    const float* src[NR];
    for (int j = 0; j < NR; ++j) src[j] = rows ? rows[j0 + j] : b + (j0 + j) * ldb;
    float* dst = out + j0 * kc;
    for (int64_t k = 0; k < kc; ++k) {
      for (int j = 0; j < NR; ++j) dst[k * NR + j] = src[j][k];
    }
  }
  if (full < cols) {
    float* dst = out + full * kc;
    for (int64_t k = 0; k < kc; ++k) {
      for (int j = 0; j < NR; ++j) {
        const float* col = full + j >= cols ? nullptr
                           : rows           ? rows[full + j]
                                            : b + (full + j) * ldb;
        dst[k * NR + j] = col ? col[k] : 0.0f;
      }
    }
  }
}

using PackAFn = void (*)(bool, const float*, int64_t, int64_t, int64_t, float, TransposeFn, float*);
using PackBFn = void (*)(bool, const float*, int64_t, const float* const*, int64_t, int64_t,
                         TransposeFn, float*);

// The tile shapes of the kernels in this build; a kernel with another shape fails loudly.
PackAFn pack_a_for(int mr) {
  switch (mr) {
    case 4:
      return &pack_a_block<4>;
    case 6:
      return &pack_a_block<6>;
    case 8:
      return &pack_a_block<8>;
    case 12:
      return &pack_a_block<12>;
    case 14:
      return &pack_a_block<14>;
    case 16:
      return &pack_a_block<16>;
    default:
      std::abort();
  }
}

PackBFn pack_b_for(int nr) {
  switch (nr) {
    case 8:
      return &pack_b_block<8>;
    case 16:
      return &pack_b_block<16>;
    case 32:
      return &pack_b_block<32>;
    case 48:
      return &pack_b_block<48>;
    case 64:
      return &pack_b_block<64>;
    default:
      std::abort();
  }
}

// ---------------------------------------------------------------------------------------------
// One rectangle of C.

struct Problem {
  bool trans_a, trans_b;
  int64_t M, N, K;
  float alpha;
  const float* A;  // op(A): [M, K], see gemm.h
  int64_t lda;
  const float* B;  // op(B): [K, N]
  int64_t ldb;
  // gemm_rows_b: B given by row pointers instead (B unused): op(B)[k, j] = b_rows[k][j], or
  // b_rows[j][k] when trans_b.
  const float* const* b_rows;
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

// The size of the blocks that cut n into as few blocks of at most max_block as possible, as
// even as possible, rounded up to a multiple of `multiple` (a short last block wastes loads).
int64_t even_block(int64_t n, int64_t max_block, int64_t multiple) {
  const int64_t blocks = (n + max_block - 1) / max_block;
  const int64_t size = (n + blocks - 1) / blocks;
  return (size + multiple - 1) / multiple * multiple;
}

int64_t round_up(int64_t n, int64_t multiple) { return (n + multiple - 1) / multiple * multiple; }

// Whether the call reads B in place (see the top comment and kDirectBMaxRowTiles).
bool reads_b_in_place(const Problem& p, const Ukernel& uk) {
  return !p.trans_b && p.b_rows == nullptr && (p.M + uk.mr - 1) / uk.mr <= kDirectBMaxRowTiles;
}

// Packs the block op(B)[p0 : p0 + kc, j0 : j0 + nc] (from memory or from row pointers).
void pack_b_at(const Problem& p, PackBFn pack_b, TransposeFn transpose, int64_t p0, int64_t j0,
               int64_t nc, int64_t kc, float* out) {
  if (p.b_rows == nullptr) {
    pack_b(p.trans_b, b_at(p, p0, j0), p.ldb, nullptr, nc, kc, transpose, out);
    return;
  }
  // The block's row pointers, offset to its first column (not trans) or row (trans).
  thread_local std::vector<const float*> rows;
  const int64_t n_rows = p.trans_b ? nc : kc, first = p.trans_b ? j0 : p0;
  const int64_t offset = p.trans_b ? p0 : j0;
  rows.resize(static_cast<size_t>(n_rows));
  for (int64_t i = 0; i < n_rows; ++i) rows[i] = p.b_rows[first + i] + offset;
  pack_b(p.trans_b, nullptr, 0, rows.data(), nc, kc, transpose, out);
}

// C[m0:m1, n0:n1] of the product, on the calling thread. m0 is a multiple of mr.
// a_shared: all of op(A) packed, or nullptr to pack A here: for each K block p0 (of
// even_block(K, kKc, 1)) a [round_up(M, mr) / mr][kc][mr] block at a_shared + p0 * round_up(M, mr).
void gemm_rect(const Problem& p, const Ukernel& uk, int64_t m0, int64_t m1, int64_t n0, int64_t n1,
               const float* a_shared) {
  const int64_t mr = uk.mr, nr = uk.nr;
  const PackAFn pack_a = pack_a_for(uk.mr);
  const PackBFn pack_b = pack_b_for(uk.nr);
  const int64_t mc_max = a_shared != nullptr ? round_up(m1 - m0, mr) : even_block(m1 - m0, kMc, mr);
  const int64_t kc_max = even_block(p.K, kKc, 1);
  const int64_t nc_max = even_block(n1 - n0, kNc, nr);
  const int64_t m_pad = round_up(p.M, mr);
  const bool direct_b = reads_b_in_place(p, uk);
  // a_pack: [mc_max / mr][kc][mr]; b_pack: [nc_max / nr][kc][nr] (direct_b: one panel).
  float* a_pack =
      a_shared != nullptr ? nullptr : t_a_pack.get(static_cast<size_t>(mc_max * kc_max));
  float* b_pack = t_b_pack.get(static_cast<size_t>((direct_b ? nr : nc_max) * kc_max));

  for (int64_t i0 = m0; i0 < m1; i0 += mc_max) {
    const int64_t mc = std::min(mc_max, m1 - i0);
    for (int64_t p0 = 0; p0 < p.K; p0 += kc_max) {
      const int64_t kc = std::min(kc_max, p.K - p0);
      const float beta = p0 == 0 ? p.beta : 1.0f;
      const float* a_block = nullptr;  // [mc / mr][kc][mr]
      if (a_shared != nullptr) {
        a_block = a_shared + p0 * m_pad + i0 * kc;
      } else {
        pack_a(p.trans_a, a_at(p, i0, p0), p.lda, mc, kc, p.alpha, uk.transpose, a_pack);
        a_block = a_pack;
      }
      for (int64_t j0 = n0; j0 < n1; j0 += nc_max) {
        const int64_t nc = std::min(nc_max, n1 - j0);
        if (!direct_b) {
          pack_b_at(p, pack_b, uk.transpose, p0, j0, nc, kc, b_pack);
        } else if (nc % nr != 0) {
          // The ragged last panel: the kernel reads nr columns, which B does not have.
          const int64_t jr = nc / nr * nr;
          pack_b(false, b_at(p, p0, j0 + jr), p.ldb, nullptr, nc - jr, kc, nullptr, b_pack);
        }
        for (int64_t ir = 0; ir < mc; ir += mr) {
          const float* a_panel = a_block + ir * kc;  // [kc][mr]
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

// ---------------------------------------------------------------------------------------------
// Threads.
//
// C is cut into a tm x tn grid of rectangles, aligned to micro-tiles, which the team's threads
// take from a shared counter. Each rectangle packs its own rows of A and columns of B, except
// that when the grid does not split M and A is small, the team packs all of A once, K block by
// K block, into the calling thread's buffer. choose_grid() picks the number of rectangles (1 to
// 8 per thread) and their shape with a small model of the call: more rectangles than threads
// balance the load, and let running threads take up the slack of a late one (a worker woken
// from a passive wait starts 10 to 30 us late, measured), but copy more.

// A grid of rectangles: rectangle r covers row block r / tn and column block r % tn.
struct Grid {
  int tm, tn;
};

// Largest packed A (floats, 2 MiB) that the team shares: it is read from L3 by every
// rectangle. A larger A is packed per rectangle, in row blocks of kMc.
constexpr int64_t kSharedAMax = int64_t{1} << 19;

bool can_share_a(const Problem& p, const Ukernel& uk) {
  return round_up(p.M, uk.mr) <= kMc && round_up(p.M, uk.mr) * p.K <= kSharedAMax;
}

// Rectangle r of the grid: rows [m0, m1) and columns [n0, n1), aligned to micro-tiles.
struct Rect {
  int64_t m0, m1, n0, n1;
};

Rect rect_of(const Problem& p, const Ukernel& uk, Grid g, int r) {
  const int64_t row_tiles = (p.M + uk.mr - 1) / uk.mr;
  const int64_t col_tiles = (p.N + uk.nr - 1) / uk.nr;
  const int64_t ti = r / g.tn, tj = r % g.tn;
  return {std::min(p.M, row_tiles * ti / g.tm * uk.mr),
          std::min(p.M, row_tiles * (ti + 1) / g.tm * uk.mr),
          std::min(p.N, col_tiles * tj / g.tn * uk.nr),
          std::min(p.N, col_tiles * (tj + 1) / g.tn * uk.nr)};
}

// Estimated duration, in FMAs, of a call whose `team` threads take the rectangles of grid g in
// order, each rectangle going to the first thread that is free. A rectangle costs its FMAs, plus
// kPackCost per float that it packs (at peak a core does ~100 FMA/ns and packs ~6 floats/ns),
// plus kReadCost per float of a shared A or an in-place B that it streams from L2 or L3 again
// (narrow rectangles reuse less). Workers start kWakeFmas late (a wake from a passive wait).
double makespan(const Problem& p, const Ukernel& uk, Grid g, int team) {
  constexpr double kPackCost = 16.0;
  constexpr double kReadCost = 4.0;
  constexpr double kWakeFmas = 2.0e6;
  const double k = static_cast<double>(p.K);
  const bool share_a = g.tm == 1 && can_share_a(p, uk);
  const bool direct_b = reads_b_in_place(p, uk);
  std::vector<double> free_at(static_cast<size_t>(team), kWakeFmas);
  free_at[0] = 0.0;
  if (share_a) {
    for (double& t : free_at) t += kPackCost * static_cast<double>(p.M) * k / team;
  }
  for (int r = 0; r < g.tm * g.tn; ++r) {
    const Rect rc = rect_of(p, uk, g, r);
    if (rc.m0 >= rc.m1 || rc.n0 >= rc.n1) continue;
    const double rows = static_cast<double>(rc.m1 - rc.m0);
    const double cols = static_cast<double>(round_up(rc.n1 - rc.n0, 16));
    const double a_cost = (share_a ? kReadCost : kPackCost) * rows * k;
    const double b_cost = (direct_b ? kReadCost : kPackCost) * cols * k;
    *std::min_element(free_at.begin(), free_at.end()) += rows * cols * k + a_cost + b_cost;
  }
  return *std::max_element(free_at.begin(), free_at.end());
}

// The grid of team, 2, 4 or 8 times team rectangles with the shortest makespan(), the fewest
// rectangles on a tie. More rectangles than threads balance the load (and hide a late worker)
// but copy and stream more.
Grid choose_grid(const Problem& p, const Ukernel& uk, int team) {
  Grid best{1, team};
  double best_time = -1.0;
  for (int per_thread : {1, 2, 4, 8}) {
    const int items = team * per_thread;
    for (int tm = 1; tm <= items; ++tm) {
      if (items % tm != 0) continue;
      const Grid g{tm, items / tm};
      const double time = makespan(p, uk, g, team);
      if (best_time < 0.0 || time < best_time) {
        best = g;
        best_time = time;
      }
    }
  }
  return best;
}

// Rectangle r of the grid, on the calling thread.
void run_item(const Problem& p, const Ukernel& uk, Grid g, int r, const float* a_shared) {
  const Rect rc = rect_of(p, uk, g, r);
  if (rc.m0 < rc.m1 && rc.n0 < rc.n1) gemm_rect(p, uk, rc.m0, rc.m1, rc.n0, rc.n1, a_shared);
}

// Waits until counter >= target or max_us passed: spins (with pause) for the first 20 us, then
// yields the CPU between checks, in case the thread it waits for is not running.
void wait_until(const std::atomic<int>& counter, int target, double max_us) {
  constexpr double kSpinUs = 20.0;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; counter.load(std::memory_order_acquire) < target; ++i) {
    if ((i & 63) != 63) {
      __builtin_ia32_pause();
      continue;
    }
    const double us =
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count();
    if (us > max_us) return;
    if (us > kSpinUs) std::this_thread::yield();
  }
}

// The part of one call that the team shares.
struct TeamWork {
  std::atomic<int> next_block{0};   // next K block of the shared A to pack
  std::atomic<int> blocks_done{0};  // K blocks of the shared A packed
  std::atomic<int> next_item{0};    // next rectangle
  std::atomic<int> threads_done{0};
};

void run_team(const Problem& p, const Ukernel& uk, int team, int thread, TeamWork& work,
              float* a_shared) {
  const Grid g = choose_grid(p, uk, team);
  const int items = g.tm * g.tn;
  const bool share_a = g.tm == 1 && a_shared != nullptr;
  if (share_a) {
    const int64_t kc_max = even_block(p.K, kKc, 1);
    const int blocks = static_cast<int>((p.K + kc_max - 1) / kc_max);
    const int64_t m_pad = round_up(p.M, uk.mr);
    const PackAFn pack_a = pack_a_for(uk.mr);
    for (int b; (b = work.next_block.fetch_add(1, std::memory_order_relaxed)) < blocks;) {
      const int64_t p0 = b * kc_max, kc = std::min(kc_max, p.K - p0);
      pack_a(p.trans_a, a_at(p, 0, p0), p.lda, p.M, kc, p.alpha, uk.transpose,
             a_shared + p0 * m_pad);
      work.blocks_done.fetch_add(1, std::memory_order_release);
    }
    // Waits only for blocks that other threads are packing right now.
    wait_until(work.blocks_done, blocks, 1e12);
  }
  for (int r; (r = work.next_item.fetch_add(1, std::memory_order_relaxed)) < items;) {
    run_item(p, uk, g, r, share_a ? a_shared : nullptr);
  }
  work.threads_done.fetch_add(1, std::memory_order_release);
  // The calling thread waits a little for the others before the region's closing barrier:
  // falling asleep there costs another wake-up (10 to 30 us) when the last worker arrives.
  if (thread == 0) wait_until(work.threads_done, team, 50.0);
}

thread_local PackBuffer t_a_shared;

}  // namespace

namespace {

void run_gemm(const Problem& p) {
  const int64_t M = p.M, N = p.N, K = p.K;
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || p.alpha == 0.0f) {
    scale_c(M, N, p.beta, p.C, p.ldc);
    return;
  }
  const Ukernel& uk = current_kernel();
  const double fmas = static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K);
  const int threads = static_cast<int>(
      std::max<double>(1.0, std::min<double>(num_threads(), fmas / kMinFmasPerThread)));
  if (threads == 1) {
    gemm_rect(p, uk, 0, M, 0, N, nullptr);
    return;
  }
  // a_shared: [K blocks][round_up(M, mr) / mr][kc][mr], see gemm_rect.
  float* a_shared =
      can_share_a(p, uk) ? t_a_shared.get(static_cast<size_t>(round_up(M, uk.mr) * K)) : nullptr;
  TeamWork work;
#pragma omp parallel num_threads(threads)
  // The team may be smaller than asked (nested parallelism, thread limits).
  run_team(p, uk, omp_get_num_threads(), omp_get_thread_num(), work, a_shared);
}

}  // namespace

void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
          int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  run_gemm({trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, nullptr, beta, C, ldc});
}

void gemm_rows_b(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                 const float* A, int64_t lda, const float* const* b_rows, float beta, float* C,
                 int64_t ldc) {
  run_gemm({trans_a, trans_b, M, N, K, alpha, A, lda, nullptr, 0, b_rows, beta, C, ldc});
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
