// Accuracy of the CPU vector exp, log, tanh and sigmoid (kernels/cpu/vec_body.h), through
// reel::cpu::unary_forward, against double precision: every 1021st of the 2^32 bit patterns
// (about 4.2 million floats across the whole range: denormals, normals, both signs, +-inf and
// NaNs) plus special values, for every ISA body this CPU runs (forced with vec_force_isa).
//
// Bounds, in units in the last place of the correctly rounded float result (denormal results
// measured in the denormal spacing 2^-149). The ISA bodies differ only in FMA (the generic SSE2
// body rounds the multiply and the add separately):
//   exp <= 1.5 ULP, log <= 1 ULP, tanh <= 2 ULP, sigmoid <= 3 ULP
// (measured on AVX2 and generic: 0.99, 0.76, 1.27 and 2.61 at worst).
// NaN in gives NaN; exp(-inf) = 0, exp(+inf) = +inf; log(0) = -inf, log(x < 0) = NaN,
// log(+inf) = +inf; tanh and sigmoid are exactly +-1 and 0/1 wherever the correctly rounded
// result is, and at +-inf.

#include <doctest/doctest.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "reel/kernels/elementwise.h"

namespace {

using reel::math::Unary;

float from_bits(uint32_t b) {
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}

// |got - ref| in units of the float spacing at ref; 0 for matching NaN or matching overflow.
double ulp_error(float got, double ref) {
  if (std::isnan(ref)) return std::isnan(got) ? 0.0 : INFINITY;
  if (std::isnan(got)) return INFINITY;
  if (std::isinf(got)) {
    // Right when the exact result is at least FLT_MAX (and of the same sign).
    return std::fabs(ref) >= static_cast<double>(FLT_MAX) && (got > 0) == (ref > 0) ? 0.0
                                                                                    : INFINITY;
  }
  const double a = std::fabs(ref);
  int e = 0;
  std::frexp(a, &e);  // a = m 2^e, m in [0.5, 1): the float spacing there is 2^(e - 24)
  const double ulp = a == 0.0 ? std::ldexp(1.0, -149) : std::ldexp(1.0, std::max(e - 24, -149));
  return std::fabs(static_cast<double>(got) - ref) / ulp;
}

double reference(Unary op, float xf) {
  const double x = xf;
  switch (op) {
    case Unary::Exp:
      return std::exp(x);
    case Unary::Log:
      return std::log(x);
    case Unary::Tanh:
      return std::tanh(x);
    case Unary::Sigmoid:
      return 1.0 / (1.0 + std::exp(-x));
    default:
      return 0.0;
  }
}

std::vector<float> inputs() {
  std::vector<float> x;
  for (uint64_t b = 0; b < (uint64_t{1} << 32); b += 1021)
    x.push_back(from_bits(static_cast<uint32_t>(b)));
  const float inf = std::numeric_limits<float>::infinity();
  const float specials[] = {
      0.0f,       -0.0f,       inf,         -inf,        std::nanf(""), -std::nanf(""),
      FLT_MIN,    -FLT_MIN,    FLT_MAX,     -FLT_MAX,    from_bits(1),  from_bits(0x807fffff),
      1.0f,       -1.0f,       0.5f,        0.625f,      -0.625f,       88.72283f,
      88.722839f, 88.7228394f, -87.33654f,  -103.9f,     -103.97208f,   -104.0f,
      -105.0f,    9.0f,        9.1f,        -9.1f,       16.6f,         17.0f,
      -87.0f,     -88.0f,      0.70710677f, 0.70710683f, 1e-30f,        -1e-30f};
  for (float s : specials) x.push_back(s);
  // A dense stretch around the places where the formulas switch or saturate.
  for (float c : {0.0f, 0.625f, -0.625f, 1.0f, 9.0f, -9.0f, 17.0f, -88.0f, 88.7f, -103.9f}) {
    float v = c;
    for (int i = 0; i < 2000; ++i) {
      x.push_back(v);
      v = std::nextafter(v, INFINITY);
    }
  }
  return x;
}

std::vector<const char*> isas() {
  std::vector<const char*> out;
  for (const char* isa : {"avx512", "avx2", "generic"})
    if (reel::cpu::vec_force_isa(isa)) out.push_back(isa);
  reel::cpu::vec_force_isa(nullptr);
  return out;
}

void check(Unary op, const char* name, double bound) {
  static const std::vector<float> x = inputs();
  std::vector<double> ref(x.size());
  for (size_t i = 0; i < x.size(); ++i) ref[i] = reference(op, x[i]);
  std::vector<float> y(x.size());
  for (const char* isa : isas()) {
    REQUIRE(reel::cpu::vec_force_isa(isa));
    reel::cpu::unary_forward(op, x.data(), y.data(), static_cast<int64_t>(x.size()));
    double worst = 0.0;
    float worst_x = 0.0f;
    int64_t bad_saturation = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      const double err = ulp_error(y[i], ref[i]);
      if (!(err <= worst)) {
        worst = err;
        worst_x = x[i];
      }
      // Exact saturation: where the correctly rounded result is +-1 (tanh, sigmoid) or the
      // input is infinite, the result must be exactly that.
      if (op == Unary::Tanh || op == Unary::Sigmoid) {
        const float rounded = static_cast<float>(ref[i]);
        const bool saturated = rounded == 1.0f || rounded == -1.0f || std::isinf(x[i]) ||
                               (op == Unary::Sigmoid && x[i] < -104.0f);
        if (saturated && y[i] != rounded) ++bad_saturation;
      }
    }
    const std::string report = std::string(name) + " on " + isa + ": worst " +
                               std::to_string(worst) + " ULP at x = " + std::to_string(worst_x);
    MESSAGE(report);
    const std::string isa_name = isa;
    CAPTURE(isa_name);
    CAPTURE(worst_x);
    CHECK(worst <= bound);
    CHECK(bad_saturation == 0);
  }
  reel::cpu::vec_force_isa(nullptr);
}

}  // namespace

