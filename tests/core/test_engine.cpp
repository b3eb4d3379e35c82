// The autograd engine: nodes with several outputs, memory freed during backward, retain_graph,
// graphs too long to destroy recursively, memory statistics, in-place safety through storage
// versions, who owns a gradient, and the backward kernels writing fresh gradients.
#include <cmath>
#include <limits>
#include <thread>

#include "../test_util.h"
#include "reel/core/dispatch.h"
#include "reel/kernels/elementwise.h"
#include "reel/kernels/softmax.h"

using namespace reel;
using reel::test::check_gradients;
using reel::test::check_values;
using reel::test::error_of;
using reel::test::leaf;

namespace {

// A two-output op written the way a fused op (the LSTM: sequence, h_n, c_n) is: out0 = 2x,
// out1 = x^2. `calls` counts its backward runs; `seen` records which output gradients came.
struct TwoOut {
  Tensor a, b;
};
int g_calls = 0;
std::vector<bool> g_seen;

TwoOut two_outputs(const Tensor& x) {
  Tensor a, b;
  {
    NoGradGuard guard;
    a = x * 2.0f;
    b = x * x;
  }
  if (any_requires_grad({&x})) {
    auto node = record("two_outputs", {a, b}, {x});
    node->save(x);
    node->backward = [](Node& self, const std::vector<Tensor>& g) {
      ++g_calls;
      g_seen = {g[0].defined(), g[1].defined()};
      const Tensor xs = self.saved(0);
      Tensor dx = Tensor::zeros(self.input_shapes[0]);
      if (g[0].defined()) dx = dx + g[0] * 2.0f;
      if (g[1].defined()) dx = dx + g[1] * xs * 2.0f;
      return std::vector<Tensor>{dx};
    };
  }
  return {a, b};
}

}  // namespace

TEST_CASE("a node with two outputs runs its backward once, with every output's gradient") {
  Tensor x = Tensor::from_vector({1, 2, 3}, {3});
  x.requires_grad_();
  TwoOut y = two_outputs(x);
  CHECK(y.a.grad_fn() == y.b.grad_fn());
  CHECK(y.a.impl()->output_nr == 0);
  CHECK(y.b.impl()->output_nr == 1);
  g_calls = 0;
  // Each output feeds its own consumer, and output 1 twice (fan-in into one slot).
  Tensor loss = (y.a * 3.0f).sum() + (y.b * y.b).sum() + y.b.sum();
  loss.backward();
  CHECK(g_calls == 1);
  CHECK(g_seen == std::vector<bool>{true, true});
  // d/dx [6x + x^4 + x^2] = 6 + 4x^3 + 2x
  check_values(x.grad(), {6 + 4 + 2, 6 + 32 + 4, 6 + 108 + 6});
}

TEST_CASE("an output no gradient reached arrives undefined, meaning zero") {
  Tensor x = Tensor::from_vector({1, -2}, {2});
  x.requires_grad_();
  TwoOut y = two_outputs(x);
  g_calls = 0;
  y.b.sum().backward();  // only output 1 is used
  CHECK(g_calls == 1);
  CHECK(g_seen == std::vector<bool>{false, true});
  check_values(x.grad(), {2, -4});  // d/dx x^2
  // And through output 0 alone, reached through an op in between: the edge names output 0.
  Tensor x2 = Tensor::from_vector({5}, {1});
  x2.requires_grad_();
  (exp(two_outputs(x2).a * 0.1f)).sum().backward();  // d/dx e^{0.2x} = 0.2 e^{0.2x}
  CHECK(g_seen == std::vector<bool>{true, false});
  check_values(x2.grad(), {0.2f * std::exp(1.0f)});
}

