// The CNN: conv2d, batch_norm, max_pool2d, adaptive_avg_pool2d and dropout against PyTorch
// (tests/reference/cnn.safetensors, made by tests/reference/make_fixtures.py in float64 from the
// float32 values stored there) and against finite differences; the modules; ResNet-18 and -34
// and VGG-11/13/16 (with and without BatchNorm) with torchvision's names against torchvision in
// evaluation and training mode (tests/reference/vgg.safetensors); bad input.
#include <cmath>
#include <functional>
#include <set>
#include <string>

#include "../test_util.h"
#include "reel/core/nn.h"
#include "reel/layers/resnet.h"
#include "reel/layers/vgg.h"

using namespace reel;
using reel::test::check_close;
using reel::test::check_gradients;
using reel::test::leaf;

namespace {

const TensorMap& fixtures() {
  static const TensorMap m = load_safetensors(REEL_SOURCE_DIR "/tests/reference/cnn.safetensors");
  return m;
}

Tensor fx(const std::string& key) {
  auto it = fixtures().find(key);
  REQUIRE_MESSAGE(it != fixtures().end(), "missing fixture " << key);
  return it->second;
}
bool has(const std::string& key) { return fixtures().count(key) > 0; }

Tensor grad_leaf(const Tensor& t) {
  Tensor c = t.clone();
  c.requires_grad_();
  return c;
}

std::vector<int64_t> config(const std::string& key) {
  std::vector<int64_t> out;
  for (float v : fx(key).to_vector()) out.push_back(static_cast<int64_t>(std::lround(v)));
  return out;
}

// Tolerances, relative on a scale of at least 1: outputs 1e-4 (float32 sums of up to a few
// hundred products against float64), gradients 2e-4 (one more reduction).
constexpr float kOut = 1e-4f, kGrad = 2e-4f;

}  // namespace

TEST_CASE("conv2d equals PyTorch: strides, padding, dilation, rectangular kernels, no bias") {
  for (const char* name :
       {"basic", "stride2_nobias", "stem", "dilated_rect", "pointwise_s2", "valid"}) {
    const std::string p = std::string("conv.") + name + ".";
    INFO(p);
    const auto c = config(p + "config");
    Tensor x = grad_leaf(fx(p + "x")), w = grad_leaf(fx(p + "w"));
    Tensor b = has(p + "b") ? grad_leaf(fx(p + "b")) : Tensor();
    Tensor y = conv2d(x, w, b, {c[0], c[1]}, {c[2], c[3]}, {c[4], c[5]});
    check_close(y, fx(p + "out"), kOut, "output");
    y.backward(fx(p + "gout"));
    check_close(x.grad(), fx(p + "grad.x"), kGrad, "grad x");
    check_close(w.grad(), fx(p + "grad.w"), kGrad, "grad w");
    if (b.defined()) check_close(b.grad(), fx(p + "grad.b"), kGrad, "grad b");
  }
}

namespace {

// The convolution and its two gradients as the definition says, in double: the reference for
// shapes that take either lowering of kernels/cpu/conv.cpp (implicit or explicit, flipped or
// col2im data gradient).
struct NaiveConv {
  std::vector<double> y, dx, dw;
};
NaiveConv naive_conv(const std::vector<float>& x, const std::vector<float>& w,
                     const std::vector<float>& g, int64_t N, int64_t C, int64_t H, int64_t W,
                     int64_t K, int64_t R, int64_t S, int64_t sh, int64_t sw, int64_t ph,
                     int64_t pw, int64_t dh, int64_t dw_, int64_t P, int64_t Q) {
  NaiveConv o;
  o.y.assign(N * K * P * Q, 0.0);
  o.dx.assign(N * C * H * W, 0.0);
  o.dw.assign(K * C * R * S, 0.0);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k = 0; k < K; ++k)
      for (int64_t p = 0; p < P; ++p)
        for (int64_t q = 0; q < Q; ++q)
          for (int64_t c = 0; c < C; ++c)
            for (int64_t r = 0; r < R; ++r)
              for (int64_t t = 0; t < S; ++t) {
                const int64_t ih = p * sh - ph + r * dh, iw = q * sw - pw + t * dw_;
                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                const int64_t xi = ((n * C + c) * H + ih) * W + iw;
                const int64_t wi = ((k * C + c) * R + r) * S + t;
                const int64_t yi = ((n * K + k) * P + p) * Q + q;
                o.y[yi] += static_cast<double>(x[xi]) * w[wi];
                o.dx[xi] += static_cast<double>(g[yi]) * w[wi];
                o.dw[wi] += static_cast<double>(g[yi]) * x[xi];
              }
  return o;
}

