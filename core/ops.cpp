#include "reel/core/ops.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "reel/core/allocator.h"
#include "reel/core/autograd.h"
#include "reel/core/dispatch.h"
#include "reel/kernels/copy.h"
#include "reel/kernels/elementwise.h"
#include "reel/kernels/reduce.h"
#include "reel/kernels/softmax.h"

namespace reel {

namespace {

Shape contiguous_strides(const Shape& shape) {
  Shape s(shape.size());
  reel::contiguous_strides(shape.data(), static_cast<int>(shape.size()), s.data());
  return s;
}

// The gradients a backward returns.
using Grads = std::vector<Tensor>;

void check_defined(const char* op, const Tensor& t, int index) {
  REEL_CHECK(t.defined(), op << ": input " << index << " is an undefined tensor");
}

void check_rank(const char* op, const Tensor& t) {
  REEL_CHECK(t.dim() <= kMaxDims, op << ": tensors of more than " << kMaxDims
                                     << " dimensions are not supported, got "
                                     << shape_str(t.shape()));
}

// Every input of an op lives on one device; the kernels for it must exist in this build.
Device common_device(const char* op, const std::vector<const Tensor*>& ts) {
  for (size_t i = 0; i < ts.size(); ++i) {
    check_defined(op, *ts[i], static_cast<int>(i));
    check_rank(op, *ts[i]);
  }
  const Device d = ts[0]->device();
  for (size_t i = 1; i < ts.size(); ++i)
    REEL_CHECK(ts[i]->device() == d, op << ": expected all tensors on one device, got input 0 on "
                                        << d.str() << " and input " << i << " on "
                                        << ts[i]->device().str());
  return d;
}

// Normalises a possibly negative dimension of a tensor of rank `rank`.
int64_t wrap_dim(const char* op, int64_t dim, int64_t rank) {
  REEL_CHECK(dim >= -rank && dim < rank, op << ": dimension " << dim
                                            << " is out of range for a tensor of rank " << rank
                                            << " (expected " << -rank << " to " << rank - 1 << ")");
  return dim < 0 ? dim + rank : dim;
}

// Element strides that read a tensor of shape `in` as if broadcast to `out`.
Shape broadcast_strides(const Shape& in, const Shape& out) {
  Shape s(out.size(), 0);
  const Shape cs = contiguous_strides(in);
  const size_t lead = out.size() - in.size();
  for (size_t d = 0; d < in.size(); ++d) s[lead + d] = in[d] == 1 ? 0 : cs[d];
  return s;
}

Tensor unary(math::Unary op, const char* name, const Tensor& x) {
  const Device dev = common_device(name, {&x});
  Tensor y = Tensor::empty(x.shape(), dev);
  REEL_KERNEL(dev, unary_forward, op, x.data(), y.data(), x.numel());
  if (any_requires_grad({&x})) {
    auto node = record(name, y, {x});
    // Keep only what the derivative reads: the input (log) or the output (exp, tanh, sigmoid,
    // relu); slot 0 holds it (or nothing, for neg). Relu keeps its output, which the next
    // convolution keeps anyway, so that the input (a BatchNorm's output) can be freed.
    const bool needs_x = op == math::Unary::Log;
    const bool needs_y = op == math::Unary::Exp || op == math::Unary::Tanh ||
                         op == math::Unary::Sigmoid || op == math::Unary::Relu;
    node->save(needs_x ? x : needs_y ? y : Tensor());
    node->backward = [op, needs_x, needs_y](Node& self, const Grads& grads) {
      const Tensor& g = grads[0];
      const Tensor s = self.saved(0);
      Tensor dx = Tensor::empty(g.shape(), g.device());
      const float* px = needs_x ? s.data() : g.data();  // unread when not saved
      const float* py = needs_y ? s.data() : g.data();
      REEL_KERNEL(g.device(), unary_backward, op, g.data(), px, py, dx.data(), g.numel());
      return Grads{dx};
    };
  }
  return y;
}

Tensor binary(math::Binary op, const char* name, const Tensor& a, const Tensor& b) {
  const Device dev = common_device(name, {&a, &b});
  const Shape out_shape = broadcast_shapes(a.shape(), b.shape(), name);
  Tensor out = Tensor::empty(out_shape, dev);
  const Shape sa = broadcast_strides(a.shape(), out_shape);
  const Shape sb = broadcast_strides(b.shape(), out_shape);
  REEL_KERNEL(dev, binary_forward, op, a.data(), sa.data(), b.data(), sb.data(), out.data(),
              out_shape.data(), static_cast<int>(out_shape.size()));
  if (any_requires_grad({&a, &b})) {
    auto node = record(name, out, {a, b});
    // d(a b)/da reads b and d(a b)/db reads a; d(a / b)/da reads b, d(a / b)/db both: keep only
    // what a gradient that is wanted reads.
    const bool mul = op == math::Binary::Mul, div = op == math::Binary::Div;
    node->save((mul || div) && node->needs_grad(1) ? a : Tensor());
    node->save((mul && node->needs_grad(0)) || div ? b : Tensor());
    node->backward = [op, sa, sb, out_shape](Node& self, const Grads& g_out) {
      const Tensor& g = g_out[0];
      const Tensor as = self.saved(0), bs = self.saved(1);
      const Shape gs = contiguous_strides(out_shape);
      const int nd = static_cast<int>(out_shape.size());
      Grads grads(2);
      for (int side = 0; side < 2; ++side) {
        if (!self.needs_grad(side)) continue;
        const Shape& target = self.input_shapes[side];
        Tensor full;
        if (op == math::Binary::Add) {
          full = g;
        } else {
          // full = d(out)/d(side) * g over the output's shape, then summed down to the input.
          full = Tensor::empty(out_shape, g.device());
          const float* pa = as.defined() ? as.data() : g.data();
          const float* pb = bs.defined() ? bs.data() : g.data();
          const Shape zero(out_shape.size(), 0);
          const Shape& pas = as.defined() ? sa : zero;
          const Shape& pbs = bs.defined() ? sb : zero;
          REEL_KERNEL(g.device(), binary_backward, op, side, g.data(), gs.data(), pa, pas.data(),
                      pb, pbs.data(), full.data(), out_shape.data(), nd);
        }
        grads[side] = sum_to(full, target);
      }
      return grads;
    };
  }
  return out;
}

// C[b]: [M, N] (+)= op(A[b]) op(B[b]) for b < batch; a stride of 0 reuses one matrix.
void batched_gemm(const Device& dev, bool ta, bool tb, int64_t batch, int64_t M, int64_t N,
                  int64_t K, const float* A, int64_t strideA, const float* B, int64_t strideB,
                  float beta, float* C, int64_t strideC) {
  const int64_t lda = ta ? M : K, ldb = tb ? K : N;
  for (int64_t i = 0; i < batch; ++i)
    device_gemm(dev, ta, tb, M, N, K, 1.0f, A + i * strideA, lda, B + i * strideB, ldb,
                strideC == 0 && i > 0 ? 1.0f : beta, C + i * strideC, N);
}

std::vector<int64_t> normalise_dims(const char* op, const std::vector<int64_t>& dims,
                                    int64_t rank) {
  std::vector<int64_t> out;
  if (dims.empty()) {
    out.resize(rank);
    std::iota(out.begin(), out.end(), 0);
    return out;
  }
  for (int64_t d : dims) {
    const int64_t w = wrap_dim(op, d, rank);
    REEL_CHECK(std::find(out.begin(), out.end(), w) == out.end(),
               op << ": dimension " << d << " is listed twice");
    out.push_back(w);
  }
  return out;
}

Tensor softmax_impl(const Tensor& x, int64_t dim, bool log) {
  const char* name = log ? "log_softmax" : "softmax";
  const Device dev = common_device(name, {&x});
  REEL_CHECK(x.dim() > 0, name << ": expected a tensor of rank >= 1, got a 0-d tensor");
  const int64_t d = wrap_dim(name, dim, x.dim());
  const int64_t C = x.shape()[d];
  REEL_CHECK(C > 0, name << ": dimension " << d << " of " << shape_str(x.shape())
                         << " is empty; expected at least one element");
  int64_t outer = 1, inner = 1;
  for (int64_t i = 0; i < d; ++i) outer *= x.shape()[i];
  for (int64_t i = d + 1; i < x.dim(); ++i) inner *= x.shape()[i];
  Tensor y = Tensor::empty(x.shape(), dev);
  REEL_KERNEL(dev, softmax_forward, x.data(), y.data(), outer, C, inner, log);
  if (any_requires_grad({&x})) {
    auto node = record(name, y, {x});
    node->save(y);
    node->backward = [outer, C, inner, log](Node& self, const Grads& g_out) {
      const Tensor& g = g_out[0];
      const Tensor ys = self.saved(0);
      Tensor dx = Tensor::empty(g.shape(), g.device());
      REEL_KERNEL(g.device(), softmax_backward, g.data(), ys.data(), dx.data(), outer, C, inner,
                  log);
      return Grads{dx};
    };
  }
  return y;
}

}  // namespace

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  const size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    const int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    const int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    REEL_CHECK(da == db || da == 1 || db == 1, op << ": shapes " << shape_str(a) << " and "
                                                  << shape_str(b) << " do not broadcast (dimension "
                                                  << i << ": " << da << " vs " << db
                                                  << "; expected equal extents or 1)");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

Tensor add(const Tensor& a, const Tensor& b) { return binary(math::Binary::Add, "add", a, b); }
Tensor sub(const Tensor& a, const Tensor& b) { return binary(math::Binary::Sub, "sub", a, b); }
Tensor mul(const Tensor& a, const Tensor& b) { return binary(math::Binary::Mul, "mul", a, b); }
Tensor div(const Tensor& a, const Tensor& b) { return binary(math::Binary::Div, "div", a, b); }

Tensor neg(const Tensor& x) { return unary(math::Unary::Neg, "neg", x); }
Tensor exp(const Tensor& x) { return unary(math::Unary::Exp, "exp", x); }
Tensor log(const Tensor& x) { return unary(math::Unary::Log, "log", x); }
Tensor tanh(const Tensor& x) { return unary(math::Unary::Tanh, "tanh", x); }
Tensor sigmoid(const Tensor& x) { return unary(math::Unary::Sigmoid, "sigmoid", x); }
Tensor relu(const Tensor& x) { return unary(math::Unary::Relu, "relu", x); }

Tensor matmul(const Tensor& a, const Tensor& b) {
  const Device dev = common_device("matmul", {&a, &b});
  const int64_t ra = a.dim(), rb = b.dim();
  REEL_CHECK((ra == 2 || ra == 3) && (rb == 2 || rb == 3),
             "matmul: expected 2-D or 3-D tensors, got " << shape_str(a.shape()) << " @ "
                                                         << shape_str(b.shape()));
  const int64_t M = a.size(-2), K = a.size(-1), N = b.size(-1);
  REEL_CHECK(b.size(-2) == K, "matmul: inner dimensions differ: "
                                  << shape_str(a.shape()) << " @ " << shape_str(b.shape())
                                  << " (expected a.size(-1) == b.size(-2), got " << K << " and "
                                  << b.size(-2) << ")");
  const int64_t ba = ra == 3 ? a.size(0) : 1, bb = rb == 3 ? b.size(0) : 1;
  REEL_CHECK(
      ra != 3 || rb != 3 || ba == bb,
      "matmul: batch sizes differ: " << shape_str(a.shape()) << " @ " << shape_str(b.shape()));
  // The batch of the 3-D operand (a 2-D one is shared by every batch; the batch may be 0).
  const int64_t batch = ra == 3 ? ba : (rb == 3 ? bb : 1);
  Shape out_shape = (ra == 3 || rb == 3) ? Shape{batch, M, N} : Shape{M, N};
  Tensor out = Tensor::empty(out_shape, dev);
  const int64_t sA = ra == 3 ? M * K : 0, sB = rb == 3 ? K * N : 0;
  if (ra == 3 && rb == 2) {  // [B*M, K] @ [K, N] as one GEMM
    batched_gemm(dev, false, false, 1, batch * M, N, K, a.data(), 0, b.data(), 0, 0.0f, out.data(),
                 0);
  } else {
    batched_gemm(dev, false, false, batch, M, N, K, a.data(), sA, b.data(), sB, 0.0f, out.data(),
                 M * N);
  }
  if (any_requires_grad({&a, &b})) {
    auto node = record("matmul", out, {a, b});
    // dA needs B and dB needs A: keep only what a gradient that is wanted reads.
    node->save(node->needs_grad(1) ? a : Tensor());
    node->save(node->needs_grad(0) ? b : Tensor());
    node->backward = [batch, M, N, K, sA, sB, ra, rb](Node& self, const Grads& g_out) {
      const Tensor& g = g_out[0];
      const Tensor as = self.saved(0), bs = self.saved(1);
      Grads grads(2);
      if (self.needs_grad(0)) {  // dA = g @ B^T
        Tensor da = Tensor::empty(self.input_shapes[0], g.device());
        if (ra == 3 && rb == 2)
          batched_gemm(g.device(), false, true, 1, batch * M, K, N, g.data(), 0, bs.data(), 0, 0.0f,
                       da.data(), 0);
        else
          batched_gemm(g.device(), false, true, batch, M, K, N, g.data(), M * N, bs.data(), sB,
                       0.0f, da.data(), sA);
        if (batch == 0) da.fill_(0.0f);  // a shared 2-D operand of an empty batch: no product
        grads[0] = da;
      }
      if (self.needs_grad(1)) {  // dB = A^T @ g
        Tensor db = Tensor::empty(self.input_shapes[1], g.device());
        if (ra == 3 && rb == 2)
          batched_gemm(g.device(), true, false, 1, K, N, batch * M, as.data(), 0, g.data(), 0, 0.0f,
                       db.data(), 0);
        else
          batched_gemm(g.device(), true, false, batch, K, N, M, as.data(), sA, g.data(), M * N,
                       0.0f, db.data(), sB);
        if (batch == 0) db.fill_(0.0f);
        grads[1] = db;
      }
      return grads;
    };
  }
  return out;
}

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  std::vector<const Tensor*> ins{&x, &weight};
  if (bias.defined()) ins.push_back(&bias);
  const Device dev = common_device("linear", ins);
  REEL_CHECK(weight.dim() == 2,
             "linear: expected a weight of shape [out, in], got " << shape_str(weight.shape()));
  const int64_t out_f = weight.size(0), in_f = weight.size(1);
  REEL_CHECK(x.dim() >= 1 && x.size(-1) == in_f,
             "linear: input " << shape_str(x.shape()) << " does not match weight "
                              << shape_str(weight.shape()) << " (expected an input of shape [..., "
                              << in_f << "])");
  REEL_CHECK(!bias.defined() || (bias.dim() == 1 && bias.size(0) == out_f),
             "linear: bias " << shape_str(bias.shape()) << " does not match weight "
                             << shape_str(weight.shape()) << " (expected [" << out_f << "])");
  Shape out_shape = x.shape();
  out_shape.back() = out_f;
  const int64_t n_rows = shape_numel(Shape(x.shape().begin(), x.shape().end() - 1));
  Tensor out = Tensor::empty(out_shape, dev);
  float beta = 0.0f;
  if (bias.defined() && out.numel() > 0) {  // every row starts as the bias, then += x W^T
    const int64_t shape2[2] = {n_rows, out_f}, in_st[2] = {0, 1}, out_st[2] = {out_f, 1};
    REEL_KERNEL(dev, strided_copy, bias.data(), in_st, out.data(), out_st, shape2, 2);
    beta = 1.0f;
  }
  // out: [rows, out] = x: [rows, in] @ (weight: [out, in])^T
  device_gemm(dev, false, true, n_rows, out_f, in_f, 1.0f, x.data(), in_f, weight.data(), in_f,
              beta, out.data(), out_f);
  std::vector<Tensor> inputs{x, weight};
  if (bias.defined()) inputs.push_back(bias);
  if (any_requires_grad(inputs)) {
    auto node = record("linear", out, inputs);
    node->save(node->needs_grad(1) ? x : Tensor());       // dweight reads x
    node->save(node->needs_grad(0) ? weight : Tensor());  // dx reads the weight
    node->backward = [n_rows, out_f, in_f](Node& self, const Grads& g_out) {
      const Tensor& g = g_out[0];  // [rows, out]
      Grads grads(self.next.size());
      if (self.needs_grad(0)) {  // dx: [rows, in] = g @ weight
        const Tensor w = self.saved(1);
        Tensor dx = Tensor::empty(self.input_shapes[0], g.device());
        device_gemm(g.device(), false, false, n_rows, in_f, out_f, 1.0f, g.data(), out_f, w.data(),
                    in_f, 0.0f, dx.data(), in_f);
        grads[0] = dx;
      }
      if (self.needs_grad(1)) {  // dweight: [out, in] = g^T @ x, the sum over rows in the GEMM
        const Tensor xs = self.saved(0);
        Tensor dw = Tensor::empty(self.input_shapes[1], g.device());
        device_gemm(g.device(), true, false, out_f, in_f, n_rows, 1.0f, g.data(), out_f, xs.data(),
                    in_f, 0.0f, dw.data(), in_f);
        grads[1] = dw;
      }
      if (self.needs_grad(2))  // dbias: [out], the sum of g's rows
        grads[2] = sum_to(reshape(g, {n_rows, out_f}), {1, out_f}).reshape({out_f});
      return grads;
    };
  }
  return out;
}

