// The LSTM, forward (inference: no graph recorded) and forward + backward (of output.sum()),
// through the LSTM module as a user calls it, batch first. Args: B, T, D, H, L. Counter GFLOPS
// counts the GEMMs' 2 M N K: per layer and step, the input projection 8 B H D_l and the
// recurrent product 8 B H H; backward three times the forward's (dx, dW_ih, dW_hh, dh).
// PyTorch on the same shapes: bench/peers/run.sh lstm.py.
#include <benchmark/benchmark.h>

#include "reel/core/reel.h"
#include "reel/kernels/cuda/runtime.h"
#include "reel/layers/lstm.h"

namespace {

using reel::Tensor;

double lstm_flops(int64_t B, int64_t T, int64_t D, int64_t H, int64_t L) {
  double f = 0.0;
  for (int64_t l = 0; l < L; ++l) {
    const int64_t in = l == 0 ? D : H;
    f += 2.0 * B * T * 4 * H * (in + H);
  }
  return f;
}

void run(benchmark::State& state, reel::Device device, bool backward) {
  const int64_t B = state.range(0), T = state.range(1), D = state.range(2), H = state.range(3),
                L = state.range(4);
  reel::manual_seed(0);
  reel::LSTMOptions o;
  o.input_size = D;
  o.hidden_size = H;
  o.num_layers = L;
  o.batch_first = true;
  reel::LSTM lstm(o);
  lstm.to(device);
  reel::Generator gen(1);
  Tensor x = Tensor::normal({B, T, D}, 0.0f, 1.0f, gen, device);
  auto step = [&] {
    if (backward) {
      lstm.zero_grad();
      lstm.forward(x).output.sum().backward();
    } else {
      reel::NoGradGuard guard;
      benchmark::DoNotOptimize(lstm.forward(x).output.data());
    }
    if (device.is_cuda()) reel::cuda::synchronize(device.index);
  };
  step();  // warm up: the caching pools fill
  for (auto _ : state) step();
  const double flops = lstm_flops(B, T, D, H, L) * (backward ? 3.0 : 1.0);
  state.counters["GFLOPS"] =
      benchmark::Counter(flops / 1e9, benchmark::Counter::kIsIterationInvariantRate);
}

void shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"B", "T", "D", "H", "L"});
  b->Args({32, 16, 512, 256, 2});
  b->Args({8, 32, 512, 256, 2});
  b->Unit(benchmark::kMillisecond);
  b->UseRealTime();
}

void BM_LstmFwd(benchmark::State& s) { run(s, reel::Device::cpu(), false); }
void BM_LstmFwdBwd(benchmark::State& s) { run(s, reel::Device::cpu(), true); }
BENCHMARK(BM_LstmFwd)->Apply(shapes);
BENCHMARK(BM_LstmFwdBwd)->Apply(shapes);

// The same on a GPU, registered only when one answers.
void BM_LstmFwdCuda(benchmark::State& s) { run(s, reel::Device::cuda(0), false); }
void BM_LstmFwdBwdCuda(benchmark::State& s) { run(s, reel::Device::cuda(0), true); }
const bool kCuda = [] {
  if (reel::cuda::available()) {
    benchmark::RegisterBenchmark("BM_LstmFwdCuda", BM_LstmFwdCuda)->Apply(shapes);
    benchmark::RegisterBenchmark("BM_LstmFwdBwdCuda", BM_LstmFwdBwdCuda)->Apply(shapes);
  }
  return true;
}();

}  // namespace

BENCHMARK_MAIN();