TEST_CASE("a second backward through a freed graph is an error; retain_graph keeps it") {
  Tensor x = Tensor::from_vector({1, 2}, {2});
  x.requires_grad_();
  Tensor loss = (exp(x) * x).sum();
  loss.backward();
  const std::vector<float> first = x.grad().to_vector();
  try {
    loss.backward();
    FAIL("a second backward through a freed graph must throw");
  } catch (const Error& e) {
    const std::string m = e.what();
    CHECK(m.find("second time") != std::string::npos);
    CHECK(m.find("retain_graph") != std::string::npos);
  }
  check_values(x.grad(), first);  // the failed call changed nothing

  Tensor z = Tensor::from_vector({1, 2}, {2});
  z.requires_grad_();
  Tensor l2 = (exp(z) * z).sum();
  l2.backward(Tensor(), /*retain_graph=*/true);
  l2.backward(Tensor(), /*retain_graph=*/true);
  l2.backward();  // the last one may free
  // d/dz z e^z = (1 + z) e^z, three times
  check_values(z.grad(), {3 * 2 * std::exp(1.0f), 3 * 3 * std::exp(2.0f)}, 1e-5f);
  CHECK_THROWS_AS(l2.backward(), Error);
}

TEST_CASE("a node's saved tensors are released when its backward has run") {
  Tensor x = leaf({64}, 1);
  Tensor y = tanh(x);
  const std::shared_ptr<Node> node = y.grad_fn();
  Tensor loss = (y * 2.0f).sum();
  CHECK_FALSE(node->released());
  CHECK(node->saved(0).defined());
  loss.backward();
  CHECK(node->released());
  CHECK(!node->backward);
  CHECK_THROWS_WITH_AS(node->saved(0), doctest::Contains("freed"), Error);
}

TEST_CASE("destroying and walking very long graphs does not recurse") {
  SUBCASE("a chain of 300,000 ops") {
    Tensor x = Tensor::from_vector({0.5f}, {1});
    x.requires_grad_();
    Tensor y = x;
    for (int i = 0; i < 300000; ++i) y = y + 1e-6f;
    y.sum().backward();
    check_values(x.grad(), {1});
    y = Tensor();  // the chain is destroyed here; a recursive destructor overflows the stack
    x = Tensor();
  }
  SUBCASE("a chain of 300,000 ops that each read the previous result twice") {
    Tensor x = Tensor::from_vector({1.0f}, {1});
    x.requires_grad_();
    Tensor y = x;
    for (int i = 0; i < 300000; ++i) y = y * y;  // two edges to the same node every step
    y = Tensor();  // destroyed here: an edge that is not the last must not recurse either
    x = Tensor();
  }
  SUBCASE("a composed LSTM cell over 10,000 steps") {
    const int64_t H = 2, T = 10000;
    Tensor w = leaf({1 + H, 4 * H}, 7, 0.3f);  // [x_t, h] -> gates i, f, g, o
    Tensor h = Tensor::zeros({1, H}), c = Tensor::zeros({1, H});
    for (int64_t t = 0; t < T; ++t) {
      Tensor xt = Tensor::full({1, 1}, std::sin(0.01f * static_cast<float>(t)));
      Tensor gates = matmul(concat({xt, h}, 1), w);
      Tensor i = sigmoid(gates.slice(1, 0, H)), f = sigmoid(gates.slice(1, H, 2 * H));
      Tensor g = tanh(gates.slice(1, 2 * H, 3 * H)), o = sigmoid(gates.slice(1, 3 * H, 4 * H));
      c = f * c + i * g;
      h = o * tanh(c);
    }
    h.sum().backward();
    CHECK(w.grad().defined());
    const std::vector<float> gw = w.grad().to_vector();
    for (float v : gw) CHECK(std::isfinite(v));
    h = Tensor();
    c = Tensor();
  }
}