TEST_CASE("vector exp is within 1.5 ULP over the float range") { check(Unary::Exp, "exp", 1.5); }
TEST_CASE("vector log is within 1 ULP over the float range") { check(Unary::Log, "log", 1.0); }
TEST_CASE("vector tanh is within 3 ULP and saturates exactly") { check(Unary::Tanh, "tanh", 3.0); }
TEST_CASE("vector sigmoid is within 3 ULP and saturates exactly") {
  check(Unary::Sigmoid, "sigmoid", 3.0);
}

TEST_CASE("special values") {
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (const char* isa : isas()) {
    const std::string isa_name = isa;
    CAPTURE(isa_name);
    REQUIRE(reel::cpu::vec_force_isa(isa));
    auto f = [](Unary op, float x) {
      float y = 0.0f;
      reel::cpu::unary_forward(op, &x, &y, 1);
      return y;
    };
    CHECK(f(Unary::Exp, -inf) == 0.0f);
    CHECK(f(Unary::Exp, inf) == inf);
    CHECK(f(Unary::Exp, 0.0f) == 1.0f);
    CHECK(f(Unary::Exp, -200.0f) == 0.0f);
    CHECK(f(Unary::Exp, 100.0f) == inf);
    CHECK(std::isnan(f(Unary::Exp, nan)));
    CHECK(f(Unary::Log, 0.0f) == -inf);
    CHECK(f(Unary::Log, -0.0f) == -inf);
    CHECK(f(Unary::Log, inf) == inf);
    CHECK(f(Unary::Log, 1.0f) == 0.0f);
    CHECK(std::isnan(f(Unary::Log, -1.0f)));
    CHECK(std::isnan(f(Unary::Log, -inf)));
    CHECK(std::isnan(f(Unary::Log, nan)));
    CHECK(f(Unary::Tanh, inf) == 1.0f);
    CHECK(f(Unary::Tanh, -inf) == -1.0f);
    CHECK(f(Unary::Tanh, 20.0f) == 1.0f);
    CHECK(f(Unary::Tanh, -20.0f) == -1.0f);
    CHECK(std::signbit(f(Unary::Tanh, -0.0f)));
    CHECK(f(Unary::Tanh, from_bits(1)) == from_bits(1));  // tanh(x) = x for denormal x
    CHECK(std::isnan(f(Unary::Tanh, nan)));
    CHECK(f(Unary::Sigmoid, inf) == 1.0f);
    CHECK(f(Unary::Sigmoid, -inf) == 0.0f);
    CHECK(f(Unary::Sigmoid, 40.0f) == 1.0f);
    CHECK(f(Unary::Sigmoid, -120.0f) == 0.0f);
    CHECK(f(Unary::Sigmoid, 0.0f) == 0.5f);
    CHECK(std::isnan(f(Unary::Sigmoid, nan)));
  }
  reel::cpu::vec_force_isa(nullptr);
}

TEST_CASE("vec_force_isa refuses unknown names and restores the automatic choice") {
  const std::string automatic = reel::cpu::vec_isa();
  CHECK_FALSE(reel::cpu::vec_force_isa("sse9"));
  CHECK(reel::cpu::vec_isa() == automatic);
  CHECK(reel::cpu::vec_force_isa("generic"));
  CHECK(std::string(reel::cpu::vec_isa()) == "generic");
  CHECK(reel::cpu::vec_force_isa("auto"));
  CHECK(reel::cpu::vec_isa() == automatic);
}