void check_against(const Tensor& got, const std::vector<double>& want, const char* what) {
  std::vector<float> f(want.begin(), want.end());
  check_close(got, Tensor::from_vector(f, got.shape()), 1e-4f, what);
}

}  // namespace

TEST_CASE("conv2d equals the definition on shapes that take every lowering") {
  struct Cfg {
    int64_t N, C, H, W, K, R, S, sh, sw, ph, pw, dh, dw;
  };
  const Cfg cfgs[] = {
      {2, 3, 20, 21, 4, 3, 3, 1, 1, 1, 1, 1, 1},  // implicit, flipped data gradient
      {3, 2, 17, 19, 3, 3, 3, 2, 2, 1, 1, 1, 1},  // implicit with two stride phases, col2im
      {1, 2, 23, 22, 2, 5, 4, 3, 2, 2, 1, 1, 1},  // stride 3 and 2, rectangular kernel
      {2, 2, 18, 24, 3, 3, 2, 1, 1, 2, 1, 2, 3},  // dilation 2 and 3, implicit
      {5, 4, 6, 5, 3, 3, 3, 1, 1, 1, 1, 1, 1},    // small planes: explicit, chunked images
      {3, 3, 7, 6, 2, 2, 3, 2, 1, 0, 2, 1, 1},    // explicit, col2im
      {2, 3, 9, 9, 2, 1, 1, 1, 1, 0, 0, 1, 1},    // 1x1
      {1, 1, 1, 1, 2, 3, 3, 1, 1, 1, 1, 1, 1},    // a 1x1 image in 3x3 padding
      {2, 2, 4, 30, 2, 1, 5, 1, 1, 0, 0, 1, 1},   // a wide, flat kernel
      // Large enough that two threads take an image each (kernels/cpu/conv.cpp's
      // kImageParallelMinFmas), with per-thread weight-gradient sums:
      {3, 32, 48, 48, 32, 3, 3, 1, 1, 1, 1, 1, 1},
      {2, 32, 97, 97, 32, 3, 3, 2, 2, 1, 1, 1, 1},  // and the col2im data gradient
      // Strided, with images too short a GEMM for their weights (PQ < 2K): the data gradient
      // puts images side by side, in one chunk and in two (1024 images of 2x2 per chunk).
      {5, 6, 9, 9, 16, 3, 3, 2, 2, 1, 1, 1, 1},
      {1030, 2, 3, 3, 4, 3, 3, 2, 2, 1, 1, 1, 1},
  };
  for (const Cfg& c : cfgs) {
    INFO("N " << c.N << " C " << c.C << " H " << c.H << " W " << c.W << " K " << c.K << " R " << c.R
              << " S " << c.S << " stride " << c.sh << "," << c.sw << " pad " << c.ph << "," << c.pw
              << " dil " << c.dh << "," << c.dw);
    const int64_t P = (c.H + 2 * c.ph - c.dh * (c.R - 1) - 1) / c.sh + 1;
    const int64_t Q = (c.W + 2 * c.pw - c.dw * (c.S - 1) - 1) / c.sw + 1;
    Tensor x = leaf({c.N, c.C, c.H, c.W}, 21), w = leaf({c.K, c.C, c.R, c.S}, 22);
    Tensor g = leaf({c.N, c.K, P, Q}, 23).detach();
    Tensor y = conv2d(x, w, Tensor(), {c.sh, c.sw}, {c.ph, c.pw}, {c.dh, c.dw});
    REQUIRE(y.shape() == Shape{c.N, c.K, P, Q});
    y.backward(g);
    const NaiveConv ref = naive_conv(x.to_vector(), w.to_vector(), g.to_vector(), c.N, c.C, c.H,
                                     c.W, c.K, c.R, c.S, c.sh, c.sw, c.ph, c.pw, c.dh, c.dw, P, Q);
    check_against(y, ref.y, "output");
    check_against(x.grad(), ref.dx, "grad x");
    check_against(w.grad(), ref.dw, "grad w");
  }
}

