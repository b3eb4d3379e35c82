// One training step of the reference video model (layers/video.h): ResNet-18 at width 64 on
// every frame, cnn.fc Linear(512, 512), a two-layer LSTM with H = 256, fusion last, Linear(256,
// 10); forward, cross-entropy, backward and an SGD step with momentum 0.9 (lr 0.01), every
// clip full length. Args: B (clips), T (frames per clip), HW (frame height and width).
// BM_TrainStepRecompute: the same with recompute on (each residual block recomputed in the
// backward). Counters: frames/s; peak_rss_MiB, the process's peak resident memory so far
// (ru_maxrss), meaningful when one process runs one benchmark: the marginal memory per frame is
// (peak at 8/8/112 - peak at 2/8/112) / 48 (bench/peers/train_memory.sh runs it so, beside
// PyTorch); allocs: system allocations per step after warm-up;
// faults: page faults per step (first touches of fresh pages). PyTorch on the same shapes:
// bench/peers/run.sh train_step.py.
#include <sys/resource.h>

#include <benchmark/benchmark.h>

#include "reel/core/reel.h"
#include "reel/layers/video.h"
#include "reel/optim/optim.h"

namespace {

using reel::Tensor;

void run(benchmark::State& state, bool recompute) {
  const int64_t B = state.range(0), T = state.range(1), HW = state.range(2);
  reel::manual_seed(0);
  reel::VideoClassifierOptions o;  // the reference model: its defaults
  o.recompute = recompute;
  reel::VideoClassifier model(o);
  model.train();
  reel::SGDOptions so;
  so.lr = 0.01, so.momentum = 0.9;
  reel::SGD opt(model.parameters(), so);
  reel::Generator gen(1);
  const Tensor x = Tensor::normal({B, T, 3, HW, HW}, 0.0f, 1.0f, gen);
  std::vector<int64_t> y(static_cast<size_t>(B));
  for (int64_t b = 0; b < B; ++b) y[static_cast<size_t>(b)] = (b * 7) % 10;
  auto step = [&] {
    opt.zero_grad();
    Tensor loss = reel::cross_entropy(model.forward(x), y);
    loss.backward();
    opt.step();
    benchmark::DoNotOptimize(loss.item());
  };
  step();  // warm up: the caching pool fills, the optimizer makes its momentum buffers
  step();
  const std::size_t allocs = reel::memory_stats(reel::Device::cpu()).system_allocations;
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  const long faults = ru.ru_minflt;
  for (auto _ : state) step();
  state.counters["frames/s"] =
      benchmark::Counter(static_cast<double>(B * T), benchmark::Counter::kIsIterationInvariantRate);
  state.counters["allocs"] = benchmark::Counter(
      static_cast<double>(reel::memory_stats(reel::Device::cpu()).system_allocations - allocs),
      benchmark::Counter::kAvgIterations);
  const reel::AllocatorStats ms = reel::memory_stats(reel::Device::cpu());
  state.counters["pool_peak_MiB"] = static_cast<double>(ms.peak_in_use_bytes) / (1 << 20);
  state.counters["pool_held_MiB"] = static_cast<double>(ms.system_bytes) / (1 << 20);
  getrusage(RUSAGE_SELF, &ru);
  state.counters["faults"] = benchmark::Counter(static_cast<double>(ru.ru_minflt - faults),
                                                benchmark::Counter::kAvgIterations);
  state.counters["peak_rss_MiB"] = static_cast<double>(ru.ru_maxrss) / 1024.0;  // KiB on Linux
}

void shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"B", "T", "HW"});
  b->Args({4, 8, 112});
  b->Args({2, 16, 112});
  b->Args({8, 8, 64});
  b->Args({8, 8, 112});
  b->Args({2, 8, 112});  // for the marginal memory per frame (with 8/8/112)
  b->Unit(benchmark::kMillisecond);
  b->UseRealTime();
}

void BM_TrainStep(benchmark::State& s) { run(s, false); }
void BM_TrainStepRecompute(benchmark::State& s) { run(s, true); }
BENCHMARK(BM_TrainStep)->Apply(shapes);
BENCHMARK(BM_TrainStepRecompute)->Apply(shapes);

}  // namespace

BENCHMARK_MAIN();
