// Every op on cuda:0 against the same op on the CPU, forward and backward, on small and ragged
// shapes (not multiples of a block or tile, size 1, empty where legal). Built twice:
//  - test_cuda_ops_emulated links reel_emu, so every CUDA kernel runs through the SIMT
//    emulation (under AddressSanitizer in CI; CTest also runs it with shuffled fibre orders);
//  - test_cuda_ops_gpu links the real library and runs on a GPU when one is present, else
//    reports that it skipped.
#include <cmath>
#include <cstdio>
#include <functional>

#include "../test_util.h"
#include "reel/core/dispatch.h"
#include "reel/kernels/gemm.h"

using namespace reel;

namespace {

const Device kGpu = Device::cuda(0);

bool have_device() {
  static const bool ok = [] {
    if (cuda::available()) return true;
    std::printf("test_cuda_ops: skipped, no CUDA device here (%s)\n",
                cuda::built_with_cuda() ? "no GPU or driver" : "built without CUDA");
    return false;
  }();
  return ok;
}

// |a - b| <= tol * (1 + |b|) elementwise; g++ and nvcc contract to FMA differently, and the
// reductions add in another order, so never bit-exact.
void check_close(const Tensor& a, const Tensor& b, float tol = 1e-4f) {
  REQUIRE(a.shape() == b.shape());
  const std::vector<float> va = a.to_vector(), vb = b.to_vector();
  float worst = 0.0f;
  size_t at = 0;
  for (size_t i = 0; i < va.size(); ++i) {
    const float e = std::fabs(va[i] - vb[i]) / (1.0f + std::fabs(vb[i]));
    if (!(e <= worst)) {  // also catches NaN
      worst = std::isnan(e) ? INFINITY : e;
      at = i;
    }
  }
  INFO("worst relative error " << worst << " at element " << at << " of " << shape_str(a.shape()));
  CHECK(worst <= tol);
}

Tensor random(const Shape& s, uint64_t seed) {
  Generator g(seed);
  return Tensor::normal(s, 0.0f, 1.0f, g);
}

using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

// Runs fn on CPU copies and on cuda:0 copies of the inputs; compares the outputs and the
// gradients of sum(out * R) for a fixed random R.
void compare(const Fn& fn, const std::vector<Tensor>& inputs, float tol = 1e-4f) {
  std::vector<Tensor> cpu_in, gpu_in;
  for (const Tensor& t : inputs) {
    Tensor c = t.clone().detach(), d = t.to(kGpu).detach();
    c.requires_grad_();
    d.requires_grad_();
    cpu_in.push_back(c);
    gpu_in.push_back(d);
  }
  Tensor out_c = fn(cpu_in), out_g = fn(gpu_in);
  REQUIRE(out_g.device() == kGpu);
  check_close(out_g.to(Device::cpu()), out_c, tol);
  Tensor r = random(out_c.shape(), 99);
  out_c.backward(r);
  out_g.backward(r.to(kGpu));
  for (size_t i = 0; i < inputs.size(); ++i) {
    INFO("gradient of input " << i);
    REQUIRE(gpu_in[i].grad().defined());
    check_close(gpu_in[i].grad().to(Device::cpu()), cpu_in[i].grad(), tol);
  }
}

}  // namespace