Tensor permute(const Tensor& x, const std::vector<int64_t>& dims) {
  const Device dev = common_device("permute", {&x});
  const int64_t r = x.dim();
  REEL_CHECK(static_cast<int64_t>(dims.size()) == r,
             "permute: got " << dims.size() << " dimensions for a tensor of shape "
                             << shape_str(x.shape()) << " (expected " << r << ")");
  std::vector<int64_t> perm(r);
  std::vector<bool> seen(r, false);
  for (int64_t i = 0; i < r; ++i) {
    perm[i] = wrap_dim("permute", dims[i], r);
    REEL_CHECK(!seen[perm[i]], "permute: dimension " << dims[i] << " is listed twice");
    seen[perm[i]] = true;
  }
  Shape out_shape(r), in_strides(r);
  const Shape cs = contiguous_strides(x.shape());
  for (int64_t i = 0; i < r; ++i) {
    out_shape[i] = x.shape()[perm[i]];
    in_strides[i] = cs[perm[i]];
  }
  Tensor out = Tensor::empty(out_shape, dev);
  const Shape os = contiguous_strides(out_shape);
  REEL_KERNEL(dev, strided_copy, x.data(), in_strides.data(), out.data(), os.data(),
              out_shape.data(), static_cast<int>(r));
  if (any_requires_grad({&x})) {
    auto node = record("permute", out, {x});
    std::vector<int64_t> inverse(r);
    for (int64_t i = 0; i < r; ++i) inverse[perm[i]] = i;
    node->backward = [inverse](Node&, const Grads& g) { return Grads{permute(g[0], inverse)}; };
  }
  return out;
}

