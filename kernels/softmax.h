#pragma once
// softmax and log_softmax along one dimension, and softmax cross-entropy with class indices.
#include <cstdint>

#include "reel/kernels/softmax_math.h"

namespace reel::cpu {

// x, y: [outer, C, inner]; softmax (or log_softmax when log) along C.
void softmax_forward(const float* x, float* y, int64_t outer, int64_t C, int64_t inner, bool log);
// g, y: [outer, C, inner] (y the forward output), dx: [outer, C, inner] accumulated (+=)
void softmax_backward(const float* g, const float* y, float* dx, int64_t outer, int64_t C,
                      int64_t inner, bool log);

// logits: [N, C]; targets: [N] class indices in [0, C) or ignore_index
// log_probs: [N, C] out (log_softmax of logits, kept for the backward)
// returns the mean over non-ignored rows of -sum_c smoothed_target(c) * log_probs[c]
// (NaN when every row is ignored, as PyTorch); *count: rows not ignored.
double cross_entropy_forward(const float* logits, const int64_t* targets, float* log_probs,
                             int64_t N, int64_t C, float label_smoothing, int64_t ignore_index,
                             int64_t* count);
// g: scalar d(loss)/d(mean loss); log_probs: [N, C] from the forward; dlogits: [N, C] +=
void cross_entropy_backward(float g, const float* log_probs, const int64_t* targets,
                            float* dlogits, int64_t N, int64_t C, float label_smoothing,
                            int64_t ignore_index, int64_t count);

}  // namespace reel::cpu