TEST_CASE("batch_norm equals PyTorch: training, evaluation, two values per channel, a large mean") {
  for (const char* name : {"train", "eval", "train_small", "train_offset"}) {
    const std::string p = std::string("bn.") + name + ".";
    INFO(p);
    const auto cfg = fx(p + "config").to_vector();
    const bool training = cfg[0] > 0.5f;
    Tensor x = grad_leaf(fx(p + "x")), w = grad_leaf(fx(p + "weight")),
           b = grad_leaf(fx(p + "bias"));
    Tensor rm = fx(p + "running_mean_in").clone(), rv = fx(p + "running_var_in").clone();
    Tensor y = batch_norm(x, rm, rv, w, b, training, 0.1f, 1e-5f);
    // train_offset's x is 1000 + N(0, 1): the output is normalised from values known to about
    // 6e-5, hence the looser bound there.
    const float tol = std::string(name) == "train_offset" ? 2e-3f : kOut;
    check_close(y, fx(p + "out"), tol, "output");
    check_close(rm, fx(p + "running_mean_out"), kOut, "running_mean");
    check_close(rv, fx(p + "running_var_out"), kOut, "running_var");
    y.backward(fx(p + "gout"));
    check_close(x.grad(), fx(p + "grad.x"), std::max(tol, kGrad), "grad x");
    check_close(w.grad(), fx(p + "grad.weight"), std::max(tol, kGrad), "grad weight");
    check_close(b.grad(), fx(p + "grad.bias"), kGrad, "grad bias");
  }
}

TEST_CASE("synchronised batch_norm: one process equals batch_norm; two equal ones, the global") {
  // A reducer that leaves the sums as they are is one process: batch_norm's results exactly
  // (PyTorch's fixture). One that doubles them is two processes holding the same batch: the
  // global batch [x; x] has x's statistics and the same gradients, only the running variance's
  // unbiased factor changes (2n / (2n - 1) instead of n / (n - 1)).
  for (int copies : {1, 2}) {
    set_batch_norm_reducer([copies](std::vector<double>& sums) {
      for (double& v : sums) v *= copies;
    });
    for (const char* name : {"train", "train_small", "train_offset"}) {
      const std::string p = std::string("bn.") + name + ".";
      INFO(copies << " " << p);
      Tensor x = grad_leaf(fx(p + "x")), w = grad_leaf(fx(p + "weight")),
             b = grad_leaf(fx(p + "bias"));
      const Tensor rv_in = fx(p + "running_var_in");
      Tensor rm = fx(p + "running_mean_in").clone(), rv = rv_in.clone();
      Tensor y = batch_norm(x, rm, rv, w, b, true, 0.1f, 1e-5f);
      const float tol = std::string(name) == "train_offset" ? 2e-3f : kOut;
      check_close(y, fx(p + "out"), tol, "output");
      check_close(rm, fx(p + "running_mean_out"), kOut, "running_mean");
      const double n = static_cast<double>(x.numel() / x.size(1));
      const double f = copies == 1 ? 1.0 : (2 * n / (2 * n - 1)) / (n / (n - 1));
      std::vector<float> want = fx(p + "running_var_out").to_vector();
      const std::vector<float> in = rv_in.to_vector();
      for (size_t c = 0; c < want.size(); ++c)
        want[c] = static_cast<float>(0.9 * in[c] + (want[c] - 0.9 * in[c]) * f);
      check_close(rv, Tensor::from_vector(want, rv.shape()), kOut, "running_var");
      y.backward(fx(p + "gout"));
      check_close(x.grad(), fx(p + "grad.x"), std::max(tol, kGrad), "grad x");
      check_close(w.grad(), fx(p + "grad.weight"), std::max(tol, kGrad), "grad weight");
      check_close(b.grad(), fx(p + "grad.bias"), kGrad, "grad bias");
    }
  }
  // One value per channel here, but two over the processes: allowed.
  set_batch_norm_reducer([](std::vector<double>& sums) {
    for (double& v : sums) v *= 2;
  });
  CHECK_NOTHROW(
      batch_norm(Tensor::ones({1, 3, 1, 1}), Tensor(), Tensor(), Tensor(), Tensor(), true));
  set_batch_norm_reducer(nullptr);
  CHECK_THROWS(
      batch_norm(Tensor::ones({1, 3, 1, 1}), Tensor(), Tensor(), Tensor(), Tensor(), true));
}

TEST_CASE("max_pool2d and adaptive_avg_pool2d equal PyTorch") {
  for (const char* name : {"resnet", "k2s2", "rect"}) {
    const std::string p = std::string("maxpool.") + name + ".";
    INFO(p);
    const auto c = config(p + "config");
    Tensor x = grad_leaf(fx(p + "x"));
    Tensor y = max_pool2d(x, {c[0], c[1]}, {c[2], c[3]}, {c[4], c[5]});
    check_close(y, fx(p + "out"), 0.0f, "output");  // a maximum is exact
    y.backward(fx(p + "gout"));
    check_close(x.grad(), fx(p + "grad.x"), 1e-6f, "grad x");
  }
  for (const char* name : {"global", "overlap", "up", "same"}) {
    const std::string p = std::string("avgpool.") + name + ".";
    INFO(p);
    const auto c = config(p + "config");
    Tensor x = grad_leaf(fx(p + "x"));
    Tensor y = adaptive_avg_pool2d(x, {c[0], c[1]});
    check_close(y, fx(p + "out"), kOut, "output");
    y.backward(fx(p + "gout"));
    check_close(x.grad(), fx(p + "grad.x"), kGrad, "grad x");
  }
}

