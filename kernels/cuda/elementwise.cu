// CUDA pointwise kernels. Per-element math: kernels/elementwise_math.h (shared with the CPU).
//
// What a GPU wants from a memory-bound op: the op known at compile time (a template, so the
// switch in the math folds away), grid-stride loops over as many blocks as fill the device,
// coalesced accesses, and 16-byte (float4) loads and stores where every pointer is aligned.
// A broadcasting op whose operands are each contiguous or a scalar (the common cases: same
// shapes, tensor-scalar) runs the flat kernel; any other broadcast goes through the n-d indexer
// with its dimensions merged where possible.
#include "reel/kernels/cuda/launch.h"
//
#include <type_traits>

#include "reel/kernels/cuda/device_utils.h"
#include "reel/kernels/elementwise.h"

namespace reel::cuda {

namespace {

template <math::Unary Op>
using UnaryTag = std::integral_constant<math::Unary, Op>;
template <math::Binary Op>
using BinaryTag = std::integral_constant<math::Binary, Op>;

// Calls f(UnaryTag<op>{}) with op as a compile-time constant.
template <class F>
void with_unary(math::Unary op, F&& f) {
  switch (op) {
    case math::Unary::Neg:
      return f(UnaryTag<math::Unary::Neg>{});
    case math::Unary::Exp:
      return f(UnaryTag<math::Unary::Exp>{});
    case math::Unary::Log:
      return f(UnaryTag<math::Unary::Log>{});
    case math::Unary::Tanh:
      return f(UnaryTag<math::Unary::Tanh>{});
    case math::Unary::Sigmoid:
      return f(UnaryTag<math::Unary::Sigmoid>{});
    case math::Unary::Relu:
      return f(UnaryTag<math::Unary::Relu>{});
  }
}

template <class F>
void with_binary(math::Binary op, F&& f) {
  switch (op) {
    case math::Binary::Add:
      return f(BinaryTag<math::Binary::Add>{});
    case math::Binary::Sub:
      return f(BinaryTag<math::Binary::Sub>{});
    case math::Binary::Mul:
      return f(BinaryTag<math::Binary::Mul>{});
    case math::Binary::Div:
      return f(BinaryTag<math::Binary::Div>{});
  }
}

// Four consecutive elements at 4 i of a 16-byte aligned array.
__device__ __forceinline__ float4 load4(const float* p, int64_t i) {
  return reinterpret_cast<const float4*>(p)[i];
}
__device__ __forceinline__ void store4(float* p, int64_t i, float4 v) {
  reinterpret_cast<float4*>(p)[i] = v;
}
template <class F>
__device__ __forceinline__ float4 map4(float4 a, F f) {
  return float4{f(a.x), f(a.y), f(a.z), f(a.w)};
}

// x, y: [n]. Vec: x and y 16-byte aligned; n need not be a multiple of 4.
template <math::Unary Op, bool Vec>
__global__ void unary_forward_kernel(const float* x, float* y, int64_t n) {
  int64_t done = 0;
  if (Vec) {
    const int64_t n4 = n / 4;
    for (int64_t i = global_thread(); i < n4; i += grid_threads())
      store4(y, i, map4(load4(x, i), [](float v) { return math::unary_forward(Op, v); }));
    done = n4 * 4;
  }
  for (int64_t i = done + global_thread(); i < n; i += grid_threads())
    y[i] = math::unary_forward(Op, x[i]);
}

// g, x, y, dx: [n]; dx written. x or y may be any valid pointer when Op does not read it.
template <math::Unary Op, bool Vec>
__global__ void unary_backward_kernel(const float* g, const float* x, const float* y, float* dx,
                                      int64_t n) {
  int64_t done = 0;
  if (Vec) {
    const int64_t n4 = n / 4;
    for (int64_t i = global_thread(); i < n4; i += grid_threads()) {
      const float4 gv = load4(g, i), xv = load4(x, i), yv = load4(y, i);
      store4(dx, i,
             float4{math::unary_backward(Op, gv.x, xv.x, yv.x),
                    math::unary_backward(Op, gv.y, xv.y, yv.y),
                    math::unary_backward(Op, gv.z, xv.z, yv.z),
                    math::unary_backward(Op, gv.w, xv.w, yv.w)});
    }
    done = n4 * 4;
  }
  for (int64_t i = done + global_thread(); i < n; i += grid_threads())
    dx[i] = math::unary_backward(Op, g[i], x[i], y[i]);
}

// Element i of an operand read contiguously (AStep 1) or as one scalar (AStep 0).
template <int Step>
__device__ __forceinline__ float at(const float* p, int64_t i) {
  return Step ? p[i] : p[0];
}
template <int Step>
__device__ __forceinline__ float4 at4(const float* p, int64_t i) {
  if (Step) return load4(p, i);
  const float v = p[0];
  return float4{v, v, v, v};
}

// out: [n] = op(a, b), a and b each contiguous over out (step 1) or a scalar (step 0).
// Vec: every contiguous pointer 16-byte aligned.
template <math::Binary Op, int AStep, int BStep, bool Vec>
__global__ void binary_flat_kernel(const float* a, const float* b, float* out, int64_t n) {
  int64_t done = 0;
  if (Vec) {
    const int64_t n4 = n / 4;
    for (int64_t i = global_thread(); i < n4; i += grid_threads()) {
      const float4 va = at4<AStep>(a, i), vb = at4<BStep>(b, i);
      store4(out, i,
             float4{math::binary_forward(Op, va.x, vb.x), math::binary_forward(Op, va.y, vb.y),
                    math::binary_forward(Op, va.z, vb.z), math::binary_forward(Op, va.w, vb.w)});
    }
    done = n4 * 4;
  }
  for (int64_t i = done + global_thread(); i < n; i += grid_threads())
    out[i] = math::binary_forward(Op, at<AStep>(a, i), at<BStep>(b, i));
}

// out: [n] contiguous over ix.shape; a, b through ix.strides[0], ix.strides[1]
template <math::Binary Op>
__global__ void binary_forward_kernel(const float* a, const float* b, float* out, int64_t n,
                                      NdIndexer<2> ix) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) {
    int64_t off[2];
    ix.offsets(i, off);
    out[i] = math::binary_forward(Op, a[off[0]], b[off[1]]);
  }
}

