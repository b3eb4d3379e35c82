#include "reel/core/random.h"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <sstream>

#include "reel/core/error.h"

#include "reel/kernels/dropout_math.h"

namespace reel {

uint64_t splitmix64(uint64_t& state) {
  return math::splitmix64_mix(state += 0x9e3779b97f4a7c15ULL);
}

namespace {
uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
}  // namespace

void Generator::manual_seed(uint64_t seed) {
  uint64_t x = seed;
  for (uint64_t& s : s_) s = splitmix64(x);
  have_spare_ = false;
}

uint64_t Generator::next_u64() {
  const uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

float Generator::uniform() { return static_cast<float>(next_u64() >> 40) * 0x1.0p-24f; }

float Generator::normal() {
  if (have_spare_) {
    have_spare_ = false;
    return spare_;
  }
  // u1 in (0, 1] so that log(u1) is finite.
  const double u1 = (static_cast<double>(next_u64() >> 11) + 1.0) * 0x1.0p-53;
  const double u2 = static_cast<double>(next_u64() >> 11) * 0x1.0p-53;
  const double r = std::sqrt(-2.0 * std::log(u1));
  const double theta = 2.0 * M_PI * u2;
  spare_ = static_cast<float>(r * std::sin(theta));
  have_spare_ = true;
  return static_cast<float>(r * std::cos(theta));
}

std::string Generator::state() const {
  std::ostringstream out;
  out << "xoshiro256" << std::hex;
  for (uint64_t w : s_) out << ' ' << w;
  uint32_t bits = 0;
  std::memcpy(&bits, &spare_, sizeof bits);
  if (have_spare_)
    out << ' ' << bits;
  else
    out << " -";
  return out.str();
}

void Generator::set_state(const std::string& text) {
  std::istringstream in(text);
  std::string tag, spare;
  uint64_t s[4];
  in >> tag >> std::hex >> s[0] >> s[1] >> s[2] >> s[3] >> spare;
  REEL_CHECK(!in.fail() && tag == "xoshiro256" && (in >> std::ws).eof(),
             "random generator state '" << text << "' is malformed");
  bool have = false;
  float value = 0.0f;
  if (spare != "-") {
    char* end = nullptr;
    const unsigned long long bits = std::strtoull(spare.c_str(), &end, 16);
    REEL_CHECK(*end == '\0' && bits <= 0xffffffffULL,
               "random generator state '" << text << "' is malformed");
    const uint32_t b = static_cast<uint32_t>(bits);
    std::memcpy(&value, &b, sizeof value);
    have = true;
  }
  for (int i = 0; i < 4; ++i) s_[i] = s[i];
  have_spare_ = have;
  spare_ = value;
}

Generator& default_generator() {
  static Generator* g = new Generator(0);  // never destroyed: usable from static destructors
  return *g;
}

void manual_seed(uint64_t seed) { default_generator().manual_seed(seed); }

}  // namespace reel