TEST_CASE("max_pool2d: NaN wins its window, padding is -inf, ties go to the first maximum") {
  Tensor x = Tensor::from_vector({1, NAN, 3, 2, 5, 5, -1, 0, 0}, {1, 3, 3});
  x.requires_grad_();
  Tensor y = max_pool2d(x, 2, 1, 0);  // windows at (0,0), (0,1), (1,0), (1,1)
  const auto v = y.to_vector();
  CHECK(std::isnan(v[0]));
  CHECK(std::isnan(v[1]));
  CHECK(v[2] == 5.0f);  // window {2, 5, -1, 0}
  CHECK(v[3] == 5.0f);  // window {5, 5, 0, 0}: the first 5 (index 4) takes the gradient
  y.backward(Tensor::ones({1, 2, 2}));
  CHECK(x.grad().to_vector() == std::vector<float>{0, 2, 0, 0, 2, 0, 0, 0, 0});
  Tensor edge = max_pool2d(Tensor::full({1, 1, 1}, -2.0f), 3, 1, 1);  // padding never wins
  CHECK(edge.item() == -2.0f);
}

TEST_CASE("gradients of the CNN ops against finite differences") {
  GradcheckOptions o;
  check_gradients(
      [](const std::vector<Tensor>& in) {
        return conv2d(in[0], in[1], in[2], {2, 1}, {1, 2}, {1, 2});
      },
      {leaf({2, 3, 6, 5}, 1), leaf({4, 3, 3, 2}, 2), leaf({4}, 3)}, o);
  check_gradients(
      [](const std::vector<Tensor>& in) {
        return batch_norm(in[0], Tensor(), Tensor(), in[1], in[2], true);
      },
      {leaf({3, 2, 2, 3}, 4), leaf({2}, 5), leaf({2}, 6)}, o);
  check_gradients(
      [](const std::vector<Tensor>& in) {
        Tensor rm = Tensor::from_vector({0.1f, -0.2f}, {2});
        Tensor rv = Tensor::from_vector({0.5f, 2.0f}, {2});
        return batch_norm(in[0], rm, rv, in[1], in[2], false);
      },
      {leaf({2, 2, 3, 1}, 7), leaf({2}, 8), leaf({2}, 9)}, o);
  check_gradients([](const std::vector<Tensor>& in) { return max_pool2d(in[0], 3, 2, 1); },
                  {leaf({1, 2, 5, 6}, 10)}, o);
  check_gradients(
      [](const std::vector<Tensor>& in) {
        return adaptive_avg_pool2d(in[0], {3, 2});
      },
      {leaf({2, 1, 7, 5}, 11)}, o);
  check_gradients(
      [](const std::vector<Tensor>& in) {
        Generator g(42);  // the same mask at every evaluation
        return dropout(in[0], 0.3f, true, g);
      },
      {leaf({4, 5}, 12)}, o);
}

TEST_CASE(
    "dropout: inverted, seeded, the backward uses the forward's mask, identity in evaluation") {
  Tensor x = Tensor::ones({100000});
  x.requires_grad_();
  Generator g(3);
  Tensor y = dropout(x, 0.25f, true, g);
  const auto v = y.to_vector();
  int64_t kept = 0;
  for (float e : v) {
    CHECK((e == 0.0f || std::fabs(e - 1.0f / 0.75f) < 1e-6f));
    kept += e != 0.0f;
  }
  // 75,000 expected; the standard deviation of the count is about 137.
  CHECK(std::abs(kept - 75000) < 1000);
  y.backward(Tensor::ones({100000}));
  CHECK(x.grad().to_vector() == v);  // the same mask, the same scale
  Generator g2(3);
  CHECK(dropout(x.detach(), 0.25f, true, g2).to_vector() == v);  // same seed, same mask
  CHECK(dropout(x.detach(), 0.25f, true, g2).to_vector() != v);  // the next draw differs
  CHECK(dropout(x, 0.25f, false).same_storage(x));
  CHECK(dropout(x.detach(), 1.0f, true).sum().item() == 0.0f);
  // Dropped NaN stays NaN, as PyTorch's multiplication by the mask.
  for (float e : dropout(Tensor::full({64}, NAN), 0.5f, true).to_vector()) CHECK(std::isnan(e));
}

