#pragma once
// Per-element formulas of the pointwise ops, written once for every device.
#include <cmath>

#include "reel/kernels/common.h"

namespace reel::math {

enum class Unary : int { Neg, Exp, Log, Tanh, Sigmoid, Relu };
enum class Binary : int { Add, Sub, Mul, Div };

// Logistic function, split by sign so that exp never overflows.
REEL_HD float sigmoid(float x) {
  if (x >= 0.0f) return 1.0f / (1.0f + expf(-x));
  const float e = expf(x);
  return e / (1.0f + e);
}

REEL_HD float unary_forward(Unary op, float x) {
  switch (op) {
    case Unary::Neg:
      return -x;
    case Unary::Exp:
      return expf(x);
    case Unary::Log:
      return logf(x);
    case Unary::Tanh:
      return tanhf(x);
    case Unary::Sigmoid:
      return sigmoid(x);
    case Unary::Relu:
      return x > 0.0f ? x : 0.0f;
  }
  return 0.0f;
}

// d(loss)/dx given g = d(loss)/dy, the input x and the output y = f(x).
REEL_HD float unary_backward(Unary op, float g, float x, float y) {
  switch (op) {
    case Unary::Neg:
      return -g;
    case Unary::Exp:
      return g * y;
    case Unary::Log:
      return g / x;
    case Unary::Tanh:
      return g * (1.0f - y * y);
    case Unary::Sigmoid:
      return g * y * (1.0f - y);
    case Unary::Relu:
      // From the output, so that the input need not be kept: y > 0 exactly when x > 0
      // (PyTorch: gradient 0 at x == 0).
      return y > 0.0f ? g : 0.0f;
  }
  return 0.0f;
}

REEL_HD float binary_forward(Binary op, float a, float b) {
  switch (op) {
    case Binary::Add:
      return a + b;
    case Binary::Sub:
      return a - b;
    case Binary::Mul:
      return a * b;
    case Binary::Div:
      return a / b;
  }
  return 0.0f;
}

// Partial derivatives of binary_forward times the incoming gradient g.
REEL_HD float binary_backward_a(Binary op, float g, float /*a*/, float b) {
  switch (op) {
    case Binary::Add:
    case Binary::Sub:
      return g;
    case Binary::Mul:
      return g * b;
    case Binary::Div:
      return g / b;
  }
  return 0.0f;
}
REEL_HD float binary_backward_b(Binary op, float g, float a, float b) {
  switch (op) {
    case Binary::Add:
      return g;
    case Binary::Sub:
      return -g;
    case Binary::Mul:
      return g * a;
    case Binary::Div:
      return -g * a / (b * b);
  }
  return 0.0f;
}

}  // namespace reel::math