Tensor transpose(const Tensor& x, int64_t d0, int64_t d1) {
  check_defined("transpose", x, 0);
  const int64_t r = x.dim();
  std::vector<int64_t> perm(r);
  std::iota(perm.begin(), perm.end(), 0);
  std::swap(perm[wrap_dim("transpose", d0, r)], perm[wrap_dim("transpose", d1, r)]);
  return permute(x, perm);
}

Tensor reshape(const Tensor& x, const Shape& shape) {
  check_defined("reshape", x, 0);
  Shape target = shape;
  int64_t infer = -1;
  for (size_t i = 0; i < target.size(); ++i) {
    if (target[i] != -1) continue;
    REEL_CHECK(infer < 0, "reshape: only one extent may be -1, got " << shape_str(shape));
    infer = static_cast<int64_t>(i);
    target[i] = 1;
  }
  check_shape("reshape", target);  // extents >= 0 and no overflow in the product below
  const int64_t known = shape_numel(target);
  if (infer >= 0) {
    REEL_CHECK(known != 0 && x.numel() % known == 0,
               "reshape: cannot reshape " << shape_str(x.shape()) << " (" << x.numel()
                                          << " elements) to " << shape_str(shape));
    target[infer] = x.numel() / known;
  }
  REEL_CHECK(shape_numel(target) == x.numel(), "reshape: cannot reshape "
                                                   << shape_str(x.shape()) << " (" << x.numel()
                                                   << " elements) to " << shape_str(shape) << " ("
                                                   << shape_numel(target) << " elements)");
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = x.impl()->storage;
  impl->shape = target;
  Tensor out(impl);
  if (any_requires_grad({&x})) {
    auto node = record("reshape", out, {x});
    const Shape in_shape = x.shape();
    node->backward = [in_shape](Node&, const Grads& g) { return Grads{reshape(g[0], in_shape)}; };
  }
  return out;
}