TEST_CASE("modules: names, shapes, training mode and num_batches_tracked") {
  Conv2dOptions o;
  o.in_channels = 3, o.out_channels = 4, o.kernel_size = {3, 2}, o.padding = 1;
  Conv2d conv(o);
  auto np = conv.named_parameters();
  REQUIRE(np.size() == 2);
  CHECK(np[0].first == "weight");
  CHECK(np[0].second.shape() == Shape{4, 3, 3, 2});
  CHECK(np[1].first == "bias");
  // PyTorch's default: uniform within +-1/sqrt(fan_in), fan_in = 3 * 3 * 2.
  const float bound = 1.0f / std::sqrt(18.0f);
  for (float w : np[0].second.to_vector()) CHECK(std::fabs(w) <= bound);
  CHECK(conv.forward(Tensor::zeros({2, 3, 5, 5})).shape() == Shape{2, 4, 5, 6});

  BatchNorm2d bn(4);
  auto names = bn.state_dict();
  for (const char* k : {"weight", "bias", "running_mean", "running_var", "num_batches_tracked"})
    CHECK(names.count(k) == 1);
  Tensor x = Tensor::normal({3, 4, 2, 2}, 2.0f, 1.0f, default_generator());
  bn.forward(x);
  bn.forward(x);
  CHECK(bn.num_batches_tracked().item() == 2.0f);
  const float rm = bn.running_mean().to_vector()[0];
  CHECK(rm != 0.0f);
  bn.eval();
  bn.forward(x);
  CHECK(bn.num_batches_tracked().item() == 2.0f);  // evaluation leaves the buffers alone
  CHECK(bn.running_mean().to_vector()[0] == rm);

  Linear fc(5, 3);
  CHECK(fc.forward(Tensor::zeros({7, 5})).shape() == Shape{7, 3});
  CHECK(Flatten().forward(Tensor::zeros({2, 3, 4, 5})).shape() == Shape{2, 60});
  CHECK(MaxPool2d(2).forward(Tensor::zeros({1, 1, 5, 5})).shape() == Shape{1, 1, 2, 2});
}

namespace {

// The narrow torchvision ResNet of the fixtures, loaded from its "p." keys.
std::shared_ptr<ResNet> fixture_resnet(int depth) {
  const std::string p = "resnet" + std::to_string(depth) + ".p.";
  TensorMap state;
  for (const auto& [k, v] : fixtures())
    if (k.rfind(p, 0) == 0) state[k.substr(p.size())] = v;
  ResNetOptions o;
  o.depth = depth, o.num_classes = 10, o.width = 8;
  auto net = std::make_shared<ResNet>(o);
  net->load_state_dict(state);  // strict: torchvision's names, num_batches_tracked (I64) too
  return net;
}

}  // namespace

TEST_CASE("ResNet-18 (width 8) equals torchvision in evaluation and training mode") {
  for (const char* mode : {"eval", "train"}) {
    INFO(mode);
    auto net = fixture_resnet(18);
    const bool training = std::string(mode) == "train";
    net->train(training);
    const std::string p = std::string("resnet18.") + mode + ".";
    Tensor x = grad_leaf(fx(p + "input"));
    Tensor y = net->forward(x);
    // Twenty layers deep in float32 against float64: outputs 1e-4; gradients 1e-3 (in training
    // mode layer4 normalises two values per channel, which amplifies rounding).
    check_close(y, fx(p + "output"), kOut, "output");
    y.backward(fx(p + "grad_output"));
    check_close(x.grad(), fx(p + "grad.input"), 1e-3f, "grad input");
    for (const auto& [name, param] : net->named_parameters())
      check_close(param.grad(), fx(p + "grad." + name), 1e-3f, "grad " + name);
    if (training)
      for (const auto& [name, buf] : net->named_buffers())
        check_close(buf, fx(p + "buffers." + name), kOut, "buffer " + name);
  }
  auto net = fixture_resnet(18);
  net->eval();
  NoGradGuard guard;
  check_close(net->forward(fx("resnet18.eval_nonsquare.input")),
              fx("resnet18.eval_nonsquare.output"), kOut, "40x56 input");
}

TEST_CASE("ResNet-34 (width 8) equals torchvision; both have torchvision's parameter names") {
  auto net = fixture_resnet(34);
  net->eval();
  NoGradGuard guard;
  check_close(net->forward(fx("resnet34.eval.input")), fx("resnet34.eval.output"), kOut);
  // Every state_dict key of ours is one of torchvision's and the counts agree (strict loading
  // above already refused any difference); spot-check the names a user would look for.
  const TensorMap sd = net->state_dict();
  for (const char* k : {"conv1.weight", "bn1.num_batches_tracked", "layer1.2.conv2.weight",
                        "layer3.5.bn2.running_var", "layer4.0.downsample.0.weight",
                        "layer4.0.downsample.1.bias", "fc.weight", "fc.bias"})
    CHECK(sd.count(k) == 1);
  CHECK(sd.count("layer1.0.downsample.0.weight") == 0);  // stage 1 keeps stride and width
  ResNetOptions full;  // torchvision's resnet18 at width 64: 11,689,512 parameters
  full.num_classes = 1000;
  int64_t count = 0;
  for (const Tensor& t : ResNet(full).parameters()) count += t.numel();
  CHECK(count == 11689512);
}

