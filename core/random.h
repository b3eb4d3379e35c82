#pragma once
// Seeded random numbers that are the same on every platform (std::*_distribution is not).
#include <cstdint>
#include <string>

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

  // The whole state as text ("xoshiro256 s0 s1 s2 s3 spare": hex words, the spare normal's bits
  // or "-"), for checkpoints: a generator set from it draws what this one would draw next.
  // set_state throws reel::Error on text that state() did not write.
  std::string state() const;
  void set_state(const std::string& text);

 private:
  uint64_t s_[4];
  bool have_spare_ = false;
  float spare_ = 0.0f;
};

// One step of splitmix64 (Steele, Lea and Flood): advances state by the golden-ratio step and
// returns the mixed value. Seeds Generator, and hashes seeds into independent streams (the
// loader's per-sample generators).
uint64_t splitmix64(uint64_t& state);

// The generator used when none is passed: one for the whole process, seeded with 0 at start,
// so that a program's random numbers do not depend on which thread draws them. manual_seed(s)
// reseeds it, for every thread. Like any Generator it is not synchronised: threads that draw
// at the same time should each use a Generator of their own (as the data loader does).
Generator& default_generator();
void manual_seed(uint64_t seed);

}  // namespace reel
