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
#include "reel/core/nn.h"
#include "reel/kernels/elementwise.h"
#include "reel/kernels/gemm.h"
#include "reel/layers/lstm.h"
#include "reel/layers/resnet.h"
#include "reel/layers/video.h"

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

// g++ and nvcc contract to FMA differently, and the reductions add in another order: the CUDA
// results are compared within reel::test::check_close's tolerance, never bit-exact.
using reel::test::check_close;

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
  // A class masked with -inf (with and without smoothing) gives no NaN, as on the CPU.
  const float inf = INFINITY;
  for (float eps : {0.0f, 0.1f}) {
    INFO("masked, smoothing " << eps);
    const Tensor masked = Tensor::from_vector({0, -inf, 1, 2, 0.5f, -inf}, {2, 3});
    const float on_gpu = cross_entropy(masked.to(kGpu), {2, 0}, eps).item();
    const float on_cpu = cross_entropy(masked, {2, 0}, eps).item();
    if (eps == 0.0f)
      CHECK(on_gpu == doctest::Approx(on_cpu));
    else  // smoothing puts weight on the -inf class: +inf, as PyTorch, on both devices
      CHECK((std::isinf(on_gpu) && on_gpu > 0 && on_cpu == on_gpu));
  }
  Tensor all_ignored = cross_entropy(Tensor::zeros({2, 3}, kGpu), {-100, -100});
  CHECK(std::isnan(all_ignored.item()));
}

TEST_CASE("softmax kernels: a warp per row up to 1024 classes, a block beyond, lines") {
  if (!have_device()) return;
  // Every register width of the warp kernel (1..32 values per lane, with ragged tails), the
  // block kernel past 1024, and strided lines (inner > 1) short and long.
  for (const Shape& s : std::vector<Shape>{{4, 1},
                                           {3, 32},
                                           {3, 33},
                                           {5, 100},
                                           {2, 255},
                                           {2, 513},
                                           {9, 1024},
                                           {2, 1025},
                                           {3, 3000},
                                           {2, 17, 40},
                                           {1, 1500, 2}}) {
    const int64_t dim = 1;
    INFO(shape_str(s));
    compare([dim](const std::vector<Tensor>& v) { return softmax(v[0], dim); }, {random(s, 44)});
    compare([dim](const std::vector<Tensor>& v) { return log_softmax(v[0], dim); },
            {random(s, 45)});
  }
  // -inf entries (a mask) and a row of only -inf, as PyTorch: 0 where masked, NaN for the row.
  for (int64_t C : {5, 40, 2000}) {
    INFO("C " << C);
    std::vector<float> v(static_cast<size_t>(2 * C));
    for (int64_t c = 0; c < C; ++c) {
      v[static_cast<size_t>(c)] = c % 3 == 0 ? -INFINITY : 0.1f * static_cast<float>(c % 7);
      v[static_cast<size_t>(C + c)] = -INFINITY;
    }
    const Tensor x = Tensor::from_vector(v, {2, C});
    const std::vector<float> on_gpu = softmax(x.to(kGpu), 1).to_vector();
    const std::vector<float> on_cpu = softmax(x, 1).to_vector();
    for (int64_t c = 0; c < C; ++c) {
      CHECK(on_gpu[static_cast<size_t>(c)] == doctest::Approx(on_cpu[static_cast<size_t>(c)]));
      if (c % 3 == 0) CHECK(on_gpu[static_cast<size_t>(c)] == 0.0f);
      CHECK(std::isnan(on_gpu[static_cast<size_t>(C + c)]));
    }
  }
  // Cross-entropy through the block kernel (C > 1024), with smoothing and ignored rows.
  std::vector<int64_t> t(6);
  for (size_t i = 0; i < t.size(); ++i) t[i] = i == 2 ? -100 : static_cast<int64_t>(i * 311);
  compare([&t](const std::vector<Tensor>& v) { return cross_entropy(v[0], t, 0.1f); },
          {random({6, 1700}, 46)});
}