TEST_CASE("memory_stats: the peak of a deep backward falls when saved tensors are released") {
  // A deep net whose every layer has a weight: during backward each weight's gradient is
  // allocated while the layers above it have already released what they saved. With
  // retain_graph everything saved stays, and the peak is higher by about one layer's saved
  // activations per layer.
  const int L = 24;
  const int64_t n = 1 << 16;  // 256 KiB per tensor
  const int64_t bytes = n * static_cast<int64_t>(sizeof(float));
  std::vector<Tensor> ws;
  for (int l = 0; l < L; ++l) ws.push_back(leaf({n}, 100 + l, 0.5f));
  Tensor x = Tensor::full({n}, 0.3f);
  auto peak_of = [&](bool retain) {
    for (Tensor& w : ws) w.zero_grad();
    Tensor y = x;
    for (int l = 0; l < L; ++l) y = tanh(y * ws[l]);  // saves y, w (mul) and tanh's output
    Tensor loss = y.sum();
    y = Tensor();
    reset_peak_memory_stats(Device::cpu());
    const std::size_t before = memory_stats(Device::cpu()).in_use_bytes;
    loss.backward(Tensor(), retain);
    const AllocatorStats s = memory_stats(Device::cpu());
    // In use after backward, while `loss` still holds the graph: released, only the weights'
    // gradients are left beyond what was there before.
    return std::make_tuple(s.peak_in_use_bytes - before, s.in_use_bytes, before);
  };
  const auto [peak_retained, after_retained, before_r] = peak_of(true);
  const auto [peak_released, after_released, before_f] = peak_of(false);
  MESSAGE("backward peak above the forward: retain_graph "
          << peak_retained / 1024 << " KiB, released " << peak_released / 1024 << " KiB");
  CHECK(before_r == before_f);
  // Each layer's saved tanh output (one tensor) is freed as its backward runs, while its
  // weight's gradient (one tensor) is allocated: released, the memory in use stays level;
  // retained, it climbs by a layer's gradient per layer.
  const auto L_bytes = static_cast<std::size_t>(L * bytes);
  CHECK(after_retained - after_released >= L_bytes);
  CHECK(peak_retained - peak_released >= L_bytes / 2);
}

TEST_CASE("memory_stats counts system allocations, cache and a reset peak; empty_cache") {
  empty_cache(Device::cpu());
  const AllocatorStats s0 = memory_stats(Device::cpu());
  CHECK(s0.cached_bytes == 0);
  {
    Tensor a = Tensor::empty({1 << 18});  // 1 MiB, a fresh size class
    const AllocatorStats s1 = memory_stats(Device::cpu());
    CHECK(s1.in_use_bytes >= s0.in_use_bytes + (std::size_t{1} << 20));
    CHECK(s1.peak_in_use_bytes >= s1.in_use_bytes);
    CHECK(s1.system_allocations == s0.system_allocations + 1);
  }
  const AllocatorStats s2 = memory_stats(Device::cpu());
  CHECK(s2.cached_bytes >= (std::size_t{1} << 20));  // kept for reuse, not given back
  CHECK(s2.peak_in_use_bytes >= s2.in_use_bytes + (std::size_t{1} << 20));
  reset_peak_memory_stats(Device::cpu());
  CHECK(memory_stats(Device::cpu()).peak_in_use_bytes == memory_stats(Device::cpu()).in_use_bytes);
  { Tensor again = Tensor::empty({1 << 18}); }  // from the cache
  CHECK(memory_stats(Device::cpu()).system_allocations == s2.system_allocations);
  empty_cache(Device::cpu());
  CHECK(memory_stats(Device::cpu()).cached_bytes == 0);
}

TEST_CASE("in-place changes bump the storage's version") {
  Tensor t = Tensor::zeros({4});
  const uint64_t v0 = t.version();
  t.fill_(1.0f);
  t.add_(Tensor::ones({4}));
  t.mul_(2.0f);
  t.copy_(Tensor::ones({4}));
  const std::vector<float> host(4, 3.0f);
  t.copy_from_host(host.data(), 4);
  CHECK(t.version() == v0 + 5);
  Tensor view = t.reshape({2, 2});  // shares storage, and so the counter
  view.fill_(0.0f);
  CHECK(t.version() == v0 + 6);
  Tensor copy = t.clone();  // storage of its own, and so a counter of its own
  const uint64_t vc = copy.version();
  t.fill_(2.0f);
  CHECK(copy.version() == vc);
}

