#pragma once
// The one n-dimensional loop behind every strided CPU kernel (binary ops, copies, reductions).
#include <omp.h>

#include <array>
#include <cstdint>

#include "reel/kernels/common.h"
#include "reel/kernels/cpu/parallel.h"

namespace reel::cpu {

// Below this many elements a kernel runs on the calling thread: a parallel region costs more.
constexpr int64_t kParallelMinElements = 1 << 15;

// Below this much work (elements times a cost per element: 1 for a copy or an add, more for an
// exp) a vector kernel runs on the calling thread. A parallel region costs 20 to 50 us on our VMs
// with the passive wait policy (measured), the time to stream about 1 MiB through one core.
constexpr int64_t kParallelMinWork = 1 << 18;

// Merges adjacent dimensions that every operand walks as one (stride[d] == stride[d + 1] *
// shape[d + 1]) and drops dimensions of extent 1, in place. shape: [ndim], strides[k]: [ndim] for
// operand k. Returns the new ndim (0 for a single element).
template <int NOps>
int coalesce_dims(int64_t* shape, const std::array<int64_t*, NOps>& strides, int ndim) {
  int out = 0;
  for (int d = 0; d < ndim; ++d) {
    if (shape[d] == 1) continue;
    bool merge = out > 0;
    for (int k = 0; k < NOps && merge; ++k) merge = strides[k][out - 1] == strides[k][d] * shape[d];
    if (merge) {
      shape[out - 1] *= shape[d];
      for (int k = 0; k < NOps; ++k) strides[k][out - 1] = strides[k][d];
    } else {
      shape[out] = shape[d];
      for (int k = 0; k < NOps; ++k) strides[k][out] = strides[k][d];
      ++out;
    }
  }
  return out;
}

// Runs fn(begin, end) over [0, n): on the calling thread when n * cost < kParallelMinWork, else as
// one contiguous range per thread, each boundary a multiple of `grain`.
template <class Fn>
void for_each_range(int64_t n, int64_t cost, int64_t grain, Fn&& fn) {
  const int threads = num_threads();
  if (threads <= 1 || n * cost < kParallelMinWork || n < 2 * grain) {
    if (n > 0) fn(int64_t{0}, n);
    return;
  }
#pragma omp parallel num_threads(threads)
  {
    const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
    const int64_t blocks = (n + grain - 1) / grain;
    const int64_t b = blocks * t / nt * grain, e = blocks * (t + 1) / nt * grain;
    if (b < n) fn(b, e < n ? e : n);
  }
}

// Walks an index space of extents shape: [ndim] one innermost row at a time. For operand k,
// strides[k]: [ndim] element strides. Calls fn(offsets, inner_extent, inner_strides) with
// offsets[k] the element offset of the row's first element in operand k. Rows are split
// across threads when the space is large and `parallel` is set (the rows must then be
// independent for every operand written).
template <int NOps, class Fn>
void for_each_row(const int64_t* shape, int ndim, const std::array<const int64_t*, NOps>& strides,
                  bool parallel, Fn&& fn) {
  if (ndim == 0) {
    std::array<int64_t, NOps> off{};
    std::array<int64_t, NOps> inner{};
    fn(off, int64_t{1}, inner);
    return;
  }
  for (int d = 0; d < ndim; ++d)
    if (shape[d] == 0) return;
  const int64_t inner_n = shape[ndim - 1];
  std::array<int64_t, NOps> inner_s{};
  for (int k = 0; k < NOps; ++k) inner_s[k] = strides[k][ndim - 1];
  int64_t rows = 1;
  for (int d = 0; d < ndim - 1; ++d) rows *= shape[d];

  auto run_rows = [&](int64_t r0, int64_t r1) {
    if (r0 >= r1) return;
    // Multi-index of row r0 over the outer ndim-1 dimensions.
    int64_t idx[kMaxDims] = {0};
    int64_t rem = r0;
    for (int d = ndim - 2; d >= 0; --d) {
      idx[d] = rem % shape[d];
      rem /= shape[d];
    }
    std::array<int64_t, NOps> off{};
    for (int k = 0; k < NOps; ++k)
      for (int d = 0; d < ndim - 1; ++d) off[k] += idx[d] * strides[k][d];
    for (int64_t r = r0; r < r1; ++r) {
      fn(off, inner_n, inner_s);
      for (int d = ndim - 2; d >= 0; --d) {  // odometer increment
        ++idx[d];
        for (int k = 0; k < NOps; ++k) off[k] += strides[k][d];
        if (idx[d] < shape[d]) break;
        for (int k = 0; k < NOps; ++k) off[k] -= idx[d] * strides[k][d];
        idx[d] = 0;
      }
    }
  };

  const int threads = num_threads();
  if (!parallel || threads <= 1 || rows < 2 || rows * inner_n < kParallelMinElements) {
    run_rows(0, rows);
    return;
  }
#pragma omp parallel num_threads(threads)
  {
    const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
    run_rows(rows * t / nt, rows * (t + 1) / nt);
  }
}

}  // namespace reel::cpu
