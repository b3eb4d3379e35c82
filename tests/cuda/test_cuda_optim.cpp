// The optimizers' fused steps on cuda:0 against the same steps on the CPU, on small and ragged
// shapes. Built twice, as test_cuda_ops.cpp: through the SIMT emulation (label emulated) and,
// with REEL_CUDA, on a real GPU (label gpu; it reports that it skipped when none is present).
#include <cstdio>
#include <functional>
#include <memory>

#include "../test_util.h"
#include "reel/kernels/cuda/runtime.h"
#include "reel/optim/optim.h"

using namespace reel;
using reel::test::check_close;

namespace {

const Device kGpu = Device::cuda(0);

bool have_device() {
  static const bool ok = [] {
    if (cuda::available()) return true;
    std::printf("test_cuda_optim: skipped, no CUDA device here (%s)\n",
                cuda::built_with_cuda() ? "no GPU or driver" : "built without CUDA");
    return false;
  }();
  return ok;
}

Tensor random(const Shape& s, uint64_t seed) {
  Generator g(seed);
  return Tensor::normal(s, 0.0f, 1.0f, g);
}

const std::vector<Shape> kShapes = {{1}, {7}, {3, 5}, {257, 3}, {1000, 33}, {0}};

using Make = std::function<std::unique_ptr<Optimizer>(const std::vector<Tensor>&)>;

// Three steps of the same optimizer on CPU and cuda:0 copies of the same parameters and
// gradients (one parameter without a gradient at the second step); compares the parameters and
// every state tensor.
void compare(const std::string& name, const Make& make) {
  INFO(name);
  std::vector<Tensor> cpu, gpu;
  for (size_t i = 0; i < kShapes.size(); ++i) {
    Tensor c = random(kShapes[i], 10 + i), d = c.to(kGpu);
    c.requires_grad_();
    d.requires_grad_();
    cpu.push_back(c);
    gpu.push_back(d);
  }
  auto oc = make(cpu), og = make(gpu);
  for (int step = 0; step < 3; ++step) {
    for (size_t i = 0; i < kShapes.size(); ++i) {
      if (step == 1 && i == 2) {
        cpu[i].zero_grad();
        gpu[i].zero_grad();
        continue;
      }
      Tensor g = random(kShapes[i], 100 * step + i);
      cpu[i].set_grad(g);
      gpu[i].set_grad(g.to(kGpu));
    }
    const uint64_t version = gpu[0].version();
    oc->step();
    og->step();
    CHECK(gpu[0].version() == version + 1);
  }
  for (size_t i = 0; i < kShapes.size(); ++i) {
    REQUIRE(gpu[i].device() == kGpu);
    check_close(gpu[i].to(Device::cpu()), cpu[i], 1e-5f, "parameter " + std::to_string(i));
  }
  const TensorMap sc = oc->state_dict(), sg = og->state_dict();
  REQUIRE(sc.size() == sg.size());
  for (const auto& [k, v] : sc) {
    REQUIRE(sg.count(k) == 1);
    if (k.rfind("state.", 0) == 0 && v.dim() > 0) CHECK(sg.at(k).device() == kGpu);
    check_close(sg.at(k).to(Device::cpu()), v, 1e-5f, k);
  }
}

std::vector<ParamGroup<SGDOptions>> two_groups(const std::vector<Tensor>& p, SGDOptions a,
                                               SGDOptions b) {
  const size_t half = p.size() / 2;
  return {{{p.begin(), p.begin() + half}, a}, {{p.begin() + half, p.end()}, b}};
}

}  // namespace

TEST_CASE("SGD on cuda:0 equals SGD on the CPU") {
  if (!have_device()) return;
  compare("plain", [](const std::vector<Tensor>& p) {
    SGDOptions o;
    o.lr = 0.1;
    return std::make_unique<SGD>(p, o);
  });
  compare("momentum, dampening, weight decay; two groups", [](const std::vector<Tensor>& p) {
    SGDOptions a, b;
    a.lr = 0.05;
    a.momentum = 0.9;
    a.dampening = 0.1;
    a.weight_decay = 0.01;
    b = a;
    b.lr = 0.2;
    b.weight_decay = 0.0;
    return std::make_unique<SGD>(two_groups(p, a, b));
  });
  compare("nesterov", [](const std::vector<Tensor>& p) {
    SGDOptions o;
    o.lr = 0.05;
    o.momentum = 0.8;
    o.nesterov = true;
    o.weight_decay = 1e-3;
    return std::make_unique<SGD>(p, o);
  });
}

TEST_CASE("Adam and AdamW on cuda:0 equal them on the CPU") {
  if (!have_device()) return;
  compare("Adam with weight decay", [](const std::vector<Tensor>& p) {
    AdamOptions o;
    o.lr = 0.01;
    o.beta1 = 0.8;
    o.weight_decay = 0.1;
    return std::make_unique<Adam>(p, o);
  });
  compare("Adam amsgrad", [](const std::vector<Tensor>& p) {
    AdamOptions o;
    o.lr = 0.02;
    o.amsgrad = true;
    return std::make_unique<Adam>(p, o);
  });
  compare("AdamW", [](const std::vector<Tensor>& p) {
    AdamWOptions o;
    o.lr = 0.01;
    return std::make_unique<AdamW>(p, o);
  });
}

TEST_CASE("a state loads across devices") {
  if (!have_device()) return;
  Tensor c = random({5, 3}, 1), d = c.to(kGpu);
  c.requires_grad_();
  d.requires_grad_();
  AdamOptions o;
  o.lr = 0.01;
  Adam oc({c}, o), og({d}, o);
  c.set_grad(random({5, 3}, 2));
  oc.step();
  og.load_state_dict(oc.state_dict());  // CPU state onto the GPU parameter
  CHECK(og.state_dict().at("state.0.exp_avg").device() == kGpu);
  d.detach().copy_(c);
  c.set_grad(random({5, 3}, 3));
  d.set_grad(c.grad().to(kGpu));
  oc.step();
  og.step();
  check_close(d.to(Device::cpu()), c, 1e-6f);
}

TEST_CASE("clip_grad_norm on cuda:0 equals it on the CPU") {
  if (!have_device()) return;
  for (double norm_type : {2.0, 1.0, kInfNorm}) {
    INFO("norm_type " << norm_type);
    std::vector<Tensor> cpu, gpu;
    for (size_t i = 0; i < kShapes.size(); ++i) {
      Tensor c = Tensor::zeros(kShapes[i]), d = Tensor::zeros(kShapes[i], kGpu);
      c.requires_grad_();
      d.requires_grad_();
      Tensor g = random(kShapes[i], 7 + i);
      c.set_grad(g);
      d.set_grad(g.to(kGpu));
      cpu.push_back(c);
      gpu.push_back(d);
    }
    const double tc = clip_grad_norm(cpu, 1.0, norm_type), tg = clip_grad_norm(gpu, 1.0, norm_type);
    CHECK(tg == doctest::Approx(tc).epsilon(1e-5));
    for (size_t i = 0; i < kShapes.size(); ++i)
      check_close(gpu[i].grad().to(Device::cpu()), cpu[i].grad(), 1e-5f);
  }
}
