// Memory-bound ops: pointwise, sums, softmax, cross-entropy and copies, through reel's public ops
// (core/ops.h, what a user runs: allocation from the caching allocator included) and through the
// raw CPU kernels, at reel::cpu::num_threads() threads (REEL_NUM_THREADS=2 for the README's
// table). Counter GBps = bytes read + bytes written per second / 1e9, counting each tensor once.
// BM_CopyRoof, a plain OpenMP copy loop over the same threads, is the memory roof.
//
// Shapes: 16M floats (64 MiB, far beyond the 32 MiB L3); ResNet activations [32, 64, 56, 56];
// LSTM gates [32, 1024]; classifier logits [4096, 1000] (cross-entropy) and [8192, 1000]
// (softmax). bench/peers/elementwise.py times PyTorch on the same ops and shapes.
//
//   REEL_NUM_THREADS=2 build/bench/bench_elementwise --benchmark_repetitions=7 \
//     --benchmark_report_aggregates_only=true
// The "_min" rows give the best time of the 7 (Google Benchmark applies a statistic to every
// column, so their GBps is the lowest of the 7: the README's GB/s are bytes / best time).

#include <benchmark/benchmark.h>
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "reel/core/autograd.h"
#include "reel/core/ops.h"
#include "reel/core/tensor.h"
#include "reel/kernels/copy.h"
#include "reel/kernels/cpu/parallel.h"
#include "reel/kernels/elementwise.h"
#include "reel/kernels/reduce.h"
#include "reel/kernels/softmax.h"