Tensor expand(const Tensor& x, const Shape& shape) {
  const Device dev = common_device("expand", {&x});
  REEL_CHECK(static_cast<int>(shape.size()) <= kMaxDims,
             "expand: tensors of more than " << kMaxDims << " dimensions are not supported, got "
                                             << shape_str(shape));
  check_shape("expand", shape);
  REEL_CHECK(broadcast_shapes(x.shape(), shape, "expand") == shape,
             "expand: cannot expand " << shape_str(x.shape()) << " to " << shape_str(shape));
  Tensor out = Tensor::empty(shape, dev);
  const Shape in_strides = broadcast_strides(x.shape(), shape);
  const Shape os = contiguous_strides(shape);
  REEL_KERNEL(dev, strided_copy, x.data(), in_strides.data(), out.data(), os.data(), shape.data(),
              static_cast<int>(shape.size()));
  if (any_requires_grad({&x})) {
    auto node = record("expand", out, {x});
    const Shape in_shape = x.shape();
    node->backward = [in_shape](Node&, const Grads& g) { return Grads{sum_to(g[0], in_shape)}; };
  }
  return out;
}

Tensor sum_to(const Tensor& x, const Shape& shape) {
  const Device dev = common_device("sum_to", {&x});
  if (x.shape() == shape) return x;
  REEL_CHECK(broadcast_shapes(shape, x.shape(), "sum_to") == x.shape(),
             "sum_to: cannot sum " << shape_str(x.shape()) << " down to " << shape_str(shape));
  Tensor out = Tensor::zeros(shape, dev);
  // Output strides over x's dimensions: 0 where shape broadcasts.
  const Shape os = broadcast_strides(shape, x.shape());
  REEL_KERNEL(dev, sum_reduce, x.data(), x.shape().data(), static_cast<int>(x.dim()), out.data(),
              os.data());
  if (any_requires_grad({&x})) {
    auto node = record("sum_to", out, {x});
    const Shape in_shape = x.shape();
    node->backward = [in_shape](Node&, const Grads& g) { return Grads{expand(g[0], in_shape)}; };
  }
  return out;
}

