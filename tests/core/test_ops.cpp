// Every differentiable op: forward against values computed by hand (the arithmetic is in the
// comments), backward against central finite differences through gradcheck.
#include <limits>

#include "../test_util.h"

using namespace reel;
using reel::test::check_gradients;
using reel::test::check_values;
using reel::test::leaf;

namespace {
const Tensor A23 = Tensor::from_vector({1, 2, 3, 4, 5, 6}, {2, 3});  // [[1,2,3],[4,5,6]]
using Fn = std::function<Tensor(const std::vector<Tensor>&)>;
}  // namespace

TEST_CASE("add, sub, mul, div broadcast like PyTorch") {
  Tensor row = Tensor::from_vector({10, 20, 30}, {3});
  Tensor col = Tensor::from_vector({1, 2}, {2, 1});
  check_values(A23 + row, {11, 22, 33, 14, 25, 36});      // row vector over a matrix
  check_values(A23 - col, {0, 1, 2, 2, 3, 4});            // column vector
  check_values(A23 * A23, {1, 4, 9, 16, 25, 36});         // same shape
  check_values(A23 / 2.0f, {0.5f, 1, 1.5f, 2, 2.5f, 3});  // scalar
  check_values(1.0f - A23, {0, -1, -2, -3, -4, -5});
  check_values(row / col, {10, 20, 30, 5, 10, 15});  // [3] with [2,1] -> [2,3]
  CHECK((row / col).shape() == Shape{2, 3});
  CHECK(broadcast_shapes({4, 1, 3}, {2, 1}, "t") == Shape{4, 2, 3});
}

TEST_CASE("binary ops: gradients, broadcast gradients sum over the broadcast dimensions") {
  const std::vector<std::pair<Shape, Shape>> shapes = {{{3, 4}, {3, 4}}, {{3, 4}, {4}},
                                                       {{3, 4}, {3, 1}}, {{2, 3, 4}, {}},
                                                       {{4}, {2, 3, 4}}, {{2, 1, 4}, {3, 1}}};
  for (auto [sa, sb] : shapes) {
    INFO(shape_str(sa) << " with " << shape_str(sb));
    Tensor a = leaf(sa, 1), b = leaf(sb, 2);
    {  // keep b away from 0 for div
      NoGradGuard g;
      b.copy_(sigmoid(b) + 0.5f);
    }
    check_gradients([](const std::vector<Tensor>& x) { return x[0] + x[1]; }, {a, b});
    check_gradients([](const std::vector<Tensor>& x) { return x[0] - x[1]; }, {a, b});
    check_gradients([](const std::vector<Tensor>& x) { return x[0] * x[1]; }, {a, b});
    check_gradients([](const std::vector<Tensor>& x) { return x[0] / x[1]; }, {a, b});
  }
  // d(row)/... of a [3] row added to [2,3]: each element is used twice.
  Tensor r = Tensor::zeros({3});
  r.requires_grad_();
  (A23 + r).sum().backward();
  check_values(r.grad(), {2, 2, 2});
}

TEST_CASE("unary ops") {
  Tensor x = Tensor::from_vector({-1, 0, 0.5f, 2}, {4});
  check_values(neg(x), {1, 0, -0.5f, -2});
  check_values(exp(x), {0.36787944f, 1, 1.64872127f, 7.3890561f});
  check_values(log(Tensor::from_vector({1, 2.718281828f, 10}, {3})), {0, 1, 2.30258509f});
  check_values(tanh(x), {-0.76159416f, 0, 0.46211716f, 0.96402758f});
  check_values(sigmoid(x), {0.26894142f, 0.5f, 0.62245933f, 0.88079708f});
  check_values(relu(x), {0, 0, 0.5f, 2});
  // Large inputs stay finite.
  check_values(sigmoid(Tensor::from_vector({-100, 100}, {2})), {0, 1});

  Tensor a = leaf({3, 4}, 3);
  check_gradients([](const std::vector<Tensor>& v) { return neg(v[0]); }, {a});
  check_gradients([](const std::vector<Tensor>& v) { return exp(v[0]); }, {a});
  check_gradients([](const std::vector<Tensor>& v) { return tanh(v[0]); }, {a});
  check_gradients([](const std::vector<Tensor>& v) { return sigmoid(v[0]); }, {a});
  check_gradients([](const std::vector<Tensor>& v) { return relu(v[0]); }, {a});
  Tensor p = Tensor::uniform({3, 4}, 0.5f, 2.0f, default_generator());
  p.requires_grad_();
  check_gradients([](const std::vector<Tensor>& v) { return log(v[0]); }, {p});
  // relu's gradient is 0 at 0, as PyTorch.
  Tensor z = Tensor::zeros({1});
  z.requires_grad_();
  relu(z).sum().backward();
  CHECK(z.grad().item() == 0.0f);
}