TEST_CASE("CNN bad input: clear errors naming the layer, the parameter and the shapes") {
  auto throws_with = [](const std::function<void()>& f, const std::vector<std::string>& parts) {
    try {
      f();
      FAIL("no error");
    } catch (const Error& e) {
      const std::string m = e.what();
      INFO(m);
      for (const auto& p : parts) CHECK(m.find(p) != std::string::npos);
    }
  };
  Tensor w = Tensor::zeros({4, 3, 3, 3});
  throws_with(
      [&] {
        conv2d(Tensor::zeros({1, 2, 8, 8}), w);
      },
      {"conv2d", "[1, 2, 8, 8]", "2 channels", "[4, 3, 3, 3]"});
  throws_with(
      [&] {
        conv2d(Tensor::zeros({1, 3, 8}), w);
      },
      {"conv2d", "[N, C, H, W]", "[1, 3, 8]"});
  throws_with(
      [&] {
        conv2d(Tensor::zeros({1, 3, 2, 2}), w);
      },
      {"conv2d", "kernel 3x3", "larger than the padded input 2x2"});
  throws_with(
      [&] {
        conv2d(Tensor::zeros({1, 3, 4, 4}), w, Tensor::zeros({3}));
      },
      {"conv2d", "bias [3]", "[4]"});
  throws_with([&] { conv2d(Tensor::zeros({1, 3, 4, 4}), w, Tensor(), 0); }, {"conv2d", "stride"});
  throws_with(
      [&] {
        batch_norm(Tensor::zeros({1, 3, 1, 1}), Tensor(), Tensor(), Tensor(), Tensor(), true);
      },
      {"batch_norm", "more than one value per channel", "[1, 3, 1, 1]"});
  throws_with(
      [&] {
        batch_norm(Tensor::zeros({2, 3, 2}), Tensor::zeros({4}), Tensor::ones({4}), Tensor(),
                   Tensor(), false);
      },
      {"batch_norm", "3 channels", "[4]"});
  throws_with(
      [&] {
        max_pool2d(Tensor::zeros({1, 4, 4}), 3, 1, 2);
      },
      {"max_pool2d", "padding", "half"});
  throws_with(
      [&] {
        adaptive_avg_pool2d(Tensor::zeros({4, 4}), 1);
      },
      {"adaptive_avg_pool2d", "[4, 4]"});
  BatchNorm2d bn(8);
  throws_with([&] { bn.forward(Tensor::zeros({2, 4, 3, 3})); }, {"BatchNorm2d(8)", "[2, 4, 3, 3]"});

  ResNetOptions o;
  o.num_classes = 10, o.width = 8;
  ResNet net(o);
  throws_with(
      [&] {
        net.forward(Tensor::zeros({1, 3, 31, 40}));
      },
      {"resnet18", "[1, 3, 31, 40]", "too small", "32x32"});
  throws_with([&] { net.forward(Tensor::zeros({1, 1, 32, 32})); }, {"resnet18", "[N, 3, H, W]"});
  // A checkpoint of another width or architecture: one error listing what does not fit.
  ResNetOptions wide = o;
  wide.width = 16;
  throws_with([&] { net.load_state_dict(ResNet(wide).state_dict()); },
              {"shapes that differ", "conv1.weight (checkpoint [16, 3, 7, 7], module [8, 3, 7, 7])",
               "fc.weight (checkpoint [10, 128], module [10, 64])"});
  ResNetOptions deep = o;
  deep.depth = 34;
  throws_with([&] { net.load_state_dict(ResNet(deep).state_dict()); },
              {"unexpected keys", "layer1.2.conv1.weight", "layer3.5.bn2.running_var"});
  throws_with(
      [&] {
        ResNetOptions bad = o;
        bad.depth = 50;
        ResNet r(bad);
      },
      {"depth 50", "18 or 34"});
  // The CUDA backend of convolution: an unknown name is refused and changes nothing.
  const std::string backend = cuda_conv_backend();
  throws_with([] { set_cuda_conv_backend("winograd"); },
              {"REEL_CONV", "unknown convolution backend 'winograd'", "custom or cudnn"});
  CHECK(cuda_conv_backend() == backend);
}