Tensor sum(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  common_device("sum", {&x});
  const std::vector<int64_t> ds = normalise_dims("sum", dims, x.dim());
  Shape kept = x.shape(), dropped;
  for (int64_t d : ds) kept[d] = 1;
  for (int64_t d = 0; d < x.dim(); ++d)
    if (std::find(ds.begin(), ds.end(), d) == ds.end()) dropped.push_back(x.shape()[d]);
  Tensor s = sum_to(x, kept);
  if (s.same_storage(x)) s = s.clone();  // nothing reduced: still a new tensor, as PyTorch
  return keepdim ? s : reshape(s, dropped);
}

Tensor mean(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  common_device("mean", {&x});
  int64_t count = 1;
  for (int64_t d : normalise_dims("mean", dims, x.dim())) count *= x.shape()[d];
  // count == 0 gives NaN, as PyTorch's mean of nothing.
  const float inv =
      count > 0 ? 1.0f / static_cast<float>(count) : std::numeric_limits<float>::quiet_NaN();
  return sum(x, dims, keepdim) * inv;
}

Tensor softmax(const Tensor& x, int64_t dim) { return softmax_impl(x, dim, false); }
Tensor log_softmax(const Tensor& x, int64_t dim) { return softmax_impl(x, dim, true); }

Tensor cross_entropy(const Tensor& logits, const std::vector<int64_t>& targets,
                     float label_smoothing, int64_t ignore_index) {
  const Device dev = common_device("cross_entropy", {&logits});
  REEL_CHECK(logits.dim() == 2,
             "cross_entropy: expected logits of shape [N, C], got " << shape_str(logits.shape()));
  const int64_t N = logits.size(0), C = logits.size(1);
  REEL_CHECK(C > 0, "cross_entropy: logits " << shape_str(logits.shape())
                                             << " have no classes (expected C >= 1)");
  REEL_CHECK(static_cast<int64_t>(targets.size()) == N,
             "cross_entropy: " << targets.size() << " targets for logits of shape "
                               << shape_str(logits.shape()) << " (expected " << N << ")");
  REEL_CHECK(label_smoothing >= 0.0f && label_smoothing <= 1.0f,
             "cross_entropy: label_smoothing " << label_smoothing << " is outside [0, 1]");
  for (int64_t i = 0; i < N; ++i)
    REEL_CHECK(targets[i] == ignore_index || (targets[i] >= 0 && targets[i] < C),
               "cross_entropy: target " << targets[i] << " at row " << i << " is out of range for "
                                        << C << " classes (expected 0 to " << C - 1
                                        << " or ignore_index " << ignore_index << ")");
  int64_t count = 0;
  for (int64_t t : targets) count += t != ignore_index;
  // The kernels read the targets where the logits are. On the CPU that is the caller's vector
  // itself; a GPU gets one copy of the N indices in a typed buffer of the device's pool.
  std::shared_ptr<Buffer> target_buf;
  const int64_t* dev_targets = targets.data();
  if (!dev.is_cpu()) {
    target_buf = std::make_shared<Buffer>(static_cast<std::size_t>(N) * sizeof(int64_t), dev);
    copy_to_device_async(dev, target_buf->data(), targets.data(),
                         static_cast<std::size_t>(N) * sizeof(int64_t));
    dev_targets = static_cast<const int64_t*>(target_buf->data());
  }
  Tensor log_probs = Tensor::empty({N, C}, dev);
  Tensor out = Tensor::empty({}, dev);
  {
    // Per-row losses, scratch for the CUDA kernels only; released at once.
    Tensor workspace = Tensor::empty({dev.is_cpu() ? 0 : N}, dev);
    REEL_KERNEL(dev, cross_entropy_forward, logits.data(), dev_targets, log_probs.data(),
                out.data(), workspace.data(), N, C, label_smoothing, ignore_index, count);
  }
  if (any_requires_grad({&logits})) {
    auto node = record("cross_entropy", out, {logits});
    node->save(log_probs);  // internal: never changed in place
    if (!target_buf) {      // the backward may run after the caller's vector is gone
      target_buf = std::make_shared<Buffer>(static_cast<std::size_t>(N) * sizeof(int64_t), dev);
      std::copy(targets.begin(), targets.end(), static_cast<int64_t*>(target_buf->data()));
    }
    node->backward = [target_buf, N, C, label_smoothing, ignore_index, count](Node& self,
                                                                              const Grads& g_out) {
      const Tensor& g = g_out[0];
      const Tensor log_probs = self.saved(0);
      Tensor dx = Tensor::empty({N, C}, g.device());
      REEL_KERNEL(g.device(), cross_entropy_backward, g.data(), log_probs.data(),
                  static_cast<const int64_t*>(target_buf->data()), dx.data(), N, C, label_smoothing,
                  ignore_index, count);
      return Grads{dx};
    };
  }
  return out;
}