TEST_CASE("matmul: 2-D, batched 3-D, and a 3-D batch against one matrix") {
  Tensor a = Tensor::from_vector({1, 2, 3, 4}, {2, 2});
  Tensor b = Tensor::from_vector({5, 6, 7, 8}, {2, 2});
  check_values(matmul(a, b), {19, 22, 43, 50});  // [1*5+2*7, 1*6+2*8; 3*5+4*7, 3*6+4*8]
  Tensor ab = stack({a, b}, 0);                  // [2, 2, 2]
  Tensor ba = stack({b, a}, 0);
  // batch 0: a @ b; batch 1: b @ a = [5+18, 10+24; 7+24, 14+32]
  check_values(matmul(ab, ba), {19, 22, 43, 50, 23, 34, 31, 46});
  check_values(matmul(ab, a), {7, 10, 15, 22, 23, 34, 31, 46});  // a @ a, b @ a
  check_values(matmul(a, ab), {7, 10, 15, 22, 19, 22, 43, 50});  // a @ a, a @ b
  CHECK(matmul(Tensor::ones({2, 3, 5}), Tensor::ones({5, 4})).shape() == Shape{2, 3, 4});
  // K = 0 gives zeros.
  check_values(matmul(Tensor::ones({2, 0}), Tensor::ones({0, 2})), {0, 0, 0, 0});
  // An empty batch against a 2-D operand: an empty result, in both orders.
  CHECK(matmul(Tensor::zeros({0, 3, 4}), Tensor::ones({4, 2})).shape() == Shape{0, 3, 2});
  CHECK(matmul(Tensor::ones({3, 4}), Tensor::zeros({0, 4, 2})).shape() == Shape{0, 3, 2});
  {
    Tensor e = Tensor::zeros({0, 3, 4}), w = Tensor::ones({4, 2});
    e.requires_grad_();
    w.requires_grad_();
    matmul(e, w).sum().backward();
    CHECK(e.grad().shape() == Shape{0, 3, 4});
    check_values(w.grad(), {0, 0, 0, 0, 0, 0, 0, 0});
  }
  // A step larger than the range gives one element, without overflow.
  CHECK(A23.slice(1, 0, 3, std::numeric_limits<int64_t>::max()).shape() == Shape{2, 1});

  const Fn mm = [](const std::vector<Tensor>& v) { return matmul(v[0], v[1]); };
  check_gradients(mm, {leaf({3, 5}, 4), leaf({5, 2}, 5)});
  check_gradients(mm, {leaf({2, 3, 5}, 6), leaf({2, 5, 4}, 7)});
  check_gradients(mm, {leaf({2, 3, 5}, 8), leaf({5, 4}, 9)});
  check_gradients(mm, {leaf({3, 5}, 10), leaf({2, 5, 4}, 11)});
  check_gradients(mm, {leaf({1, 7}, 12), leaf({7, 1}, 13)});
}

TEST_CASE("transpose and permute copy") {
  check_values(transpose(A23, 0, 1), {1, 4, 2, 5, 3, 6});
  Tensor x = Tensor::arange(0, 24).reshape({2, 3, 4});
  Tensor p = permute(x, {2, 0, 1});  // p[k][i][j] = x[i][j][k] = 12i + 4j + k
  CHECK(p.shape() == Shape{4, 2, 3});
  CHECK(p.at({3, 1, 2}) == 12 * 1 + 4 * 2 + 3);
  CHECK(p.at({1, 0, 1}) == 4 + 1);
  check_values(transpose(x, -1, 0).transpose(0, 2), x.to_vector());
  check_gradients(
      [](const std::vector<Tensor>& v) {
        return permute(v[0], {1, 2, 0});
      },
      {leaf({2, 3, 4}, 14)});
  check_gradients([](const std::vector<Tensor>& v) { return transpose(v[0], 0, 1); },
                  {leaf({3, 5}, 15)});
}