TEST_CASE("pointwise and broadcasting ops") {
  if (!have_device()) return;
  const std::vector<std::pair<Shape, Shape>> shapes = {
      {{1}, {1}},          {{7}, {7}},           {{3, 5}, {5}},
      {{3, 5}, {3, 1}},    {{2, 3, 37}, {}},     {{37}, {2, 3, 37}},
      {{2, 1, 4}, {3, 1}}, {{257, 3}, {257, 3}}, {{1000, 33}, {33}}};
  for (auto [sa, sb] : shapes) {
    INFO(shape_str(sa) << " with " << shape_str(sb));
    Tensor a = random(sa, 1), b = sigmoid(random(sb, 2)) + 0.5f;
    compare([](const std::vector<Tensor>& v) { return v[0] + v[1]; }, {a, b});
    compare([](const std::vector<Tensor>& v) { return v[0] - v[1]; }, {a, b});
    compare([](const std::vector<Tensor>& v) { return v[0] * v[1]; }, {a, b});
    compare([](const std::vector<Tensor>& v) { return v[0] / v[1]; }, {a, b});
  }
  for (const Shape& s : std::vector<Shape>{{1}, {5, 7}, {3, 333}}) {
    INFO(shape_str(s));
    Tensor x = random(s, 3);
    compare([](const std::vector<Tensor>& v) { return neg(v[0]); }, {x});
    compare([](const std::vector<Tensor>& v) { return exp(v[0]); }, {x});
    compare([](const std::vector<Tensor>& v) { return tanh(v[0]); }, {x});
    compare([](const std::vector<Tensor>& v) { return sigmoid(v[0]); }, {x});
    compare([](const std::vector<Tensor>& v) { return relu(v[0]); }, {x});
    compare([](const std::vector<Tensor>& v) { return log(v[0] * v[0] + 0.1f); }, {x});
  }
  // Empty tensors are legal for pointwise ops.
  Tensor e = Tensor::zeros({0, 3}, kGpu);
  CHECK((e + 1.0f).numel() == 0);
  CHECK(exp(e).shape() == Shape{0, 3});
}

TEST_CASE("fill, add_, mul_, copies and item on the device") {
  if (!have_device()) return;
  Tensor t = Tensor::full({3, 5}, 2.5f, kGpu);
  check_close(t.to(Device::cpu()), Tensor::full({3, 5}, 2.5f));
  {
    NoGradGuard g;
    t.add_(Tensor::ones({3, 5}, kGpu), 2.0f).mul_(2.0f);
  }
  check_close(t.to(Device::cpu()), Tensor::full({3, 5}, 9.0f));
  CHECK(t.sum().item() == doctest::Approx(135.0f));
  Tensor big = random({3, 1000, 700}, 4);  // 8.4 MB: more than one 8 MiB pinned staging chunk
  check_close(big.to(kGpu).to(Device::cpu()), big, 0.0f);
  check_close(Tensor::arange(0, 5, 1, kGpu).to(Device::cpu()), Tensor::arange(0, 5));
}

TEST_CASE("matmul through every rung of the CUDA GEMM ladder") {
  if (!have_device()) return;
  for (const char* const* v = cuda::gemm_variants(); *v; ++v) {
    INFO("variant " << *v);
    set_cuda_gemm_backend(*v);
    const Fn mm = [](const std::vector<Tensor>& x) { return matmul(x[0], x[1]); };
    compare(mm, {random({1, 1}, 5), random({1, 1}, 6)});
    compare(mm, {random({7, 33}, 7), random({33, 5}, 8)});
    compare(mm, {random({65, 17}, 9), random({17, 129}, 10)});
    compare(mm, {random({2, 3, 5}, 11), random({2, 5, 4}, 12)});
    compare(mm, {random({3, 9, 13}, 13), random({13, 6}, 14)});
    compare(mm, {random({4, 0}, 15), random({0, 3}, 16)});  // K = 0
  }
  set_cuda_gemm_backend("custom");
}

TEST_CASE("linear: the weight through the GEMM's transpose flag, bias rows, gradients") {
  if (!have_device()) return;
  for (const char* const* v = cuda::gemm_variants(); *v; ++v) {
    INFO("variant " << *v);
    set_cuda_gemm_backend(*v);
    compare([](const std::vector<Tensor>& in) { return linear(in[0], in[1], in[2]); },
            {random({2, 3, 37}, 20), random({19, 37}, 21), random({19}, 22)});
    compare([](const std::vector<Tensor>& in) { return linear(in[0], in[1]); },
            {random({1, 5}, 23), random({3, 5}, 24)});
  }
  set_cuda_gemm_backend("custom");
  CHECK(cuda_gemm_backend() == "regblock128");
}