TEST_CASE("an in-place call that fails changes nothing, not even the version") {
  Tensor w = Tensor::zeros({3});
  const uint64_t v = w.version();
  CHECK_THROWS_AS(w.add_(Tensor::ones({4})), Error);
  CHECK_THROWS_AS(w.copy_(Tensor::ones({4})), Error);
  std::vector<float> four(4);
  CHECK_THROWS_AS(w.copy_from_host(four.data(), 4), Error);
  CHECK(w.version() == v);
}

TEST_CASE("cross-entropy with a class masked by a logit of -inf, as PyTorch") {
  // log_softmax([0, -inf, 1])[2] = 1 - log(1 + e) = -0.31326; the masked class adds nothing.
  const float inf = std::numeric_limits<float>::infinity();
  Tensor x = Tensor::from_vector({0, -inf, 1}, {1, 3});
  x.requires_grad_();
  Tensor loss = cross_entropy(x, {2});
  CHECK(loss.item() == doctest::Approx(0.31326f).epsilon(1e-4));
  loss.backward();
  const float e = std::exp(1.0f);
  check_values(x.grad(), {1 / (1 + e), 0, e / (1 + e) - 1});
}

TEST_CASE("matmul of a 2-D operand with an empty batch has a zero gradient") {
  Tensor a = leaf({2, 3}, 40);
  Tensor b = Tensor::zeros({0, 3, 4});
  matmul(a, b).sum().backward();
  check_values(a.grad(), {0, 0, 0, 0, 0, 0}, 0.0f);
}

TEST_CASE("a saved tensor changed in place makes backward throw, naming the op") {
  SUBCASE("an input saved by mul") {
    Tensor a = leaf({3}, 1);
    Tensor b = Tensor::from_vector({1, 2, 3}, {3});  // needs no grad: may change in place
    Tensor y = (a * b).sum();
    b.add_(Tensor::ones({3}));
    CHECK_THROWS_WITH_AS(y.backward(), doctest::Contains("mul saved for its backward"), Error);
    CHECK_FALSE(a.grad().defined());  // nothing reached the leaf
  }
  SUBCASE("an output saved by exp") {
    Tensor x = leaf({3}, 2);
    Tensor y = exp(x);
    Tensor loss = y.sum();  // sum saves nothing, so exp is the one to notice
    {
      NoGradGuard guard;
      y.mul_(2.0f);
    }
    CHECK_THROWS_WITH_AS(loss.backward(), doctest::Contains("exp saved"), Error);
  }
  SUBCASE("a change to a tensor nobody saved is fine") {
    Tensor a = leaf({3}, 3);
    Tensor b = Tensor::from_vector({1, 2, 3}, {3});
    Tensor y = (a + b).sum();  // add saves nothing
    b.fill_(7.0f);
    y.backward();
    check_values(a.grad(), {1, 1, 1});
  }
}

TEST_CASE("the engine owns the gradients it sums: no aliasing between results") {
  SUBCASE("add hands the same gradient to both inputs") {
    Tensor x = leaf({3}, 4), y = leaf({3}, 5);
    (x + y).sum().backward();
    CHECK_FALSE(x.grad().same_storage(y.grad()));
    {
      NoGradGuard guard;
      x.grad().add_(Tensor::ones({3}));  // must not show in y's gradient
    }
    check_values(y.grad(), {1, 1, 1});
  }
  SUBCASE("x + x: one gradient arrives twice") {
    Tensor x = leaf({2}, 6);
    Tensor h = x * 1.0f;
    (h + h).sum().backward();
    check_values(x.grad(), {2, 2});
  }
  SUBCASE("the caller's gradient is never taken over") {
    Tensor x = leaf({2}, 7);
    Tensor g = Tensor::from_vector({1, 2}, {2});
    x.clone().backward(g);  // clone passes its gradient through unchanged
    CHECK_FALSE(x.grad().same_storage(g));
    x.clone().backward(g);  // accumulates in place into x.grad, never into g
    check_values(g, {1, 2});
    check_values(x.grad(), {2, 4});
  }
  SUBCASE("a retained intermediate gradient is a copy") {
    Tensor x = leaf({2}, 8);
    Tensor h = x * 3.0f;
    h.retain_grad();
    (h + h).sum().backward();
    check_values(h.grad(), {2, 2});
    check_values(x.grad(), {6, 6});
    CHECK_FALSE(h.grad().same_storage(x.grad()));
  }
}

