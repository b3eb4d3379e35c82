#pragma once
// Small helpers shared by the doctest files.
#include <doctest/doctest.h>

#include <sys/wait.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "reel/core/reel.h"

namespace reel::test {

// The whole content of a file ("" when it cannot be read).
inline std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Runs a shell command; returns its exit code (-1 when a signal ended it) and what it wrote
// to stdout and stderr (each may be null). The outputs go through files beside `scratch`.
inline int run_command(const std::string& cmd, const std::string& scratch, std::string* out,
                       std::string* err) {
  const std::string o = scratch + ".stdout", e = scratch + ".stderr";
  const int status = std::system((cmd + " > " + o + " 2> " + e).c_str());
  if (out) *out = read_text(o);
  if (err) *err = read_text(e);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// A command's exit code and what it wrote.
struct CommandResult {
  int rc = 0;
  std::string out, err;
};

// `program args` through run_command, as a user runs a binary such as reel.
inline CommandResult run_program(const std::string& program, const std::string& args,
                                 const std::string& scratch) {
  CommandResult r;
  r.rc = run_command(program + " " + args, scratch, &r.out, &r.err);
  return r;
}

// The message of the reel::Error that fn throws; empty when it throws none.
inline std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const reel::Error& e) {
    return e.what();
  }
  return "";
}

// Every element of t equals expected within tol (relative, on a scale of at least 1); tol 0
// asks for exact equality.
inline void check_values(const Tensor& t, const std::vector<float>& expected, float tol = 1e-5f) {
  const std::vector<float> v = t.to_vector();
  REQUIRE(v.size() == expected.size());
  for (size_t i = 0; i < v.size(); ++i) {
    INFO("element " << i);
    if (tol == 0.0f)
      CHECK(v[i] == expected[i]);
    else
      CHECK(v[i] == doctest::Approx(expected[i]).epsilon(tol).scale(1.0));
  }
}

// Every element of got within tol of want, relative on a scale of at least 1:
// |got - want| <= tol * (1 + |want|); NaN anywhere fails. Reports the worst element.
inline void check_close(const Tensor& got, const Tensor& want, float tol = 1e-4f,
                        const std::string& what = "") {
  INFO(what);
  REQUIRE(got.defined());
  REQUIRE(got.shape() == want.shape());
  const std::vector<float> a = got.to_vector(), b = want.to_vector();
  float worst = 0.0f;
  size_t at = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const float e = std::fabs(a[i] - b[i]) / (1.0f + std::fabs(b[i]));
    if (!(e <= worst)) {  // also catches NaN
      worst = std::isnan(e) ? INFINITY : e;
      at = i;
    }
  }
  INFO("worst relative error " << worst << " at element " << at << " of "
                               << shape_str(got.shape()));
  CHECK(worst <= tol);
}

inline Tensor leaf(const Shape& shape, uint64_t seed, float scale = 1.0f) {
  Generator g(seed);
  Tensor t = Tensor::normal(shape, 0.0f, scale, g);
  t.requires_grad_();
  return t;
}

// gradcheck must pass; prints its report when it does not.
inline void check_gradients(const std::function<Tensor(const std::vector<Tensor>&)>& fn,
                            const std::vector<Tensor>& inputs, GradcheckOptions opts = {}) {
  const GradcheckResult r = gradcheck(fn, inputs, opts);
  INFO(r.report);
  CHECK(r.ok);
}

}  // namespace reel::test