// out: [n] = d(op)/d(side) * g, with g contiguous and a, b each contiguous or a scalar.
template <math::Binary Op, int Side, int AStep, int BStep>
__global__ void binary_backward_flat_kernel(const float* g, const float* a, const float* b,
                                            float* out, int64_t n) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) {
    const float va = at<AStep>(a, i), vb = at<BStep>(b, i);
    out[i] = Side == 0 ? math::binary_backward_a(Op, g[i], va, vb)
                       : math::binary_backward_b(Op, g[i], va, vb);
  }
}

// out: [n] contiguous; g, a, b through ix.strides[0..2]
template <math::Binary Op, int Side>
__global__ void binary_backward_kernel(const float* g, const float* a, const float* b, float* out,
                                       int64_t n, NdIndexer<3> ix) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) {
    int64_t off[3];
    ix.offsets(i, off);
    out[i] = Side == 0 ? math::binary_backward_a(Op, g[off[0]], a[off[1]], b[off[2]])
                       : math::binary_backward_b(Op, g[off[0]], a[off[1]], b[off[2]]);
  }
}

// y: [n]
template <bool Vec>
__global__ void fill_kernel(float* y, float value, int64_t n) {
  int64_t done = 0;
  if (Vec) {
    for (int64_t i = global_thread(); i < n / 4; i += grid_threads())
      store4(y, i, float4{value, value, value, value});
    done = n / 4 * 4;
  }
  for (int64_t i = done + global_thread(); i < n; i += grid_threads()) y[i] = value;
}
// x, y: [n]; y += alpha * x
template <bool Vec>
__global__ void axpy_kernel(float alpha, const float* x, float* y, int64_t n) {
  int64_t done = 0;
  if (Vec) {
    for (int64_t i = global_thread(); i < n / 4; i += grid_threads()) {
      const float4 xv = load4(x, i), yv = load4(y, i);
      store4(y, i,
             float4{yv.x + alpha * xv.x, yv.y + alpha * xv.y, yv.z + alpha * xv.z,
                    yv.w + alpha * xv.w});
    }
    done = n / 4 * 4;
  }
  for (int64_t i = done + global_thread(); i < n; i += grid_threads()) y[i] += alpha * x[i];
}
// y: [n]
template <bool Vec>
__global__ void scale_kernel(float alpha, float* y, int64_t n) {
  int64_t done = 0;
  if (Vec) {
    for (int64_t i = global_thread(); i < n / 4; i += grid_threads())
      store4(y, i, map4(load4(y, i), [alpha](float v) { return v * alpha; }));
    done = n / 4 * 4;
  }
  for (int64_t i = done + global_thread(); i < n; i += grid_threads()) y[i] *= alpha;
}

// Blocks for n elements handled `per_thread` at a time by a grid-stride loop.
dim3 grid_for(int64_t n, int per_thread = 1) {
  return dim3(blocks_for((n + per_thread - 1) / per_thread, kThreadsPerBlock));
}

// Calls f(std::integral_constant<int, s>) for s = 1 (contiguous) or 0 (scalar).
template <class F>
void with_step(Access a, F&& f) {
  if (a == Access::Contiguous)
    f(std::integral_constant<int, 1>{});
  else
    f(std::integral_constant<int, 0>{});
}

}  // namespace

void unary_forward(math::Unary op, const float* x, float* y, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  const bool vec = aligned16({x, y});
  with_unary(op, [&](auto tag) {
    constexpr math::Unary Op = decltype(tag)::value;
    if (vec)
      launch_kernel(unary_forward_kernel<Op, true>, grid_for(n, 4), dim3(kThreadsPerBlock), 0,
                    stream, x, y, n);
    else
      launch_kernel(unary_forward_kernel<Op, false>, grid_for(n), dim3(kThreadsPerBlock), 0, stream,
                    x, y, n);
  });
}