TEST_CASE("pointwise kernels: float4 and scalar paths, and misaligned pointers") {
  if (!have_device()) return;
  cudaStream_t s = cuda::stream_for(0);
  const int64_t n = 1031;  // not a multiple of 4
  const Tensor x = random({n}, 50), g = random({n}, 51);
  const Tensor xd = x.to(kGpu), gd = g.to(kGpu);
  for (int off : {0, 1, 2, 3}) {  // off > 0: pointers not 16-byte aligned
    INFO("offset " << off);
    const int64_t m = n - off;
    for (math::Unary op : {math::Unary::Exp, math::Unary::Tanh, math::Unary::Sigmoid,
                           math::Unary::Relu, math::Unary::Neg}) {
      INFO("op " << static_cast<int>(op));
      Tensor yc = Tensor::zeros({n}), yd = Tensor::zeros({n}, kGpu);
      cpu::unary_forward(op, x.data() + off, yc.data() + off, m);
      cuda::unary_forward(op, xd.data() + off, yd.data() + off, m, s);
      check_close(yd.to(Device::cpu()), yc);
      Tensor dc = Tensor::zeros({n}), dd = Tensor::zeros({n}, kGpu);
      cpu::unary_backward(op, g.data() + off, x.data() + off, yc.data() + off, dc.data() + off, m);
      cuda::unary_backward(op, gd.data() + off, xd.data() + off, yd.data() + off, dd.data() + off,
                           m, s);
      check_close(dd.to(Device::cpu()), dc);
    }
    Tensor fc = Tensor::zeros({n}), fd = Tensor::zeros({n}, kGpu);
    cpu::fill(fc.data() + off, 2.5f, m);
    cuda::fill(fd.data() + off, 2.5f, m, s);
    cpu::axpy(-0.5f, x.data() + off, fc.data() + off, m);
    cuda::axpy(-0.5f, xd.data() + off, fd.data() + off, m, s);
    cpu::scale(3.0f, fc.data() + off, m);
    cuda::scale(3.0f, fd.data() + off, m, s);
    check_close(fd.to(Device::cpu()), fc);
    // A binary op on contiguous operands and on a scalar, misaligned.
    const int64_t shape[1] = {m}, contiguous[1] = {1}, scalar[1] = {0};
    Tensor bc = Tensor::zeros({n}), bd = Tensor::zeros({n}, kGpu);
    cpu::binary_forward(math::Binary::Div, x.data() + off, contiguous, g.data() + 3, scalar,
                        bc.data() + off, shape, 1);
    cuda::binary_forward(math::Binary::Div, xd.data() + off, contiguous, gd.data() + 3, scalar,
                         bd.data() + off, shape, 1, s);
    check_close(bd.to(Device::cpu()), bc);
  }
  // Through the ops: scalar on either side, same shapes, and a broadcast the flat kernel cannot
  // take (it goes through the n-d indexer with merged dimensions).
  const Tensor a = random({4, 6, 5}, 52), b = sigmoid(random({4, 6, 5}, 53)) + 0.5f;
  const Fn div_ab = [](const std::vector<Tensor>& v) { return v[0] / v[1]; };
  compare(div_ab, {a, b});
  compare(div_ab, {a, Tensor::scalar(1.5f)});
  compare(div_ab, {Tensor::scalar(1.5f), b});
  compare(div_ab, {a, sigmoid(random({6, 1}, 54)) + 0.5f});
  compare([](const std::vector<Tensor>& v) { return v[0] * v[1]; },
          {random({2, 1, 3, 4}, 55), random({5, 1, 1}, 56)});
}

TEST_CASE("sums for BatchNorm and friends: over (0, 2, 3) of NCHW, over rows, over columns") {
  if (!have_device()) return;
  compare(
      [](const std::vector<Tensor>& v) {
        return sum(v[0], {0, 2, 3});
      },
      {random({3, 5, 9, 11}, 60)});
  compare(
      [](const std::vector<Tensor>& v) {
        return mean(v[0], {0, 2, 3}, true);
      },
      {random({2, 3, 40, 40}, 61)});  // 3200 per channel: wide blocks
  compare(
      [](const std::vector<Tensor>& v) {
        return sum(v[0], {1, 3});
      },
      {random({2, 7, 3, 50}, 62)});
  compare([](const std::vector<Tensor>& v) { return sum(v[0], {0}); }, {random({70, 3, 2}, 63)});
  compare([](const std::vector<Tensor>& v) { return sum(v[0], {1}); }, {random({4, 1, 6}, 64)});
}

