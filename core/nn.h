#pragma once
// The differentiable ops of the CNN: convolution, batch normalisation, pooling, dropout and
// flatten, with PyTorch's semantics (torch.nn.functional). Each checks its arguments (a
// reel::Error names the op, the argument and the shapes), runs the kernel of kernels/conv.h,
// batchnorm.h, pool.h or dropout.h for the input's device, and records its backward.
#include <cstdint>

#include <functional>
#include <vector>
#include "reel/core/random.h"

#include "reel/core/tensor.h"

namespace reel {

// A height and a width (kernel size, stride, padding, dilation); one number means both.
struct Size2 {
  int64_t h, w;
  Size2(int64_t v) : h(v), w(v) {}  // NOLINT: implicit, as PyTorch's int-or-pair arguments
  Size2(int64_t h_, int64_t w_) : h(h_), w(w_) {}
};

// x: [N, C, H, W], weight: [K, C, R, S], bias: [K] or undefined -> [N, K, P, Q], the
// cross-correlation of torch.nn.functional.conv2d (groups = 1), zero padding.
Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(),
              Size2 stride = 1, Size2 padding = 0, Size2 dilation = 1);

// x: [N, C, H, W] (or [N, C]); weight, bias: [C] or undefined; running_mean, running_var: [C].
// training: normalise with the batch's statistics and, when the running buffers are given,
// update them in place: r = (1 - momentum) r + momentum * batch (the unbiased variance);
// otherwise normalise with the running buffers (required then).
Tensor batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var,
                  const Tensor& weight, const Tensor& bias, bool training, float momentum = 0.1f,
                  float eps = 1e-5f);

// Synchronised BatchNorm across processes (data-parallel training, PyTorch's SyncBatchNorm):
// when a reducer is set, batch_norm in training mode hands it its per-channel sums, which it
// must replace in place by their sum over every process (an all-reduce; every process calls
// batch_norm in the same order). The forward then normalises with the statistics of the whole
// global batch, and the backward sums the two per-channel reductions of its gradient the same
// way. An empty function turns it off. core knows nothing of the transport: reel train sets an
// MPI reducer under --sync-bn.
using BatchStatsReducer = std::function<void(std::vector<double>& sums)>;
void set_batch_norm_reducer(BatchStatsReducer reducer);

// x: [N, C, H, W] or [C, H, W]: the maximum of each kernel window (-inf padding, floor mode).
Tensor max_pool2d(const Tensor& x, Size2 kernel, Size2 stride, Size2 padding = 0);
// x: [N, C, H, W] or [C, H, W] -> [..., P, Q]: output cell (i, j) averages input rows
// [floor(i H / P), ceil((i + 1) H / P)) and the columns likewise.
Tensor adaptive_avg_pool2d(const Tensor& x, Size2 output_size);

// Inverted dropout: in training each element is zeroed with probability p in [0, 1) and the
// others scaled by 1 / (1 - p); the identity otherwise. The mask comes from a counter-based hash
// seeded by one draw from gen (kernels/dropout_math.h): no mask is stored, the backward
// recomputes it, and the CPU and CUDA draw the same mask for the same seed.
Tensor dropout(const Tensor& x, float p, bool training, Generator& gen = default_generator());

// Dimensions start_dim..end_dim merged into one (a reshape: shares storage).
Tensor flatten(const Tensor& x, int64_t start_dim = 1, int64_t end_dim = -1);

// Which convolution and batch normalisation run on CUDA devices: "custom" (ours, the default)
// or "cudnn" (REEL_CONV=cudnn, in builds with cuDNN). set_cuda_conv_backend throws reel::Error
// on an unknown or unavailable name and changes nothing then.
std::string cuda_conv_backend();
void set_cuda_conv_backend(const std::string& name);

}  // namespace reel