TEST_CASE("the CUDA GEMM kernels: every transpose combination, alpha, beta, strides") {
  if (!have_device()) return;
  const std::vector<std::array<int64_t, 3>> sizes = {
      {1, 1, 1}, {7, 7, 7}, {33, 1, 257}, {130, 67, 9}, {5, 140, 33}};
  for (const char* const* v = cuda::gemm_variants(); *v; ++v) {
    for (auto [M, N, K] : sizes) {
      for (int t = 0; t < 4; ++t) {
        const bool ta = t & 1, tb = t & 2;
        INFO(*v << " M=" << M << " N=" << N << " K=" << K << " ta=" << ta << " tb=" << tb);
        const int64_t lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 1, ldc = N + 2;
        Tensor A = random({ta ? K : M, lda}, 20), B = random({tb ? N : K, ldb}, 21);
        Tensor C = random({M, ldc}, 22);
        Tensor ref = C.clone();
        cpu::gemm(ta, tb, M, N, K, 0.5f, A.data(), lda, B.data(), ldb, -1.5f, ref.data(), ldc);
        Tensor Ad = A.to(kGpu), Bd = B.to(kGpu), Cd = C.to(kGpu);
        cuda::gemm_variant(*v, ta, tb, M, N, K, 0.5f, Ad.data(), lda, Bd.data(), ldb, -1.5f,
                           Cd.data(), ldc, cuda::stream_for(0));
        check_close(Cd.to(Device::cpu()), ref, 1e-4f);
      }
    }
  }
  // beta == 0 must not read C: NaN there must not propagate.
  Tensor A = random({9, 9}, 23), B = random({9, 9}, 24);
  Tensor C = Tensor::full({9, 9}, NAN, kGpu);
  cuda::gemm(false, false, 9, 9, 9, 1.0f, A.to(kGpu).data(), 9, B.to(kGpu).data(), 9, 0.0f,
             C.data(), 9, cuda::stream_for(0));
  check_close(C.to(Device::cpu()), matmul(A, B));
  CHECK_THROWS_AS(cuda::gemm_variant("fastest", false, false, 1, 1, 1, 1.0f, nullptr, 1, nullptr, 1,
                                     0.0f, nullptr, 1, nullptr),
                  reel::Error);
}

TEST_CASE("reductions, transpose and permute") {
  if (!have_device()) return;
  Tensor x = random({3, 70, 5}, 30);
  for (const std::vector<int64_t>& dims :
       std::vector<std::vector<int64_t>>{{}, {0}, {1}, {2}, {0, 2}, {1, 2}, {0, 1, 2}}) {
    INFO("dims of size " << dims.size());
    compare([dims](const std::vector<Tensor>& v) { return sum(v[0], dims); }, {x});
    compare([dims](const std::vector<Tensor>& v) { return mean(v[0], dims, true); }, {x});
  }
  compare([](const std::vector<Tensor>& v) { return sum(v[0], {1}); }, {random({2, 1000}, 31)});
  compare([](const std::vector<Tensor>& v) { return sum(v[0], {0}); }, {random({300, 65}, 32)});
  compare([](const std::vector<Tensor>& v) { return transpose(v[0], 0, 1); },
          {random({33, 17}, 33)});
  compare([](const std::vector<Tensor>& v) { return permute(v[0], {2, 0, 1}); }, {x});
  compare(
      [](const std::vector<Tensor>& v) {
        return expand(v[0], {4, 3, 5});
      },
      {random({3, 1}, 34)});
}