TEST_CASE("reshape") {
  Tensor x = leaf({2, 6}, 16);
  check_gradients([](const std::vector<Tensor>& v) { return reshape(v[0], {3, -1}) * 2.0f; }, {x});
  check_values(A23.reshape({3, 2}), {1, 2, 3, 4, 5, 6});
}

TEST_CASE("sum and mean over dimensions") {
  check_values(A23.sum({1}), {6, 15});
  check_values(A23.sum({0}), {5, 7, 9});
  check_values(A23.sum(), {21});
  CHECK(A23.sum().dim() == 0);
  CHECK(A23.sum({1}, true).shape() == Shape{2, 1});
  check_values(A23.mean({0}), {2.5f, 3.5f, 4.5f});
  check_values(A23.mean(), {3.5f});
  check_values(A23.mean({-1}, true), {2, 5});
  Tensor x = Tensor::arange(0, 24).reshape({2, 3, 4});
  // sum over dims 0 and 2: for j, sum_i sum_k 12i + 4j + k = 2*(0+1+2+3) + 8*4j + 4*12
  check_values(x.sum({0, 2}), {60, 92, 124});
  const Fn s02 = [](const std::vector<Tensor>& v) { return sum(v[0], {0, 2}); };
  const Fn m1 = [](const std::vector<Tensor>& v) { return mean(v[0], {1}, true); };
  const Fn all = [](const std::vector<Tensor>& v) { return mean(v[0]); };
  check_gradients(s02, {leaf({2, 3, 4}, 17)});
  check_gradients(m1, {leaf({2, 3, 4}, 18)});
  check_gradients(all, {leaf({2, 3, 4}, 19)});
}

TEST_CASE("softmax and log_softmax") {
  Tensor x = Tensor::from_vector({1, 2, 3}, {1, 3});
  check_values(softmax(x, 1), {0.09003057f, 0.24472847f, 0.66524096f});
  check_values(log_softmax(x, -1), {-2.40760596f, -1.40760596f, -0.40760596f});
  // Along dimension 0 of a column: the same numbers.
  check_values(softmax(x.reshape({3, 1}), 0), {0.09003057f, 0.24472847f, 0.66524096f});
  // Shift-invariant and stable for large logits.
  check_values(softmax(Tensor::from_vector({1001, 1002, 1003}, {3}), 0),
               {0.09003057f, 0.24472847f, 0.66524096f});
  for (int64_t dim : {0, 1, 2}) {
    INFO("dim " << dim);
    check_gradients([dim](const std::vector<Tensor>& v) { return softmax(v[0], dim); },
                    {leaf({2, 3, 4}, 20)});
    check_gradients([dim](const std::vector<Tensor>& v) { return log_softmax(v[0], dim); },
                    {leaf({2, 3, 4}, 21)});
  }
}