namespace {

using reel::Shape;
using reel::Tensor;

constexpr int64_t k16M = int64_t{1} << 24;
const Shape kResnet = {32, 64, 56, 56};
const Shape kGates = {32, 1024};

Tensor filled(const Shape& shape, float lo, float hi, uint64_t seed) {
  Tensor t = Tensor::empty(shape);
  float* p = t.data();
  uint64_t s = seed;
  for (int64_t i = 0; i < t.numel(); ++i) {
    s = s * 6364136223846793005ULL + 1442695040888963407ULL;
    p[i] = lo + (hi - lo) * static_cast<float>(s >> 40) / 16777216.0f;
  }
  return t;
}

void set_bytes(benchmark::State& st, double bytes) {
  st.counters["GBps"] =
      benchmark::Counter(bytes * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

double numel(const Shape& s) {
  double n = 1;
  for (int64_t d : s) n *= static_cast<double>(d);
  return n;
}

// ---- the roof ----

void BM_CopyRoof(benchmark::State& st) {
  std::vector<float> a(k16M, 1.0f), b(k16M, 0.0f);
  const int threads = reel::cpu::num_threads();
  for (auto _ : st) {
    float* pa = a.data();
    float* pb = b.data();
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t i = 0; i < k16M; ++i) pb[i] = pa[i];
    benchmark::ClobberMemory();
  }
  set_bytes(st, 2.0 * 4 * k16M);
}

// ---- public ops, no autograd ----

void unary_op(benchmark::State& st, Tensor (*fn)(const Tensor&), const Shape& shape, float lo,
              float hi) {
  reel::NoGradGuard ng;
  const Tensor x = filled(shape, lo, hi, 1);
  for (auto _ : st) benchmark::DoNotOptimize(fn(x).data());
  set_bytes(st, 2.0 * 4 * numel(shape));
}

void BM_OpAdd(benchmark::State& st) {
  reel::NoGradGuard ng;
  const Tensor a = filled({k16M}, -1, 1, 1), b = filled({k16M}, -1, 1, 2);
  for (auto _ : st) benchmark::DoNotOptimize(reel::add(a, b).data());
  set_bytes(st, 3.0 * 4 * k16M);
}

void BM_OpSumNCHW(benchmark::State& st) {
  reel::NoGradGuard ng;
  const Tensor x = filled(kResnet, -1, 1, 3);
  for (auto _ : st) benchmark::DoNotOptimize(reel::sum(x, {0, 2, 3}).data());
  set_bytes(st, 4.0 * numel(kResnet));
}

void BM_OpSoftmax(benchmark::State& st) {
  reel::NoGradGuard ng;
  const Shape s = {8192, 1000};
  const Tensor x = filled(s, -8, 8, 4);
  for (auto _ : st) benchmark::DoNotOptimize(reel::softmax(x, 1).data());
  set_bytes(st, 2.0 * 4 * numel(s));
}

void BM_OpLogSoftmax(benchmark::State& st) {
  reel::NoGradGuard ng;
  const Shape s = {8192, 1000};
  const Tensor x = filled(s, -8, 8, 4);
  for (auto _ : st) benchmark::DoNotOptimize(reel::log_softmax(x, 1).data());
  set_bytes(st, 2.0 * 4 * numel(s));
}

std::vector<int64_t> targets(int64_t n, int64_t classes) {
  std::vector<int64_t> t(n);
  for (int64_t i = 0; i < n; ++i) t[i] = (i * 7919) % classes;
  return t;
}

void BM_OpCrossEntropy(benchmark::State& st) {
  reel::NoGradGuard ng;
  const Tensor x = filled({4096, 1000}, -8, 8, 5);
  const auto t = targets(4096, 1000);
  for (auto _ : st) benchmark::DoNotOptimize(reel::cross_entropy(x, t).data());
  set_bytes(st, 2.0 * 4 * 4096 * 1000);  // logits read, log-probabilities written
}

void BM_OpCrossEntropyBackward(benchmark::State& st) {
  Tensor x = filled({4096, 1000}, -8, 8, 5);
  x.requires_grad_();
  const auto t = targets(4096, 1000);
  for (auto _ : st) {
    Tensor loss = reel::cross_entropy(x, t);
    loss.backward();
    benchmark::DoNotOptimize(x.grad().data());
    x.zero_grad();
  }
  set_bytes(st, 4.0 * 4 * 4096 * 1000);  // + log-probabilities read, gradient written
}

void BM_OpTranspose(benchmark::State& st) {
  reel::NoGradGuard ng;
  const Tensor x = filled({4096, 4096}, -1, 1, 6);
  for (auto _ : st) benchmark::DoNotOptimize(reel::transpose(x, 0, 1).data());
  set_bytes(st, 2.0 * 4 * 4096 * 4096);
}

void BM_OpPermuteNCHW(benchmark::State& st) {  // NCHW -> NHWC
  reel::NoGradGuard ng;
  const Tensor x = filled(kResnet, -1, 1, 7);
  for (auto _ : st) benchmark::DoNotOptimize(reel::permute(x, {0, 2, 3, 1}).data());
  set_bytes(st, 2.0 * 4 * numel(kResnet));
}

// ---- raw kernels into preallocated outputs ----

void raw_unary(benchmark::State& st, reel::math::Unary op, int64_t n, float lo, float hi) {
  const Tensor x = filled({n}, lo, hi, 8);
  Tensor y = Tensor::empty({n});
  for (auto _ : st) {
    reel::cpu::unary_forward(op, x.data(), y.data(), n);
    benchmark::ClobberMemory();
  }
  set_bytes(st, 2.0 * 4 * n);
}

void BM_KernelAdd(benchmark::State& st) {
  const Tensor a = filled({k16M}, -1, 1, 1), b = filled({k16M}, -1, 1, 2);
  Tensor c = Tensor::empty({k16M});
  const int64_t shape[] = {k16M}, one[] = {1};
  for (auto _ : st) {
    reel::cpu::binary_forward(reel::math::Binary::Add, a.data(), one, b.data(), one, c.data(),
                              shape, 1);
    benchmark::ClobberMemory();
  }
  set_bytes(st, 3.0 * 4 * k16M);
}

void BM_KernelCopy(benchmark::State& st) {
  const Tensor a = filled({k16M}, -1, 1, 1);
  Tensor b = Tensor::empty({k16M});
  const int64_t shape[] = {k16M}, one[] = {1};
  for (auto _ : st) {
    reel::cpu::strided_copy(a.data(), one, b.data(), one, shape, 1);
    benchmark::ClobberMemory();
  }
  set_bytes(st, 2.0 * 4 * k16M);
}

void BM_KernelSumNCHW(benchmark::State& st) {
  const Tensor x = filled(kResnet, -1, 1, 3);
  Tensor out = Tensor::empty({64});
  const int64_t os[] = {0, 1, 0, 0};
  for (auto _ : st) {
    std::fill(out.data(), out.data() + 64, 0.0f);
    reel::cpu::sum_reduce(x.data(), kResnet.data(), 4, out.data(), os);
    benchmark::ClobberMemory();
  }
  set_bytes(st, 4.0 * numel(kResnet));
}

void BM_KernelSoftmax(benchmark::State& st) {
  const Tensor x = filled({8192, 1000}, -8, 8, 4);
  Tensor y = Tensor::empty({8192, 1000});
  for (auto _ : st) {
    reel::cpu::softmax_forward(x.data(), y.data(), 8192, 1000, 1, false);
    benchmark::ClobberMemory();
  }
  set_bytes(st, 2.0 * 4 * 8192 * 1000);
}

}  // namespace

int main(int argc, char** argv) {
  auto reg = [](const std::string& name, std::function<void(benchmark::State&)> fn) {
    benchmark::RegisterBenchmark(name.c_str(), fn)
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond)
        ->ComputeStatistics("min", [](const std::vector<double>& v) {
          return *std::min_element(v.begin(), v.end());
        });
  };
  using reel::math::Unary;
  reg("BM_CopyRoof/16M", BM_CopyRoof);
  reg("BM_OpAdd/16M", BM_OpAdd);
  reg("BM_OpSigmoid/16M", [](benchmark::State& s) { unary_op(s, reel::sigmoid, {k16M}, -8, 8); });
  reg("BM_OpTanh/16M", [](benchmark::State& s) { unary_op(s, reel::tanh, {k16M}, -8, 8); });
  reg("BM_OpExp/16M", [](benchmark::State& s) { unary_op(s, reel::exp, {k16M}, -8, 8); });
  reg("BM_OpLog/16M", [](benchmark::State& s) { unary_op(s, reel::log, {k16M}, 0.01f, 8); });
  reg("BM_OpRelu/32x64x56x56",
      [](benchmark::State& s) { unary_op(s, reel::relu, kResnet, -1, 1); });
  reg("BM_OpSigmoid/32x1024",
      [](benchmark::State& s) { unary_op(s, reel::sigmoid, kGates, -8, 8); });
  reg("BM_OpTanh/32x1024", [](benchmark::State& s) { unary_op(s, reel::tanh, kGates, -8, 8); });
  reg("BM_OpRelu/4", [](benchmark::State& s) { unary_op(s, reel::relu, {4}, -1, 1); });
  reg("BM_OpSum023/32x64x56x56", BM_OpSumNCHW);
  reg("BM_OpSoftmax/8192x1000", BM_OpSoftmax);
  reg("BM_OpLogSoftmax/8192x1000", BM_OpLogSoftmax);
  reg("BM_OpCrossEntropy/4096x1000", BM_OpCrossEntropy);
  reg("BM_OpCrossEntropyFwdBwd/4096x1000", BM_OpCrossEntropyBackward);
  reg("BM_OpTranspose/4096x4096", BM_OpTranspose);
  reg("BM_OpPermuteNHWC/32x64x56x56", BM_OpPermuteNCHW);
  reg("BM_KernelAdd/16M", BM_KernelAdd);
  reg("BM_KernelCopy/16M", BM_KernelCopy);
  reg("BM_KernelSigmoid/16M",
      [](benchmark::State& s) { raw_unary(s, Unary::Sigmoid, k16M, -8, 8); });
  reg("BM_KernelTanh/16M", [](benchmark::State& s) { raw_unary(s, Unary::Tanh, k16M, -8, 8); });
  reg("BM_KernelExp/16M", [](benchmark::State& s) { raw_unary(s, Unary::Exp, k16M, -8, 8); });
  reg("BM_KernelRelu/16M", [](benchmark::State& s) { raw_unary(s, Unary::Relu, k16M, -1, 1); });
  reg("BM_KernelSum023/32x64x56x56", BM_KernelSumNCHW);
  reg("BM_KernelSoftmax/8192x1000", BM_KernelSoftmax);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  const std::string isa = std::string("vec_isa=") + reel::cpu::vec_isa() +
                          " threads=" + std::to_string(reel::cpu::num_threads());
  benchmark::AddCustomContext("reel", isa);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