Tensor concat(const std::vector<Tensor>& tensors, int64_t dim) {
  REEL_CHECK(!tensors.empty(), "concat: expected at least one tensor, got an empty list");
  std::vector<const Tensor*> ptrs;
  for (const Tensor& t : tensors) ptrs.push_back(&t);
  const Device dev = common_device("concat", ptrs);
  const Tensor& first = tensors[0];
  REEL_CHECK(first.dim() > 0, "concat: cannot concatenate 0-d tensors (use stack)");
  const int64_t d = wrap_dim("concat", dim, first.dim());
  Shape out_shape = first.shape();
  out_shape[d] = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Shape& s = tensors[i].shape();
    bool ok = s.size() == first.shape().size();
    for (size_t k = 0; ok && k < s.size(); ++k)
      ok = static_cast<int64_t>(k) == d || s[k] == first.shape()[k];
    REEL_CHECK(ok, "concat: input " << i << " has shape " << shape_str(s) << ", expected "
                                    << shape_str(first.shape()) << " in every dimension but " << d);
    out_shape[d] += s[d];
  }
  Tensor out = Tensor::empty(out_shape, dev);
  const Shape os = contiguous_strides(out_shape);
  std::vector<int64_t> offsets;
  int64_t off = 0;
  for (const Tensor& t : tensors) {
    offsets.push_back(off);
    const Shape is = contiguous_strides(t.shape());
    if (t.numel() > 0)
      REEL_KERNEL(dev, strided_copy, t.data(), is.data(), out.data() + off * os[d], os.data(),
                  t.shape().data(), static_cast<int>(t.dim()));
    off += t.shape()[d];
  }
  if (any_requires_grad(tensors)) {
    auto node = record("concat", out, tensors);
    node->backward = [offsets, d](Node& self, const Grads& g) {
      Grads grads(offsets.size());
      for (size_t i = 0; i < offsets.size(); ++i)
        if (self.needs_grad(i))
          grads[i] = slice(g[0], d, offsets[i], offsets[i] + self.input_shapes[i][d]);
      return grads;
    };
  }
  return out;
}

