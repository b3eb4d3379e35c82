#pragma once
// Seeded random numbers that are the same on every platform (std::*_distribution is not).
#include <cstdint>

namespace reel {

// xoshiro256** seeded through splitmix64 (Blackman and Vigna).
class Generator {
 public:
  explicit Generator(uint64_t seed = 0) { manual_seed(seed); }
  void manual_seed(uint64_t seed);
  uint64_t next_u64();
  // Uniform in [0, 1) with 24 random bits.
  float uniform();
  // Standard normal (Box-Muller, the second value is kept for the next call).
  float normal();

 private:
  uint64_t s_[4];
  bool have_spare_ = false;
  float spare_ = 0.0f;
};

// The generator used when none is passed.
Generator& default_generator();
void manual_seed(uint64_t seed);

}  // namespace reel