TEST_CASE("a ResNet training step allocates nothing new from the system after warm-up") {
  ResNetOptions o;
  o.num_classes = 5, o.width = 8;
  ResNet net(o);
  Tensor x = Tensor::normal({2, 3, 32, 32}, 0.0f, 1.0f, default_generator());
  auto step = [&] {
    net.zero_grad();
    Tensor loss = cross_entropy(net.forward(x), {1, 3});
    loss.backward();
  };
  step();
  step();
  const std::size_t before = memory_stats(Device::cpu()).system_allocations;
  step();
  step();
  CHECK(memory_stats(Device::cpu()).system_allocations == before);
}

TEST_CASE("batch_norm equals the definition on ResNet's plane sizes, in both modes") {
  for (int hw : {4, 16, 32})
    for (int training = 0; training < 2; ++training) {
      INFO("planes " << hw << "x" << hw << (training ? " training" : " evaluation"));
      Generator g(1);
      const int N = 2, C = 64, HW = hw * hw;
      Tensor x = Tensor::normal({N, C, hw, hw}, 0.3f, 1.0f, g);
      Tensor w = Tensor::uniform({C}, 0.5f, 1.5f, g), b = Tensor::uniform({C}, -0.2f, 0.2f, g);
      Tensor rm = Tensor::uniform({C}, -0.2f, 0.2f, g), rv = Tensor::uniform({C}, 0.5f, 1.5f, g);
      Tensor gy = Tensor::normal({N, C, hw, hw}, 0.0f, 1.0f, g);
      for (Tensor* t : {&x, &w, &b}) t->requires_grad_();
      const auto RM = rm.to_vector(), RV = rv.to_vector();
      Tensor y = batch_norm(x, rm, rv, w, b, training, 0.1f, 1e-5f);
      y.backward(gy);
      const auto X = x.to_vector(), W = w.to_vector(), B = b.to_vector(), GY = gy.to_vector();
      std::vector<float> ry(X.size()), rdx(X.size()), rdw(C), rdb(C);
      for (int c = 0; c < C; ++c) {
        double m = RM[c], var = RV[c];
        if (training) {
          double s = 0, ss = 0;
          for (int n = 0; n < N; ++n)
            for (int i = 0; i < HW; ++i) s += X[(n * C + c) * HW + i];
          m = s / (N * HW);
          for (int n = 0; n < N; ++n)
            for (int i = 0; i < HW; ++i) ss += std::pow(X[(n * C + c) * HW + i] - m, 2);
          var = ss / (N * HW);
        }
        const double is = 1 / std::sqrt(var + 1e-5);
        double sdy = 0, sdyx = 0;
        for (int n = 0; n < N; ++n)
          for (int i = 0; i < HW; ++i) {
            const int k = (n * C + c) * HW + i;
            const double xh = (X[k] - m) * is;
            ry[k] = static_cast<float>(xh * W[c] + B[c]);
            sdy += GY[k];
            sdyx += GY[k] * xh;
          }
        rdw[c] = static_cast<float>(sdyx);
        rdb[c] = static_cast<float>(sdy);
        for (int n = 0; n < N; ++n)
          for (int i = 0; i < HW; ++i) {
            const int k = (n * C + c) * HW + i;
            const double xh = (X[k] - m) * is;
            rdx[k] = static_cast<float>(
                training ? W[c] * is * (GY[k] - sdy / (N * HW) - xh * sdyx / (N * HW))
                         : GY[k] * W[c] * is);
          }
      }
      check_close(y, Tensor::from_vector(ry, y.shape()), 1e-5f, "output");
      check_close(x.grad(), Tensor::from_vector(rdx, x.shape()), 1e-4f, "grad x");
      check_close(w.grad(), Tensor::from_vector(rdw, {C}), 1e-4f, "grad weight");
      check_close(b.grad(), Tensor::from_vector(rdb, {C}), 1e-4f, "grad bias");
    }
}

namespace {

const TensorMap& vgg_fixtures() {
  static const TensorMap m = load_safetensors(REEL_SOURCE_DIR "/tests/reference/vgg.safetensors");
  return m;
}

Tensor vx(const std::string& key) {
  auto it = vgg_fixtures().find(key);
  REQUIRE_MESSAGE(it != vgg_fixtures().end(), "missing fixture " << key);
  return it->second;
}

// A narrow VGG of vgg.safetensors (width 2, dropout 0 as there), loaded from its "p." keys by
// make_backbone's name.
std::shared_ptr<Backbone> fixture_vgg(const std::string& name) {
  TensorMap state;
  const std::string p = name + ".p.";
  for (const auto& [k, v] : vgg_fixtures())
    if (k.rfind(p, 0) == 0) state[k.substr(p.size())] = v;
  VGGOptions o;
  o.depth = std::stoi(name.substr(3, 2));
  o.batch_norm = name.size() > 5;
  o.width = 2, o.num_classes = 10, o.dropout = 0.0f;
  auto net = std::make_shared<VGG>(o);
  CHECK(net->name() == name);
  net->load_state_dict(state);  // strict: every torchvision key and no other
  return net;
}

}  // namespace

