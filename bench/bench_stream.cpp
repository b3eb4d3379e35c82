// Streaming inference, as `reel predict --stream` runs it: one frame at a time through the
// reference video model (ResNet-18 width 64 on the frame, cnn.fc Linear(512, 512), a two-layer
// LSTM with H = 256 whose state goes from frame to frame, fusion last, Linear(256, 10)), in eval
// mode without gradients, then softmax. Arg: HW (the frame's height and width). The time per
// iteration is the latency of one frame; frames/s is its inverse. PyTorch on the same shapes:
// bench/peers/run.sh stream.py (or bench/peers/compare.sh stream).
#include <benchmark/benchmark.h>

#include "reel/core/reel.h"
#include "reel/layers/video.h"

namespace {

using reel::Tensor;

void BM_StreamStep(benchmark::State& state) {
  const int64_t HW = state.range(0);
  reel::manual_seed(0);
  reel::VideoClassifier model(reel::VideoClassifierOptions{});  // the reference model
  model.eval();
  reel::Generator gen(1);
  const Tensor frame = Tensor::normal({1, 3, HW, HW}, 0.0f, 1.0f, gen);
  reel::VideoStreamState s;
  auto step = [&] {
    const Tensor p = reel::softmax(model.stream_step(frame, s), 1);
    benchmark::DoNotOptimize(p.to_vector());
  };
  step();  // warm up the caching pool
  step();
  for (auto _ : state) step();
  state.counters["frames/s"] =
      benchmark::Counter(1.0, benchmark::Counter::kIsIterationInvariantRate);
}

BENCHMARK(BM_StreamStep)
    ->Arg(112)
    ->Arg(160)
    ->Arg(224)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