TEST_CASE("the fused LSTM layer: forward and backward through time, lengths, both directions") {
  if (!have_device()) return;
  for (bool reverse : {false, true}) {
    for (bool with_lengths : {false, true}) {
      INFO("reverse " << reverse << ", lengths " << with_lengths);
      const std::vector<int64_t> lengths =
          with_lengths ? std::vector<int64_t>{5, 2, 7} : std::vector<int64_t>{};
      compare(
          [&](const std::vector<Tensor>& v) {
            const LstmLayerOutput y =
                lstm_layer(v[0], v[1], v[2], v[3], v[4], v[5], v[6], lengths, reverse);
            return concat({y.out.reshape({-1}), y.h_n.reshape({-1}), y.c_n.reshape({-1})}, 0);
          },
          {random({7, 3, 5}, 70), random({3, 9}, 71), random({3, 9}, 72), random({36, 5}, 73),
           random({36, 9}, 74), random({36}, 75), random({36}, 76)});
    }
  }
  // A whole module moved to the device computes what it computes on the CPU.
  LSTMOptions o;
  o.input_size = 4;
  o.hidden_size = 6;
  o.num_layers = 2;
  o.bidirectional = true;
  o.batch_first = true;
  LSTM on_cpu(o), on_gpu(o);
  on_gpu.load_state_dict(on_cpu.state_dict());
  on_gpu.to(kGpu);
  CHECK(on_gpu.parameters()[0].device() == kGpu);
  const Tensor x = random({3, 5, 4}, 77);
  const LstmOutput a = on_cpu.forward(x, {5, 1, 3}), b = on_gpu.forward(x.to(kGpu), {5, 1, 3});
  check_close(b.output.to(Device::cpu()), a.output);
  check_close(b.h_n.to(Device::cpu()), a.h_n);
  (a.output.sum() + a.c_n.sum()).backward();
  (b.output.sum() + b.c_n.sum()).backward();
  const std::vector<Tensor> pa = on_cpu.parameters(), pb = on_gpu.parameters();
  for (size_t i = 0; i < pa.size(); ++i) check_close(pb[i].grad().to(Device::cpu()), pa[i].grad());
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

TEST_CASE("memory_stats on the device: in use, a peak that resets, the cache emptied") {
  if (!have_device()) return;
  empty_cache(kGpu);
  reset_peak_memory_stats(kGpu);
  const AllocatorStats s0 = memory_stats(kGpu);
  CHECK(s0.cached_bytes == 0);
  CHECK(s0.peak_in_use_bytes == s0.in_use_bytes);
  {
    Tensor a = Tensor::zeros({1 << 16}, kGpu);  // 256 KiB
    CHECK(memory_stats(kGpu).in_use_bytes == s0.in_use_bytes + (std::size_t{1} << 18));
  }
  const AllocatorStats s1 = memory_stats(kGpu);
  CHECK(s1.in_use_bytes == s0.in_use_bytes);
  CHECK(s1.peak_in_use_bytes == s0.in_use_bytes + (std::size_t{1} << 18));
  CHECK(s1.cached_bytes == (std::size_t{1} << 18));
  reset_peak_memory_stats(kGpu);
  CHECK(memory_stats(kGpu).peak_in_use_bytes == s1.in_use_bytes);
  empty_cache(kGpu);
  CHECK(memory_stats(kGpu).cached_bytes == 0);
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

TEST_CASE("CNN ops through core: conv2d, batch_norm, pooling, dropout, and a narrow ResNet") {
  if (!have_device()) return;
  compare(
      [](const std::vector<Tensor>& v) {
        return conv2d(v[0], v[1], v[2], {2, 1}, {1, 0}, {1, 2});
      },
      {random({2, 3, 9, 8}, 60), random({4, 3, 3, 2}, 61), random({4}, 62)});
  compare([](const std::vector<Tensor>& v) { return conv2d(v[0], v[1], Tensor(), 1, 1); },
          {random({1, 2, 6, 5}, 63), random({3, 2, 3, 3}, 64)});
  compare(
      [](const std::vector<Tensor>& v) {
        return batch_norm(v[0], Tensor(), Tensor(), v[1], v[2], true);
      },
      {random({3, 4, 2, 3}, 65), random({4}, 66), random({4}, 67)});
  compare(
      [](const std::vector<Tensor>& v) {
        Tensor rm = Tensor::full({4}, 0.2f, v[0].device()),
               rv = Tensor::full({4}, 1.5f, v[0].device());
        return batch_norm(v[0], rm, rv, v[1], v[2], false);
      },
      {random({2, 4, 3, 1}, 68), random({4}, 69), random({4}, 70)});
  compare([](const std::vector<Tensor>& v) { return max_pool2d(v[0], 3, 2, 1); },
          {random({2, 3, 7, 6}, 71)});
  compare(
      [](const std::vector<Tensor>& v) {
        return adaptive_avg_pool2d(v[0], {3, 2});
      },
      {random({2, 2, 7, 5}, 72)});
  compare(
      [](const std::vector<Tensor>& v) {
        Generator g(9);  // the same seed on both devices: the same mask
        return dropout(v[0], 0.4f, true, g);
      },
      {random({5, 77}, 73)});
  // A ResNet-18 of width 2 on one 32x32 frame in training mode: every layer on the device, and
  // the running statistics it updates equal the CPU's.
  manual_seed(5);
  ResNetOptions o;
  o.width = 2, o.num_classes = 3;
  ResNet cpu_net(o), gpu_net(o);
  gpu_net.load_state_dict(cpu_net.state_dict());
  gpu_net.to(kGpu);
  Tensor x = random({2, 3, 32, 32}, 74);
  Tensor yc = cpu_net.forward(x), yg = gpu_net.forward(x.to(kGpu));
  check_close(yg.to(Device::cpu()), yc, 1e-3f);
  yc.sum().backward();
  yg.sum().backward();
  const auto pc = cpu_net.named_parameters(), pg = gpu_net.named_parameters();
  for (size_t i = 0; i < pc.size(); ++i)
    check_close(pg[i].second.grad().to(Device::cpu()), pc[i].second.grad(), 2e-3f, pc[i].first);
  const auto bc = cpu_net.named_buffers(), bg = gpu_net.named_buffers();
  for (size_t i = 0; i < bc.size(); ++i)
    check_close(bg[i].second.to(Device::cpu()), bc[i].second, 1e-4f, bc[i].first);
}

TEST_CASE("the video classifier on the device: attention over lengths, recompute, its buffers") {
  if (!have_device()) return;
  // A width-2 ResNet-18, F 6, H 5, on 2 clips of 3 frames (lengths 3 and 2) in training mode,
  // with the ResNet recomputed in the backward: the logits, every gradient and every BatchNorm
  // buffer equal the CPU's.
  manual_seed(6);
  VideoClassifierOptions o;
  o.width = 2, o.feature_dim = 6, o.hidden_size = 5, o.num_layers = 1, o.num_classes = 3;
  o.fusion = Fusion::attention;
  o.recompute = true;
  VideoClassifier cpu_net(o), gpu_net(o);
  gpu_net.load_state_dict(cpu_net.state_dict());
  gpu_net.to(kGpu);
  Tensor x = random({2, 3, 3, 32, 32}, 75);
  Tensor yc = cpu_net.forward(x, {3, 2}), yg = gpu_net.forward(x.to(kGpu), {3, 2});
  REQUIRE(yg.device() == kGpu);
  check_close(yg.to(Device::cpu()), yc, 1e-3f);
  const Tensor r = random(yc.shape(), 76);
  yc.backward(r);
  yg.backward(r.to(kGpu));
  const auto pc = cpu_net.named_parameters(), pg = gpu_net.named_parameters();
  for (size_t i = 0; i < pc.size(); ++i) {
    REQUIRE(pg[i].second.grad().defined());
    check_close(pg[i].second.grad().to(Device::cpu()), pc[i].second.grad(), 2e-3f, pc[i].first);
  }
  const auto bc = cpu_net.named_buffers(), bg = gpu_net.named_buffers();
  for (size_t i = 0; i < bc.size(); ++i)
    check_close(bg[i].second.to(Device::cpu()), bc[i].second, 1e-4f, bc[i].first);
}