TEST_CASE("VGG-11 with BatchNorm and VGG-16 without equal torchvision in eval and train mode") {
  for (const std::string net_name : {"vgg11_bn", "vgg16"})
    for (const char* mode : {"eval", "train"}) {
      INFO(net_name << " " << mode);
      auto net = fixture_vgg(net_name);
      const bool training = std::string(mode) == "train";
      net->train(training);
      const std::string p = net_name + "." + mode + ".";
      Tensor x = grad_leaf(vx(p + "input"));
      Tensor y = net->forward(x);
      check_close(y, vx(p + "output"), kOut, "output");
      y.backward(vx(p + "grad_output"));
      check_close(x.grad(), vx(p + "grad.input"), 1e-3f, "grad input");
      for (const auto& [name, param] : net->named_parameters())
        check_close(param.grad(), vx(p + "grad." + name), 1e-3f, "grad " + name);
      if (training)
        for (const auto& [name, buf] : net->named_buffers())
          check_close(buf, vx(p + "buffers." + name), kOut, "buffer " + name);
    }
  auto net = fixture_vgg("vgg13_bn");
  net->eval();
  NoGradGuard guard;
  check_close(net->forward(vx("vgg13_bn.eval.input")), vx("vgg13_bn.eval.output"), kOut,
              "vgg13_bn on 40x56");
}

TEST_CASE("VGG: torchvision's names and sizes, recompute, dropout in training, bad input") {
  // Names and shapes at width 2 are torchvision's (the strict loads above); at width 4 every
  // width doubles, the classifier's hidden layers are 64 * 4 wide.
  const TensorMap sd = make_backbone("vgg16_bn", 4, 7)->state_dict();
  for (const char* k : {"features.0.weight", "features.1.running_var", "features.41.weight",
                        "features.41.num_batches_tracked", "classifier.0.weight",
                        "classifier.3.bias", "classifier.6.weight"})
    CHECK(sd.count(k) == 1);
  CHECK(sd.at("classifier.0.weight").shape() == Shape{256, 32 * 7 * 7});
  CHECK(sd.at("classifier.6.weight").shape() == Shape{7, 256});

  // Recompute: the same output and gradients, the buffers updated once.
  auto a = fixture_vgg("vgg11_bn"), b = fixture_vgg("vgg11_bn");
  b->set_recompute(true);
  Tensor x = vx("vgg11_bn.train.input");
  Tensor ya = a->forward(x), yb = b->forward(x);
  check_close(yb, ya, 1e-6f, "recomputed output");
  ya.backward(vx("vgg11_bn.train.grad_output"));
  yb.backward(vx("vgg11_bn.train.grad_output"));
  const NamedTensors pa = a->named_parameters(), pb = b->named_parameters();
  for (size_t i = 0; i < pa.size(); ++i)
    check_close(pb[i].second.grad(), pa[i].second.grad(), 1e-5f, "recomputed " + pa[i].first);
  CHECK(b->state_dict().at("features.1.num_batches_tracked").item() ==
        a->state_dict().at("features.1.num_batches_tracked").item());

  // Dropout 0.5 in training: two forwards differ; in eval they agree.
  VGGOptions o;
  o.width = 2, o.num_classes = 4;
  VGG net(o);
  Tensor in = Tensor::normal({2, 3, 32, 32}, 0.0f, 1.0f, default_generator());
  {
    NoGradGuard guard;
    const auto y1 = net.features(in).to_vector(), y2 = net.features(in).to_vector();
    CHECK(y1 != y2);
    net.eval();
    CHECK(net.features(in).to_vector() == net.features(in).to_vector());
  }
  auto message = [](const std::function<void()>& f) {
    try {
      f();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  std::string m = message([&] { net.forward(Tensor::zeros({1, 3, 31, 64})); });
  CHECK_MESSAGE(m.find("vgg11: the input [1, 3, 31, 64] is too small") != std::string::npos, m);
  m = message([&] { make_backbone("vgg19", 8, 10); });
  CHECK_MESSAGE(m.find("unknown backbone 'vgg19'") != std::string::npos, m);
  CHECK_MESSAGE(m.find("vgg16_bn") != std::string::npos, m);
  VGGOptions bad;
  bad.depth = 19;
  m = message([&] { VGG v(bad); });
  CHECK_MESSAGE(m.find("depth 19") != std::string::npos, m);
}
