#include "reel/kernels/reduce.h"

#include <omp.h>

#include <cstddef>
#include <vector>

#include "reel/kernels/cpu/nd_loop.h"
#include "reel/kernels/cpu/vec_kernels.h"

namespace reel::cpu {

namespace {

// Row sums of the calling thread's last reduction: grown, never returned (no fresh pages).
thread_local std::vector<double> t_row_sums;

// Columns of a kept innermost dimension are summed in blocks of this many, so that the block of
// `out` stays in L1 while every row adds into it.
constexpr int64_t kColumnBlock = 4096;

}  // namespace

void sum_reduce(const float* in, const int64_t* shape, int ndim, float* out,
                const int64_t* out_strides) {
  int64_t sh[kMaxDims], si[kMaxDims], so[kMaxDims];
  for (int d = 0; d < ndim; ++d) {
    sh[d] = shape[d];
    so[d] = out_strides[d];
  }
  if (shape_product(sh, ndim) == 0) return;
  contiguous_strides(sh, ndim, si);
  const int nd = coalesce_dims<2>(sh, {si, so}, ndim);
  const VecKernels& vk = vec_table();
  if (nd == 0) {
    *out += *in;
    return;
  }
  const int64_t inner = sh[nd - 1];
  const int64_t rows = shape_product(sh, nd - 1);

  if (so[nd - 1] == 0) {
    // The innermost dimension is reduced: one sum per row, computed in parallel (rows are
    // independent), then added into `out` in row order on this thread.
    if (nd == 1) {  // everything reduced: one partial sum per thread, added in thread order
      constexpr int64_t kMaxPieces = 64;
      double partial[kMaxPieces] = {0.0};
      int64_t pieces = inner / 4096;
      pieces = pieces < 1 ? 1 : pieces > kMaxPieces ? kMaxPieces : pieces;
      const int64_t grain = (inner + pieces - 1) / pieces;
      for_each_range(pieces, grain, 1, [&](int64_t b, int64_t e) {
        for (int64_t c = b; c < e; ++c) {
          const int64_t lo = c * grain, hi = lo + grain < inner ? lo + grain : inner;
          if (lo < hi) partial[c] = vk.sum(in + lo, hi - lo);
        }
      });
      double total = 0.0;
      for (double p : partial) total += p;
      *out += static_cast<float>(total);
      return;
    }
    std::vector<double>& sums = t_row_sums;  // [rows]
    if (static_cast<int64_t>(sums.size()) < rows) sums.resize(static_cast<std::size_t>(rows));
    double* ps = sums.data();
    for_each_range(rows, inner, 1, [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) ps[r] = vk.sum(in + r * inner, inner);
    });
    int64_t r = 0;
    // Walks the rows' output offsets in order (a row of extent 1 per call).
    sh[nd - 1] = 1;
    for_each_row<2>(sh, nd, {si, so}, false,
                    [&](const std::array<int64_t, 2>& off, int64_t, const std::array<int64_t, 2>&) {
                      out[off[1]] += static_cast<float>(ps[r++]);
                    });
    return;
  }

  // The innermost dimension is kept: rows add into rows of `out`, several into the same one, so
  // threads split the columns, in blocks that keep their piece of `out` in L1.
  const int64_t ostride = so[nd - 1];
  const int64_t blocks = (inner + kColumnBlock - 1) / kColumnBlock;
  for_each_range(blocks, rows * kColumnBlock, 1, [&](int64_t b, int64_t e) {
    for (int64_t blk = b; blk < e; ++blk) {
      const int64_t c0 = blk * kColumnBlock;
      const int64_t len = inner - c0 < kColumnBlock ? inner - c0 : kColumnBlock;
      for_each_row<2>(
          sh, nd, {si, so}, false,
          [&](const std::array<int64_t, 2>& off, int64_t, const std::array<int64_t, 2>&) {
            const float* pi = in + off[0] + c0;
            float* po = out + off[1] + c0 * ostride;
            if (ostride == 1) {
              vk.axpy(1.0f, pi, po, len);
            } else {
              for (int64_t i = 0; i < len; ++i) po[i * ostride] += pi[i];
            }
          });
    }
  });
}

}  // namespace reel::cpu