TEST_CASE("cross_entropy: class indices, mean, label smoothing, ignore_index") {
  Tensor logits = Tensor::from_vector({1, 2, 3, 0, 0, 1}, {2, 3});
  // Row 0, target 2: -log_softmax[2] = 0.40760596. Row 1, target 0: log(2 + e) = 1.55144471.
  CHECK(cross_entropy(logits, {2, 0}).item() ==
        doctest::Approx((0.40760596 + 1.55144471) / 2).epsilon(1e-6));
  // ignore_index drops row 1 from the sum and from the mean's count.
  CHECK(cross_entropy(logits, {2, -100}).item() == doctest::Approx(0.40760596).epsilon(1e-6));
  CHECK(cross_entropy(logits, {7, 0}, 0.0f, 7).item() == doctest::Approx(1.55144471).epsilon(1e-6));
  // Smoothing 0.1 over C = 3: target (0.0333, 0.0333, 0.9333):
  // 0.9333 * 0.40760596 + 0.0333 * (2.40760596 + 1.40760596) = 0.50760596
  CHECK(cross_entropy(logits.slice(0, 0, 1), {2}, 0.1f).item() ==
        doctest::Approx(0.50760596).epsilon(1e-6));
  // Every row ignored: NaN, as PyTorch.
  CHECK(std::isnan(cross_entropy(logits, {-100, -100}).item()));

  const std::vector<int64_t> t = {0, 3, 1, -100, 2};
  Tensor l = leaf({5, 4}, 22);
  check_gradients([&t](const std::vector<Tensor>& v) { return cross_entropy(v[0], t); }, {l});
  check_gradients([&t](const std::vector<Tensor>& v) { return cross_entropy(v[0], t, 0.2f); }, {l});
  // The gradient of an ignored row is zero.
  l.zero_grad();
  cross_entropy(l, t).backward();
  for (int64_t c = 0; c < 4; ++c) CHECK(l.grad().at({3, c}) == 0.0f);
}

TEST_CASE("concat, stack and slice") {
  Tensor a = Tensor::from_vector({1, 2}, {1, 2});
  Tensor b = Tensor::from_vector({3, 4, 5, 6}, {2, 2});
  check_values(concat({a, b}, 0), {1, 2, 3, 4, 5, 6});
  check_values(concat({b, b.slice(1, 0, 1)}, 1), {3, 4, 3, 5, 6, 5});
  Tensor s = stack({a, a * 2.0f}, 1);  // [1, 2, 2]
  CHECK(s.shape() == Shape{1, 2, 2});
  check_values(s, {1, 2, 2, 4});
  check_values(A23.slice(1, 1, 3), {2, 3, 5, 6});
  check_values(A23.slice(1, 0, 3, 2), {1, 3, 4, 6});
  check_values(A23.slice(0, -1, 2), {4, 5, 6});
  CHECK(A23.slice(1, 2, 2).numel() == 0);

  check_gradients(
      [](const std::vector<Tensor>& v) {
        return concat({v[0], v[1], v[0]}, 1);
      },
      {leaf({2, 3}, 23), leaf({2, 1}, 24)});
  check_gradients(
      [](const std::vector<Tensor>& v) {
        return stack({v[0], v[1]}, 2);
      },
      {leaf({2, 3}, 25), leaf({2, 3}, 26)});
  check_gradients([](const std::vector<Tensor>& v) { return v[0].slice(1, 1, 5, 2); },
                  {leaf({3, 6}, 27)});
}

TEST_CASE("a two-layer network: composite gradient") {
  const Fn net = [](const std::vector<Tensor>& v) {
    Tensor h = tanh(matmul(v[0], v[1]) + v[2]);
    return cross_entropy(matmul(h, v[3]), {0, 2, 1});
  };
  check_gradients(net, {leaf({3, 5}, 28), leaf({5, 4}, 29), leaf({4}, 30), leaf({4, 3}, 31)});
}

TEST_CASE("gradcheck reports a wrong gradient") {
  // A deliberately wrong op: forward x^2, backward claims 3x.
  const Fn wrong = [](const std::vector<Tensor>& v) {
    Tensor y = v[0] * v[0];
    Tensor out = y.detach().clone();
    auto node = record("wrong_square", out, {v[0]});
    node->save(v[0]);
    node->backward = [](Node& self, const std::vector<Tensor>& g) {
      return std::vector<Tensor>{g[0] * self.saved(0) * 3.0f};
    };
    return out;
  };
  const GradcheckResult r = gradcheck(wrong, {leaf({4}, 32)});
  CHECK_FALSE(r.ok);
  CHECK(r.max_rel_error[0] > 0.1);
  CHECK(r.report.find("FAILED") != std::string::npos);
  const GradcheckResult good =
      gradcheck([](const std::vector<Tensor>& v) { return v[0] * v[0]; }, {leaf({4}, 32)});
  CHECK(good.ok);
  CHECK(good.max_rel_error[0] < 1e-2);
}
