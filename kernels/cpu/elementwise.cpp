#include "reel/kernels/elementwise.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

#include "reel/kernels/cpu/nd_loop.h"
#include "reel/kernels/cpu/vec_kernels.h"

namespace reel::cpu {

// ---------------------------------------------------------------------------------------------
// Run-time choice of the vector bodies.

namespace {

Isa auto_isa() {
  static const Isa isa = [] {
    Isa forced;
    if (isa_from_name(std::getenv("REEL_VEC_ISA"), &forced) && cpu_has(forced)) return forced;
    return best_isa();
  }();
  return isa;
}

// -1: the automatic choice; else an Isa forced by vec_force_isa().
std::atomic<int> g_forced{-1};

Isa current_isa() {
  const int f = g_forced.load(std::memory_order_relaxed);
  return f < 0 ? auto_isa() : static_cast<Isa>(f);
}

}  // namespace

const VecKernels& vec_kernels(Isa isa) {
  switch (isa) {
    case Isa::Avx512:
      return vec_kernels_avx512();
    case Isa::Avx2:
      return vec_kernels_avx2();
    case Isa::Generic:
      break;
  }
  return vec_kernels_generic();
}

const VecKernels& vec_table() { return vec_kernels(current_isa()); }

const char* vec_isa() { return isa_name(current_isa()); }

bool vec_force_isa(const char* isa) {
  if (isa == nullptr || std::strcmp(isa, "auto") == 0) {
    g_forced.store(-1, std::memory_order_relaxed);
    return true;
  }
  Isa i;
  if (!isa_from_name(isa, &i) || !cpu_has(i)) return false;
  g_forced.store(static_cast<int>(i), std::memory_order_relaxed);
  return true;
}

// ---------------------------------------------------------------------------------------------
// Kernels

namespace {

// Work per element for the parallel split (kParallelMinWork): a vector exp costs about as much as
// streaming 8 floats from memory.
int64_t unary_cost(math::Unary op) {
  return op == math::Unary::Neg || op == math::Unary::Relu ? 1 : 8;
}
int64_t binary_cost(math::Binary op) { return op == math::Binary::Div ? 2 : 1; }

// Vector rows are contiguous or broadcast.
bool unit_or_zero(int64_t s) { return s == 0 || s == 1; }

}  // namespace

void unary_forward(math::Unary op, const float* x, float* y, int64_t n) {
  const auto fn = vec_table().unary[static_cast<int>(op)];
  for_each_range(n, unary_cost(op), 16, [&](int64_t b, int64_t e) { fn(x + b, y + b, e - b); });
}

void unary_backward(math::Unary op, const float* g, const float* x, const float* y, float* dx,
                    int64_t n) {
  const auto fn = vec_table().unary_backward[static_cast<int>(op)];
  // x or y is null-safe only where the op does not read it; offset only what is read.
  const bool reads_x = op == math::Unary::Log;
  const bool reads_y = op == math::Unary::Exp || op == math::Unary::Tanh ||
                       op == math::Unary::Sigmoid || op == math::Unary::Relu;
  for_each_range(n, unary_cost(op), 16, [&](int64_t b, int64_t e) {
    fn(g + b, reads_x ? x + b : x, reads_y ? y + b : y, dx + b, e - b);
  });
}

void binary_forward(math::Binary op, const float* a, const int64_t* a_strides, const float* b,
                    const int64_t* b_strides, float* out, const int64_t* shape, int ndim) {
  int64_t sh[kMaxDims], sa[kMaxDims], sb[kMaxDims], so[kMaxDims];
  for (int d = 0; d < ndim; ++d) {
    sh[d] = shape[d];
    sa[d] = a_strides[d];
    sb[d] = b_strides[d];
  }
  if (shape_product(sh, ndim) == 0) return;
  contiguous_strides(sh, ndim, so);
  const int nd = coalesce_dims<3>(sh, {sa, sb, so}, ndim);
  const auto vfn = vec_table().binary[static_cast<int>(op)];
  // One row of n elements; a, b at strides ia, ib; out contiguous.
  auto row = [&](const float* pa, int64_t ia, const float* pb, int64_t ib, float* po, int64_t n) {
    if (unit_or_zero(ia) && unit_or_zero(ib)) {
      vfn(pa, ia, pb, ib, po, n);
    } else {
      for (int64_t i = 0; i < n; ++i) po[i] = math::binary_forward(op, pa[i * ia], pb[i * ib]);
    }
  };
  if (nd <= 1) {
    const int64_t n = nd == 0 ? 1 : sh[0], ia = nd == 0 ? 0 : sa[0], ib = nd == 0 ? 0 : sb[0];
    for_each_range(n, binary_cost(op), 16, [&](int64_t s, int64_t e) {
      row(a + s * ia, ia, b + s * ib, ib, out + s, e - s);
    });
    return;
  }
  for_each_row<3>(
      sh, nd, {sa, sb, so}, true,
      [&](const std::array<int64_t, 3>& off, int64_t n, const std::array<int64_t, 3>& st) {
        row(a + off[0], st[0], b + off[1], st[1], out + off[2], n);
      });
}

void binary_backward(math::Binary op, int side, const float* g, const int64_t* g_strides,
                     const float* a, const int64_t* a_strides, const float* b,
                     const int64_t* b_strides, float* out, const int64_t* shape, int ndim) {
  int64_t sh[kMaxDims], sg[kMaxDims], sa[kMaxDims], sb[kMaxDims], so[kMaxDims];
  for (int d = 0; d < ndim; ++d) {
    sh[d] = shape[d];
    sg[d] = g_strides[d];
    sa[d] = a_strides[d];
    sb[d] = b_strides[d];
  }
  if (shape_product(sh, ndim) == 0) return;
  contiguous_strides(sh, ndim, so);
  const int nd = coalesce_dims<4>(sh, {sg, sa, sb, so}, ndim);
  const auto vfn = vec_table().binary_backward[side][static_cast<int>(op)];
  auto row = [&](const float* pg, int64_t ig, const float* pa, int64_t ia, const float* pb,
                 int64_t ib, float* po, int64_t n) {
    if (ig == 1 && unit_or_zero(ia) && unit_or_zero(ib)) {
      vfn(pg, pa, ia, pb, ib, po, n);
    } else if (side == 0) {
      for (int64_t i = 0; i < n; ++i)
        po[i] = math::binary_backward_a(op, pg[i * ig], pa[i * ia], pb[i * ib]);
    } else {
      for (int64_t i = 0; i < n; ++i)
        po[i] = math::binary_backward_b(op, pg[i * ig], pa[i * ia], pb[i * ib]);
    }
  };
  if (nd <= 1) {
    const int64_t n = nd == 0 ? 1 : sh[0];
    const int64_t ig = nd == 0 ? 1 : sg[0], ia = nd == 0 ? 0 : sa[0], ib = nd == 0 ? 0 : sb[0];
    for_each_range(n, binary_cost(op), 16, [&](int64_t s, int64_t e) {
      row(g + s * ig, ig, a + s * ia, ia, b + s * ib, ib, out + s, e - s);
    });
    return;
  }
  for_each_row<4>(
      sh, nd, {sg, sa, sb, so}, true,
      [&](const std::array<int64_t, 4>& off, int64_t n, const std::array<int64_t, 4>& st) {
        row(g + off[0], st[0], a + off[1], st[1], b + off[2], st[2], out + off[3], n);
      });
}

void fill(float* y, float value, int64_t n) {
  const auto fn = vec_table().fill;
  for_each_range(n, 1, 16, [&](int64_t b, int64_t e) { fn(y + b, value, e - b); });
}

void axpy(float alpha, const float* x, float* y, int64_t n) {
  const auto fn = vec_table().axpy;
  for_each_range(n, 1, 16, [&](int64_t b, int64_t e) { fn(alpha, x + b, y + b, e - b); });
}

void scale(float alpha, float* y, int64_t n) {
  const auto fn = vec_table().scale;
  for_each_range(n, 1, 16, [&](int64_t b, int64_t e) { fn(alpha, y + b, e - b); });
}

}  // namespace reel::cpu
