// The gradient exchange of data-parallel training (apps/distributed.h), under mpirun:
//
//   mpirun --allow-run-as-root --oversubscribe -np 2 build/bench/bench_allreduce
//
// The reference model's gradients (layers/video.h's defaults: ResNet-18 at width 64, cnn.fc
// 512 x 512, a two-layer LSTM of 256, 12.3 M floats, 47 MiB):
// - BM_PlainAllreduce: one MPI_Allreduce of all those bytes, the floor of a single call.
// - BM_Bucketed/<KiB>: GradientAverager::finish() with every bucket started there (no backward
//   running): our exchange alone, in buckets of that size.
// - BM_Overlap/<KiB>: one backward of the reference model on a clip batch (B = 1, T = 4,
//   64 x 64), alone (backward_ms), then with the averager's hooks starting each bucket as its
//   last gradient arrives and finish() after it (ddp_ms), then the exchange alone (exchange_ms);
//   hidden = 1 - (ddp - backward) / exchange: the share of the exchange that backward hid.
// GB/s is the algorithm's bandwidth: gradient bytes / time. Every rank runs the same fixed
// iterations (collectives must match); rank 0 prints.
#include <mpi.h>

#include <chrono>
#include <cstdio>
#include <vector>

#include <benchmark/benchmark.h>

#include "distributed.h"
#include "reel/core/reel.h"
#include "reel/layers/video.h"

namespace {

using reel::Tensor;
using Clock = std::chrono::steady_clock;

double since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

struct Model {
  reel::VideoClassifier net{reel::VideoClassifierOptions{}};
  reel::NamedTensors params = net.named_parameters();
  int64_t floats() const {
    int64_t n = 0;
    for (const auto& [k, p] : params) n += p.numel();
    return n;
  }
  // Gradients of the right shapes, without a backward.
  void fill_grads() {
    reel::Generator g(1);
    for (const auto& [k, p] : params) p.set_grad(Tensor::normal(p.shape(), 0.0f, 1.0f, g));
  }
};

Model& model() {
  static Model m;
  return m;
}

void BM_PlainAllreduce(benchmark::State& state) {
  std::vector<float> buf(static_cast<size_t>(model().floats()), 1.0f);
  for (auto _ : state)
    MPI_Allreduce(MPI_IN_PLACE, buf.data(), static_cast<int>(buf.size()), MPI_FLOAT, MPI_SUM,
                  MPI_COMM_WORLD);
  state.counters["GB/s"] = benchmark::Counter(static_cast<double>(buf.size() * sizeof(float)),
                                              benchmark::Counter::kIsIterationInvariantRate);
}

void BM_Bucketed(benchmark::State& state) {
  const reel::apps::Ranks& ranks = reel::apps::Ranks::world();
  model().fill_grads();
  reel::apps::GradientAverager avg(ranks, model().params, state.range(0) / 1024.0);
  for (auto _ : state) avg.finish();
  state.counters["buckets"] = static_cast<double>(avg.buckets());
  state.counters["GB/s"] = benchmark::Counter(static_cast<double>(model().floats()) * sizeof(float),
                                              benchmark::Counter::kIsIterationInvariantRate);
}

void BM_Overlap(benchmark::State& state) {
  const reel::apps::Ranks& ranks = reel::apps::Ranks::world();
  Model& m = model();
  m.net.train();
  reel::Generator gen(2);
  const Tensor x = Tensor::normal({1, 4, 3, 64, 64}, 0.0f, 1.0f, gen);
  const std::vector<int64_t> y = {3};
  double backward = 0, ddp = 0, exchange = 0, early = 0;
  for (auto _ : state) {
    m.net.zero_grad();
    Tensor loss = reel::cross_entropy(m.net.forward(x), y);
    MPI_Barrier(MPI_COMM_WORLD);
    auto t0 = Clock::now();
    loss.backward();
    backward += since(t0);
    {
      reel::apps::GradientAverager avg(ranks, m.params, state.range(0) / 1024.0);
      m.net.zero_grad();
      loss = reel::cross_entropy(m.net.forward(x), y);
      MPI_Barrier(MPI_COMM_WORLD);
      t0 = Clock::now();
      loss.backward();
      avg.finish();
      const double t = since(t0);
      ddp += t;
      state.SetIterationTime(t);
      early += static_cast<double>(avg.started_early()) / static_cast<double>(avg.buckets());
      MPI_Barrier(MPI_COMM_WORLD);
      t0 = Clock::now();
      avg.finish();  // every bucket started here: the exchange alone
      exchange += since(t0);
    }
  }
  const double n = static_cast<double>(state.iterations());
  state.counters["backward_ms"] = 1e3 * backward / n;
  state.counters["ddp_ms"] = 1e3 * ddp / n;
  state.counters["exchange_ms"] = 1e3 * exchange / n;
  state.counters["started_in_backward"] = early / n;
  state.counters["hidden"] = 1.0 - (ddp - backward) / exchange;
}

BENCHMARK(BM_PlainAllreduce)->Iterations(5)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Bucketed)
    ->Arg(1024)
    ->Arg(4096)
    ->Arg(25600)
    ->Iterations(5)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Overlap)->Arg(4096)->Iterations(3)->UseManualTime()->Unit(benchmark::kMillisecond);

}  // namespace

int main(int argc, char** argv) {
  const reel::apps::Ranks& ranks = reel::apps::Ranks::world();
  if (!ranks.distributed()) {
    std::fprintf(stderr, "bench_allreduce: run it under mpirun -np 2 (or more)\n");
    return 2;
  }
  if (ranks.rank() != 0) std::freopen("/dev/null", "w", stdout);
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  reel::apps::Ranks::finalize();
  return 0;
}