Tensor stack(const std::vector<Tensor>& tensors, int64_t dim) {
  REEL_CHECK(!tensors.empty(), "stack: expected at least one tensor, got an empty list");
  for (size_t i = 0; i < tensors.size(); ++i) {
    check_defined("stack", tensors[i], static_cast<int>(i));
    REEL_CHECK(tensors[i].shape() == tensors[0].shape(),
               "stack: input " << i << " has shape " << shape_str(tensors[i].shape())
                               << ", expected " << shape_str(tensors[0].shape())
                               << " like input 0");
  }
  const int64_t d = wrap_dim("stack", dim, tensors[0].dim() + 1);
  Shape s = tensors[0].shape();
  s.insert(s.begin() + d, 1);
  std::vector<Tensor> parts;
  for (const Tensor& t : tensors) parts.push_back(reshape(t, s));
  return concat(parts, d);
}

Tensor slice(const Tensor& x, int64_t dim, int64_t start, int64_t end, int64_t step) {
  const Device dev = common_device("slice", {&x});
  REEL_CHECK(x.dim() > 0, "slice: cannot slice a 0-d tensor");
  const int64_t d = wrap_dim("slice", dim, x.dim());
  const int64_t n = x.shape()[d];
  REEL_CHECK(step >= 1, "slice: step must be >= 1, got " << step);
  const int64_t s0 = start < 0 ? start + n : start, e0 = end < 0 ? end + n : end;
  REEL_CHECK(s0 >= 0 && s0 <= n && e0 >= 0 && e0 <= n && s0 <= e0,
             "slice: range [" << start << ", " << end << ") is out of range for dimension " << d
                              << " of " << shape_str(x.shape())
                              << " (expected 0 <= start <= end <= " << n
                              << ", negatives counting from the end)");
  Shape out_shape = x.shape();
  out_shape[d] = e0 == s0 ? 0 : (e0 - s0 - 1) / step + 1;
  Shape in_strides = contiguous_strides(x.shape());
  const int64_t base = s0 * in_strides[d];
  in_strides[d] *= step;
  Tensor out = Tensor::empty(out_shape, dev);
  const Shape os = contiguous_strides(out_shape);
  if (out.numel() > 0)
    REEL_KERNEL(dev, strided_copy, x.data() + base, in_strides.data(), out.data(), os.data(),
                out_shape.data(), static_cast<int>(out_shape.size()));
  if (any_requires_grad({&x})) {
    auto node = record("slice", out, {x});
    const Shape in_shape = x.shape();
    node->backward = [in_shape, in_strides, base, out_shape, os](Node&, const Grads& g_out) {
      const Tensor& g = g_out[0];
      // The elements the slice skipped get no gradient: zeros, then the slice's elements.
      Tensor dx = Tensor::zeros(in_shape, g.device());
      if (g.numel() > 0)
        REEL_KERNEL(g.device(), strided_copy, g.data(), os.data(), dx.data() + base,
                    in_strides.data(), out_shape.data(), static_cast<int>(out_shape.size()));
      return Grads{dx};
    };
  }
  return out;
}

Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
Tensor operator-(const Tensor& x) { return neg(x); }

namespace {
Tensor scalar_like(const char* op, const Tensor& t, float v) {
  check_defined(op, t, 0);
  return Tensor::scalar(v, t.device());
}
}  // namespace

Tensor operator+(const Tensor& a, float b) { return add(a, scalar_like("add", a, b)); }
Tensor operator-(const Tensor& a, float b) { return sub(a, scalar_like("sub", a, b)); }
Tensor operator*(const Tensor& a, float b) { return mul(a, scalar_like("mul", a, b)); }
Tensor operator/(const Tensor& a, float b) { return div(a, scalar_like("div", a, b)); }
Tensor operator+(float a, const Tensor& b) { return add(scalar_like("add", b, a), b); }
Tensor operator-(float a, const Tensor& b) { return sub(scalar_like("sub", b, a), b); }
Tensor operator*(float a, const Tensor& b) { return mul(scalar_like("mul", b, a), b); }
Tensor operator/(float a, const Tensor& b) { return div(scalar_like("div", b, a), b); }

}  // namespace reel
