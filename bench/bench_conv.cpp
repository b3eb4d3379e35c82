// Convolution through conv2d() as a layer calls it: forward (inference, no graph) and forward +
// backward (the gradients of the input and the weight from a fixed upstream gradient), on
// ResNet-18's shapes for a 112x112 input, then those of a training step of the video model (32
// frames of 112x112). Args: N, C, H, W, K, R (square kernel), stride;
// padding R / 2, no bias. Counter GFLOPS: 2 N K P Q C R R for the forward, three times that
// for forward + backward. Counter allocs: system allocations per iteration after warm-up (0
// means the caching pool serves every buffer). PyTorch on the same shapes:
// bench/peers/run.sh conv.py.
#include <benchmark/benchmark.h>

#include "reel/core/nn.h"
#include "reel/core/reel.h"
#include "reel/kernels/cuda/runtime.h"

namespace {

using reel::Tensor;

void run(benchmark::State& state, reel::Device device, bool backward) {
  const int64_t N = state.range(0), C = state.range(1), H = state.range(2), W = state.range(3),
                K = state.range(4), R = state.range(5), stride = state.range(6);
  const int64_t pad = R / 2;
  reel::Generator gen(1);
  Tensor x = Tensor::normal({N, C, H, W}, 0.0f, 1.0f, gen, device);
  Tensor w = Tensor::normal({K, C, R, R}, 0.0f, 0.05f, gen, device);
  const int64_t P = (H + 2 * pad - R) / stride + 1, Q = (W + 2 * pad - R) / stride + 1;
  Tensor gout = Tensor::normal({N, K, P, Q}, 0.0f, 1.0f, gen, device);
  if (backward) {
    x.requires_grad_();
    w.requires_grad_();
  }
  auto step = [&] {
    if (backward) {
      x.zero_grad();
      w.zero_grad();
      reel::conv2d(x, w, Tensor(), stride, pad).backward(gout);
    } else {
      reel::NoGradGuard guard;
      benchmark::DoNotOptimize(reel::conv2d(x, w, Tensor(), stride, pad).data());
    }
    if (device.is_cuda()) reel::cuda::synchronize(device.index);
  };
  step();  // warm up: the caching pools fill
  step();
  const std::size_t allocs = reel::memory_stats(device).system_allocations;
  for (auto _ : state) step();
  const double flops = 2.0 * N * K * P * Q * C * R * R * (backward ? 3.0 : 1.0);
  state.counters["GFLOPS"] =
      benchmark::Counter(flops / 1e9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["allocs"] = benchmark::Counter(
      static_cast<double>(reel::memory_stats(device).system_allocations - allocs),
      benchmark::Counter::kAvgIterations);
}

void shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"N", "C", "H", "W", "K", "R", "stride"});
  b->Args({8, 64, 56, 56, 64, 3, 1});
  b->Args({32, 64, 56, 56, 64, 3, 1});
  b->Args({8, 3, 112, 112, 64, 7, 2});  // the stem
  b->Args({8, 64, 28, 28, 128, 3, 2});  // layer2.0.conv1
  b->Args({8, 128, 14, 14, 128, 3, 1});
  b->Args({8, 128, 14, 14, 256, 3, 2});  // layer3.0.conv1
  b->Args({8, 256, 7, 7, 256, 3, 1});
  b->Args({8, 256, 7, 7, 512, 3, 2});  // layer4.0.conv1
  b->Args({8, 512, 4, 4, 512, 3, 1});
  // The convolutions of a training step of the reference video model: ResNet-18 on 32 frames of
  // 112x112 (bench_train_step's 4 clips of 8 frames).
  b->Args({32, 3, 112, 112, 64, 7, 2});
  b->Args({32, 64, 28, 28, 64, 3, 1});
  b->Args({32, 64, 28, 28, 128, 3, 2});
  b->Args({32, 64, 28, 28, 128, 1, 2});
  b->Args({32, 128, 14, 14, 128, 3, 1});
  b->Args({32, 128, 14, 14, 256, 3, 2});
  b->Args({32, 256, 7, 7, 256, 3, 1});
  b->Args({32, 256, 7, 7, 512, 3, 2});
  b->Args({32, 512, 4, 4, 512, 3, 1});
  b->Unit(benchmark::kMillisecond);
  b->UseRealTime();
}

void BM_Conv2dFwd(benchmark::State& s) { run(s, reel::Device::cpu(), false); }
void BM_Conv2dFwdBwd(benchmark::State& s) { run(s, reel::Device::cpu(), true); }
BENCHMARK(BM_Conv2dFwd)->Apply(shapes);
BENCHMARK(BM_Conv2dFwdBwd)->Apply(shapes);

// The same on a GPU, registered only when one answers.
void BM_Conv2dFwdCuda(benchmark::State& s) { run(s, reel::Device::cuda(0), false); }
void BM_Conv2dFwdBwdCuda(benchmark::State& s) { run(s, reel::Device::cuda(0), true); }
const bool kCuda = [] {
  if (reel::cuda::available()) {
    benchmark::RegisterBenchmark("BM_Conv2dFwdCuda", BM_Conv2dFwdCuda)->Apply(shapes);
    benchmark::RegisterBenchmark("BM_Conv2dFwdBwdCuda", BM_Conv2dFwdBwdCuda)->Apply(shapes);
  }
  return true;
}();

}  // namespace

BENCHMARK_MAIN();
