#pragma once
// Small helpers shared by the doctest files.
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <vector>

#include "reel/core/reel.h"

namespace reel::test {

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