TEST_CASE("backward kernels write a fresh gradient: what was in the buffer does not matter") {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<float> g{1, -2, 0.5f}, x{0.5f, -1, 2}, y{0.2f, 0.3f, 0.5f};
  std::vector<float> dx(3, nan);
  cpu::unary_backward(math::Unary::Tanh, g.data(), x.data(), y.data(), dx.data(), 3);
  for (int i = 0; i < 3; ++i) CHECK(dx[i] == doctest::Approx(g[i] * (1 - y[i] * y[i])));
  dx.assign(3, nan);
  cpu::softmax_backward(g.data(), y.data(), dx.data(), 1, 3, 1, false);
  const float dot = g[0] * y[0] + g[1] * y[1] + g[2] * y[2];
  for (int i = 0; i < 3; ++i) CHECK(dx[i] == doctest::Approx(y[i] * (g[i] - dot)));
  // Cross-entropy: every element written, zeros on an ignored row.
  const std::vector<float> lp{std::log(0.2f), std::log(0.3f), std::log(0.5f),
                              std::log(0.1f), std::log(0.1f), std::log(0.8f)};
  const std::vector<int64_t> targets{2, -100};
  const float one = 1.0f;
  std::vector<float> dl(6, nan);
  cpu::cross_entropy_backward(&one, lp.data(), targets.data(), dl.data(), 2, 3, 0.0f, -100, 1);
  check_values(Tensor::from_vector(dl, {6}), {0.2f, 0.3f, -0.5f, 0, 0, 0});
}

