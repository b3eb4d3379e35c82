#pragma once
// Inverted dropout's mask, drawn from a counter-based hash so that no mask is stored: element i
// of a call seeded `seed` is kept when dropout_keep(seed, i, p); the backward recomputes the same
// mask from the seed. The same element gets the same decision on the CPU and on CUDA.
#include <cstdint>

#include "reel/kernels/common.h"

namespace reel::math {

// The finaliser of splitmix64 (Steele, Lea and Flood): a bijective 64-bit mix.
REEL_HD uint64_t splitmix64_mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// A uniform float in [0, 1) for element i: the top 24 bits of the mixed counter.
REEL_HD float dropout_uniform(uint64_t seed, int64_t i) {
  const uint64_t z = splitmix64_mix(seed + 0x9e3779b97f4a7c15ULL * (static_cast<uint64_t>(i) + 1));
  return static_cast<float>(z >> 40) * (1.0f / 16777216.0f);
}

REEL_HD bool dropout_keep(uint64_t seed, int64_t i, float p) {
  return dropout_uniform(seed, i) >= p;
}

// Element i of the output: x * scale where kept, x * 0 where dropped (so that NaN and inf stay
// NaN, as PyTorch's multiplication by the mask); scale = 1 / (1 - p).
REEL_HD float dropout_value(float x, uint64_t seed, int64_t i, float p, float scale) {
  return x * (dropout_keep(seed, i, p) ? scale : 0.0f);
}

}  // namespace reel::math