void unary_backward(math::Unary op, const float* g, const float* x, const float* y, float* dx,
                    int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  const bool vec = aligned16({g, x, y, dx});
  with_unary(op, [&](auto tag) {
    constexpr math::Unary Op = decltype(tag)::value;
    if (vec)
      launch_kernel(unary_backward_kernel<Op, true>, grid_for(n, 4), dim3(kThreadsPerBlock), 0,
                    stream, g, x, y, dx, n);
    else
      launch_kernel(unary_backward_kernel<Op, false>, grid_for(n), dim3(kThreadsPerBlock), 0,
                    stream, g, x, y, dx, n);
  });
}

void binary_forward(math::Binary op, const float* a, const int64_t* a_strides, const float* b,
                    const int64_t* b_strides, float* out, const int64_t* shape, int ndim,
                    cudaStream_t stream) {
  const int64_t n = shape_product(shape, ndim);
  if (n == 0) return;
  const Access aa = access_of(shape, ndim, a_strides), ab = access_of(shape, ndim, b_strides);
  with_binary(op, [&](auto tag) {
    constexpr math::Binary Op = decltype(tag)::value;
    if (aa == Access::Strided || ab == Access::Strided) {
      const int64_t* strides[2] = {a_strides, b_strides};
      launch_kernel(binary_forward_kernel<Op>, grid_for(n), dim3(kThreadsPerBlock), 0, stream, a, b,
                    out, n, make_indexer<2>(shape, ndim, strides));
      return;
    }
    // Alignment matters only for the operands read four at a time.
    const bool vec =
        aligned16({out, aa == Access::Contiguous ? a : out, ab == Access::Contiguous ? b : out});
    with_step(aa, [&](auto sa) {
      with_step(ab, [&](auto sb) {
        constexpr int SA = decltype(sa)::value, SB = decltype(sb)::value;
        if (vec)
          launch_kernel(binary_flat_kernel<Op, SA, SB, true>, grid_for(n, 4),
                        dim3(kThreadsPerBlock), 0, stream, a, b, out, n);
        else
          launch_kernel(binary_flat_kernel<Op, SA, SB, false>, grid_for(n), dim3(kThreadsPerBlock),
                        0, stream, a, b, out, n);
      });
    });
  });
}

void binary_backward(math::Binary op, int side, const float* g, const int64_t* g_strides,
                     const float* a, const int64_t* a_strides, const float* b,
                     const int64_t* b_strides, float* out, const int64_t* shape, int ndim,
                     cudaStream_t stream) {
  const int64_t n = shape_product(shape, ndim);
  if (n == 0) return;
  const Access ag = access_of(shape, ndim, g_strides);
  const Access aa = access_of(shape, ndim, a_strides), ab = access_of(shape, ndim, b_strides);
  const bool flat = ag == Access::Contiguous && aa != Access::Strided && ab != Access::Strided;
  with_binary(op, [&](auto tag) {
    constexpr math::Binary Op = decltype(tag)::value;
    auto run = [&](auto side_tag) {
      constexpr int Side = decltype(side_tag)::value;
      if (!flat) {
        const int64_t* strides[3] = {g_strides, a_strides, b_strides};
        launch_kernel(binary_backward_kernel<Op, Side>, grid_for(n), dim3(kThreadsPerBlock), 0,
                      stream, g, a, b, out, n, make_indexer<3>(shape, ndim, strides));
        return;
      }
      with_step(aa, [&](auto sa) {
        with_step(ab, [&](auto sb) {
          launch_kernel(
              binary_backward_flat_kernel<Op, Side, decltype(sa)::value, decltype(sb)::value>,
              grid_for(n), dim3(kThreadsPerBlock), 0, stream, g, a, b, out, n);
        });
      });
    };
    if (side == 0)
      run(std::integral_constant<int, 0>{});
    else
      run(std::integral_constant<int, 1>{});
  });
}

void fill(float* y, float value, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  if (aligned16({y}))
    launch_kernel(fill_kernel<true>, grid_for(n, 4), dim3(kThreadsPerBlock), 0, stream, y, value,
                  n);
  else
    launch_kernel(fill_kernel<false>, grid_for(n), dim3(kThreadsPerBlock), 0, stream, y, value, n);
}

void axpy(float alpha, const float* x, float* y, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  if (aligned16({x, y}))
    launch_kernel(axpy_kernel<true>, grid_for(n, 4), dim3(kThreadsPerBlock), 0, stream, alpha, x, y,
                  n);
  else
    launch_kernel(axpy_kernel<false>, grid_for(n), dim3(kThreadsPerBlock), 0, stream, alpha, x, y,
                  n);
}

void scale(float alpha, float* y, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  if (aligned16({y}))
    launch_kernel(scale_kernel<true>, grid_for(n, 4), dim3(kThreadsPerBlock), 0, stream, alpha, y,
                  n);
  else
    launch_kernel(scale_kernel<false>, grid_for(n), dim3(kThreadsPerBlock), 0, stream, alpha, y, n);
}

}  // namespace reel::cuda