TEST_CASE("softmax, log_softmax and cross-entropy") {
  if (!have_device()) return;
  for (const Shape& s : std::vector<Shape>{{1, 1}, {3, 7}, {2, 300, 3}, {5, 1000}}) {
    for (int64_t dim = 0; dim < static_cast<int64_t>(s.size()); ++dim) {
      INFO(shape_str(s) << " dim " << dim);
      compare([dim](const std::vector<Tensor>& v) { return softmax(v[0], dim); }, {random(s, 40)});
      compare([dim](const std::vector<Tensor>& v) { return log_softmax(v[0], dim); },
              {random(s, 41)});
    }
  }
  const std::vector<int64_t> t = {0, 4, 2, -100, 1, 3, 3};
  for (float eps : {0.0f, 0.1f}) {
    INFO("label smoothing " << eps);
    compare([&t, eps](const std::vector<Tensor>& v) { return cross_entropy(v[0], t, eps); },
            {random({7, 5}, 42)});
  }
  std::vector<int64_t> many(300);
  for (size_t i = 0; i < many.size(); ++i) many[i] = static_cast<int64_t>((i * 7) % 1000);
  compare([&many](const std::vector<Tensor>& v) { return cross_entropy(v[0], many); },
          {random({300, 1000}, 43)});
  Tensor all_ignored = cross_entropy(Tensor::zeros({2, 3}, kGpu), {-100, -100});
  CHECK(std::isnan(all_ignored.item()));
}

TEST_CASE("concat, stack, slice and a small network") {
  if (!have_device()) return;
  compare(
      [](const std::vector<Tensor>& v) {
        return concat({v[0], v[1], v[0]}, 1);
      },
      {random({3, 5}, 50), random({3, 1}, 51)});
  compare(
      [](const std::vector<Tensor>& v) {
        return stack({v[0], v[1]}, 0);
      },
      {random({4, 3}, 52), random({4, 3}, 53)});
  compare([](const std::vector<Tensor>& v) { return v[0].slice(1, 1, 8, 3); },
          {random({5, 9}, 54)});
  compare(
      [](const std::vector<Tensor>& v) {
        Tensor h = tanh(matmul(v[0], v[1]) + v[2]);
        return cross_entropy(matmul(h, v[3]), {0, 2, 1, 2, 0});
      },
      {random({5, 6}, 55), random({6, 33}, 56), random({33}, 57), random({33, 3}, 58)});
}

TEST_CASE("device memory is cached: a repeated step makes no new device allocation") {
  if (!have_device()) return;
  auto step = [] {
    Tensor w = Tensor::ones({64, 64}, kGpu);
    w.requires_grad_();
    Tensor loss = sigmoid(matmul(w, w)).sum();
    loss.backward();
    return loss.item();
  };
  step();
  const AllocatorStats before = device_allocator_stats(kGpu);
  for (int i = 0; i < 3; ++i) step();
  const AllocatorStats after = device_allocator_stats(kGpu);
  CHECK(after.system_allocations == before.system_allocations);
  CHECK(after.cache_hits > before.cache_hits);
}

TEST_CASE("pinned host memory and asynchronous copies to the device") {
  if (!have_device()) return;
  Tensor src = random({3, 1000}, 60);
  Tensor pinned = src.pin_memory();
  CHECK(pinned.is_pinned());
  CHECK_FALSE(src.is_pinned());
  CHECK(pinned.pin_memory().same_storage(pinned));
  check_close(pinned, src, 0.0f);
  // A queued copy, then work on the device ordered after it.
  Tensor d = pinned.to(kGpu, /*non_blocking=*/true);
  check_close((d * 2.0f).to(Device::cpu()), src * 2.0f, 0.0f);
  // Released pinned blocks come back from the pool once their copies are done.
  const AllocatorStats before = pinned_allocator_stats();
  for (int i = 0; i < 4; ++i) {
    Tensor p = Tensor::empty_pinned({3, 1000});
    p.copy_(src);
    Tensor on_gpu = p.to(kGpu, true);
    check_close(on_gpu.to(Device::cpu()), src, 0.0f);
  }
  const AllocatorStats after = pinned_allocator_stats();
  CHECK(after.cache_hits > before.cache_hits);
  CHECK_THROWS_AS(Tensor::ones({2}, kGpu).pin_memory(), reel::Error);
}