TEST_CASE("linear: x W^T + b with any leading dimensions, gradients by finite differences") {
  // x [2, 3], W [2, 3]: rows (1,2,3)·(1,0,-1) = -2, (1,2,3)·(0.5,0.5,0.5) = 3,
  // (4,5,6)·(1,0,-1) = -2, (4,5,6)·(0.5,0.5,0.5) = 7.5; plus b = (10, 20).
  Tensor x = Tensor::from_vector({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor w = Tensor::from_vector({1, 0, -1, 0.5f, 0.5f, 0.5f}, {2, 3});
  Tensor b = Tensor::from_vector({10, 20}, {2});
  check_values(linear(x, w, b), {8, 23, 8, 27.5f});
  check_values(linear(x, w), {-2, 3, -2, 7.5f});
  // Leading dimensions flatten: [2, 1, 3] -> [2, 1, 2]; a 1-D input -> [out].
  CHECK(linear(x.reshape({2, 1, 3}), w, b).shape() == Shape{2, 1, 2});
  check_values(linear(Tensor::from_vector({1, 2, 3}, {3}), w, b), {8, 23});
  // The weight is read through the GEMM's transpose flag: the result equals x @ W^T.
  Tensor xr = leaf({4, 5, 7}, 11), wr = leaf({6, 7}, 12);
  check_values(linear(xr, wr), matmul(xr.reshape({20, 7}), wr.transpose(0, 1)).to_vector(), 1e-5f);
  check_gradients([](const std::vector<Tensor>& v) { return linear(v[0], v[1], v[2]); },
                  {leaf({2, 3, 4}, 13), leaf({5, 4}, 14), leaf({5}, 15)});
  check_gradients([](const std::vector<Tensor>& v) { return linear(v[0], v[1]); },
                  {leaf({3, 4}, 16), leaf({2, 4}, 17)});
}

TEST_CASE("linear: shapes that do not fit are named") {
  Tensor x = Tensor::zeros({2, 3}), w = Tensor::zeros({4, 3});
  CHECK_THROWS_WITH_AS(linear(Tensor::zeros({2, 5}), w),
                       doctest::Contains("linear: input [2, 5] does not match weight [4, 3]"),
                       Error);
  CHECK_THROWS_WITH_AS(linear(x, Tensor::zeros({4, 3, 1})),
                       doctest::Contains("expected a weight of shape [out, in], got [4, 3, 1]"),
                       Error);
  CHECK_THROWS_WITH_AS(linear(x, w, Tensor::zeros({3})),
                       doctest::Contains("bias [3] does not match weight [4, 3]"), Error);
  CHECK_THROWS_WITH_AS(linear(Tensor::scalar(1.0f), w), doctest::Contains("linear: input []"),
                       Error);
}

TEST_CASE("the CUDA GEMM choice is made once and checked when set") {
  set_cuda_gemm_backend("tiled");
  CHECK(cuda_gemm_backend() == "tiled");
  CHECK_THROWS_WITH_AS(set_cuda_gemm_backend("fastest"),
                       doctest::Contains("unknown GEMM 'fastest' (expected custom, cublas"), Error);
  CHECK(cuda_gemm_backend() == "tiled");  // unchanged by the bad name
  set_cuda_gemm_backend("custom");
  CHECK(cuda_gemm_backend() == "regblock128");
}

TEST_CASE("the default generator is one for the process: manual_seed holds in every thread") {
  manual_seed(1234);
  Generator expected(1234);
  float drawn = 0.0f;
  std::thread t([&] { drawn = default_generator().uniform(); });
  t.join();
  CHECK(drawn == expected.uniform());
  CHECK(default_generator().uniform() == expected.uniform());  // the same stream goes on
  // splitmix64, the one seeding hash: its published first output for state 0.
  uint64_t s = 0;
  CHECK(splitmix64(s) == 0xe220a8397b1dcdafULL);
  CHECK(s == 0x9e3779b97f4a7c15ULL);
}

TEST_CASE("grad-ready hooks: once per backward, after a leaf's last gradient, last layers first") {
  // y = relu(W2 relu(W1 x)) . w1 used twice (fan-in of two edges); checkpointed middle.
  Generator g(3);
  Tensor x = Tensor::normal({4, 3}, 0.0f, 1.0f, g);
  Tensor w1 = Tensor::normal({5, 3}, 0.0f, 1.0f, g), w2 = Tensor::normal({2, 5}, 0.0f, 1.0f, g);
  w1.requires_grad_();
  w2.requires_grad_();
  std::vector<std::string> order;
  std::vector<float> seen_w1;
  w1.add_grad_ready_hook([&](const Tensor& t) {
    order.push_back("w1");
    seen_w1 = t.grad().to_vector();
  });
  w2.add_grad_ready_hook([&](const Tensor&) { order.push_back("w2"); });
  auto block = [&](const Tensor& in) { return relu(linear(in, w1) + linear(in, w1)); };
  for (bool recompute : {false, true}) {
    INFO("recompute " << recompute);
    order.clear();
    w1.zero_grad();
    w2.zero_grad();
    Tensor h = recompute ? checkpoint(block, x, {w1}) : block(x);
    sum(linear(h, w2)).backward();
    // w2 is the last layer: ready first; w1 once, with both of its gradients summed already.
    CHECK(order == std::vector<std::string>{"w2", "w1"});
    CHECK(seen_w1 == w1.grad().to_vector());
  }
  // A second backward fires them again; cleared hooks do not.
  order.clear();
  sum(linear(block(x), w2)).backward();
  CHECK(order.size() == 2);
  w1.clear_grad_ready_hooks();
  order.clear();
  sum(linear(block(x), w2)).backward();
  CHECK(order == std::vector<std::string>{"w2"});
  CHECK(!error_of([&] { (w1 * 2.0f).add_grad_ready_hook([](const Tensor&) {}); }).empty());
}
