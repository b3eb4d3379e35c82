#include "../test_util.h"

using namespace reel;
using reel::test::check_values;

TEST_CASE("backward of a scalar reaches the leaves") {
  Tensor x = Tensor::from_vector({1, 2, 3}, {3});
  x.requires_grad_();
  Tensor y = (x * x).sum();  // dy/dx = 2x
  CHECK(y.requires_grad());
  CHECK_FALSE(y.is_leaf());
  CHECK(x.is_leaf());
  y.backward();
  check_values(x.grad(), {2, 4, 6});
}

TEST_CASE("gradients accumulate until zero_grad") {
  Tensor x = Tensor::from_vector({1, -1}, {2});
  x.requires_grad_();
  (x * 3.0f).sum().backward();
  (x * 3.0f).sum().backward();
  check_values(x.grad(), {6, 6});
  x.zero_grad(false);  // filled with zeros, kept
  check_values(x.grad(), {0, 0});
  (x * 2.0f).sum().backward();
  check_values(x.grad(), {2, 2});
  x.zero_grad();  // dropped, as PyTorch's set_to_none
  CHECK_FALSE(x.grad().defined());
}

TEST_CASE("fan-out and diamonds sum their gradients") {
  Tensor x = Tensor::from_vector({2}, {1});
  x.requires_grad_();
  Tensor a = x * 3.0f;   // 3x
  Tensor b = exp(x);     // e^x
  Tensor y = a * b + a;  // 3x e^x + 3x -> 3 e^x + 3x e^x + 3
  y.sum().backward();
  const float e2 = std::exp(2.0f);
  check_values(x.grad(), {3 * e2 + 6 * e2 + 3}, 1e-5f);
}

TEST_CASE("NoGradGuard records nothing; detach cuts the history") {
  Tensor x = Tensor::ones({2});
  x.requires_grad_();
  {
    NoGradGuard guard;
    Tensor y = x * 2.0f;
    CHECK_FALSE(y.requires_grad());
    CHECK(y.grad_fn() == nullptr);
  }
  CHECK(grad_mode_enabled());
  Tensor d = (x * 2.0f).detach();
  CHECK_FALSE(d.requires_grad());
  Tensor y = (d * x).sum();
  y.backward();
  check_values(x.grad(), {2, 2});  // d is a constant
}

TEST_CASE("retain_grad keeps an intermediate's gradient") {
  Tensor x = Tensor::from_vector({1, 2}, {2});
  x.requires_grad_();
  Tensor h = x * 2.0f;
  h.retain_grad();
  (h * h).sum().backward();  // d/dh = 2h = [4, 8]
  check_values(h.grad(), {4, 8});
  check_values(x.grad(), {8, 16});
}

TEST_CASE("backward with an explicit gradient for a non-scalar output") {
  Tensor x = Tensor::from_vector({1, 2, 3}, {3});
  x.requires_grad_();
  Tensor y = x * x;
  y.backward(Tensor::from_vector({1, 0, -1}, {3}));
  check_values(x.grad(), {2, 0, -6});
}

TEST_CASE("a long chain back-propagates without recursion") {
  Tensor x = Tensor::from_vector({1}, {1});
  x.requires_grad_();
  Tensor y = x;
  for (int i = 0; i < 20000; ++i) y = y * 1.0001f;
  y.sum().backward();
  CHECK(x.grad().item() == doctest::Approx(std::pow(1.0001, 20000)).epsilon(1e-3));
}

TEST_CASE("the graph owns no cycle: a dropped loss frees its activations") {
  const AllocatorStats before = cpu_allocator_stats();
  {
    Tensor w = Tensor::ones({64, 64});
    w.requires_grad_();
    Tensor loss = sigmoid(matmul(w, w)).sum();
    loss.backward();
  }
  const AllocatorStats after = cpu_allocator_stats();
  CHECK(after.in_use_bytes == before.in_use_bytes);
}

TEST_CASE("in-place ops refuse tensors that require grad while recording") {
  Tensor w = Tensor::ones({2});
  w.requires_grad_();
  CHECK_THROWS_AS(w.add_(Tensor::ones({2})), reel::Error);
  {
    NoGradGuard guard;  // as an optimizer step
    w.add_(Tensor::ones({2}), -0.5f);
  }
  check_values(w, {0.5f, 0.5f});
}
