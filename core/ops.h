#pragma once
// The differentiable ops. Each checks its inputs (throwing reel::Error that names the op, the
// shapes and what was expected), allocates the output on the inputs' device, runs the kernel
// for that device and, when grad mode is on and an input requires grad, records its backward.
#include <cstdint>
#include <vector>

#include "reel/core/tensor.h"

namespace reel {

// NumPy/PyTorch broadcasting of two shapes; throws naming `op` when they do not broadcast.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);

// Elementwise with broadcasting.
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);

Tensor neg(const Tensor& x);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor tanh(const Tensor& x);
Tensor sigmoid(const Tensor& x);
Tensor relu(const Tensor& x);

// [M, K] @ [K, N] -> [M, N]; [B, M, K] @ [B, K, N] -> [B, M, N]; [B, M, K] @ [K, N] and
// [M, K] @ [B, K, N] -> [B, M, N].
Tensor matmul(const Tensor& a, const Tensor& b);

// x: [..., in], weight: [out, in], bias: [out] or undefined -> [..., out] = x weight^T + bias,
// as torch.nn.functional.linear. The leading dimensions of x are flattened into one GEMM that
// reads the weight through its transpose flag (never a transposed copy); the backward is two
// GEMMs (dx = g weight, dweight = g^T x, summed over the rows inside the GEMM) and a row sum.
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor());

// Copying transpose and permute.
Tensor transpose(const Tensor& x, int64_t d0, int64_t d1);
Tensor permute(const Tensor& x, const std::vector<int64_t>& dims);
// Shares storage; one extent may be -1.
Tensor reshape(const Tensor& x, const Shape& shape);
// Broadcasts x to shape (a copy), and the reverse: sums x down to shape.
Tensor expand(const Tensor& x, const Shape& shape);
Tensor sum_to(const Tensor& x, const Shape& shape);

// Over `dims` (all dimensions when empty); negative dims count from the end.
Tensor sum(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
Tensor mean(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);

Tensor softmax(const Tensor& x, int64_t dim);
Tensor log_softmax(const Tensor& x, int64_t dim);
// logits: [N, C], targets: [N] class indices. Mean over the rows whose target is not
// ignore_index; label_smoothing in [0, 1] mixes the one-hot target with the uniform one.
Tensor cross_entropy(const Tensor& logits, const std::vector<int64_t>& targets,
                     float label_smoothing = 0.0f, int64_t ignore_index = -100);

Tensor concat(const std::vector<Tensor>& tensors, int64_t dim);
Tensor stack(const std::vector<Tensor>& tensors, int64_t dim);
// Elements start, start + step, ... < end along dim; negative start/end count from the end.
Tensor slice(const Tensor& x, int64_t dim, int64_t start, int64_t end, int64_t step = 1);

Tensor operator+(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a, const Tensor& b);
Tensor operator*(const Tensor& a, const Tensor& b);
Tensor operator/(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& x);
Tensor operator+(const Tensor& a, float b);
Tensor operator-(const Tensor& a, float b);
Tensor operator*(const Tensor& a, float b);
Tensor operator/(const Tensor& a, float b);
Tensor operator+(float a, const Tensor& b);
Tensor operator-(float a, const Tensor& b);
Tensor operator*(float a, const Tensor& b);
Tensor operator/(float a, const Tensor& b);

}  // namespace reel
