#pragma once
// softmax and log_softmax along one dimension, and softmax cross-entropy with class indices.
#include <cstdint>

#include "reel/kernels/common.h"
#include "reel/kernels/softmax_math.h"

namespace reel::cpu {

// x, y: [outer, C, inner]; softmax (or log_softmax when log) along C.
void softmax_forward(const float* x, float* y, int64_t outer, int64_t C, int64_t inner, bool log);
// g, y: [outer, C, inner] (y the forward output), dx: [outer, C, inner] written
void softmax_backward(const float* g, const float* y, float* dx, int64_t outer, int64_t C,
                      int64_t inner, bool log);

// logits: [N, C]; targets: [N] class indices in [0, C) or ignore_index (checked by the caller)
// log_probs: [N, C] out (log_softmax of logits, kept for the backward)
// loss: [1] out, the sum over rows not ignored of -sum_c smoothed_target(c) * log_probs[c],
// divided by count, the number of those rows (count 0 gives NaN, as PyTorch).
// workspace: [N] scratch for the CUDA version (its per-row losses, summed by a second kernel in
// a fixed order, deterministic unlike atomics); unused by the CPU version, may be null there.
void cross_entropy_forward(const float* logits, const int64_t* targets, float* log_probs,
                           float* loss, float* workspace, int64_t N, int64_t C,
                           float label_smoothing, int64_t ignore_index, int64_t count);
// g: [1] d(loss)/d(mean loss); log_probs: [N, C] from the forward; dlogits: [N, C] written
// (zero on ignored rows, and everywhere when count == 0)
void cross_entropy_backward(const float* g, const float* log_probs, const int64_t* targets,
                            float* dlogits, int64_t N, int64_t C, float label_smoothing,
                            int64_t ignore_index, int64_t count);

}  // namespace reel::cpu

namespace reel::cuda {
// Same contracts; every pointer is device memory.
void softmax_forward(const float* x, float* y, int64_t outer, int64_t C, int64_t inner, bool log,
                     cudaStream_t stream);
void softmax_backward(const float* g, const float* y, float* dx, int64_t outer, int64_t C,
                      int64_t inner, bool log, cudaStream_t stream);
void cross_entropy_forward(const float* logits, const int64_t* targets, float* log_probs,
                           float* loss, float* workspace, int64_t N, int64_t C,
                           float label_smoothing, int64_t ignore_index, int64_t count,
                           cudaStream_t stream);
void cross_entropy_backward(const float* g, const float* log_probs, const int64_t* targets,
                            float* dlogits, int64_t N, int64_t C, float label_smoothing,
                            int64_t ignore_index, int64_t count, cudaStream_t stream);
}  // namespace reel::cuda
