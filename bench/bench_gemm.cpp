// SGEMM throughput: reel::cpu::gemm against OpenBLAS's cblas_sgemm (when built with
// REEL_HAVE_OPENBLAS) on the shapes reel runs, at reel::cpu::num_threads() threads for both.
// Counter GFLOPS = 2 M N K per second / 1e9.
//
// Run OpenBLAS with its own kernel choice: `env -u OPENBLAS_CORETYPE` (our environment sets
// OPENBLAS_CORETYPE=Haswell, which halves it on AVX-512 machines).
//
// Shapes, as Args({M, N, K}) of row-major C[M, N] = A[M, K] * B[K, N]:
// - square 256, 512, 1024, 2048;
// - LSTM: one recurrent step, batch 32, hidden 256 (4H = 1024 gates): M=32 N=1024 K=256; the
//   input projection of all steps at once: M=512 N=1024 K=512;
// - im2col GEMMs of ResNet-18's 3x3 convolutions for a batch of 8 112x112 images:
//   M = Cout, N = batch * Hout * Wout, K = Cin * 9. The stem (7x7 stride 2) gives 56x56 and the
//   max pool 28x28, so
//     layer1: 28x28,  64 -> 64:                 M=64  N=8*28*28=6272 K=64*9=576
//     layer2: 14x14, first conv 64 -> 128 (s2): M=128 N=8*14*14=1568 K=64*9=576
//                    then 128 -> 128:           M=128 N=1568         K=128*9=1152
//     layer3:  7x7,  first conv 128 -> 256:     M=256 N=8*7*7=392    K=128*9=1152
//                    then 256 -> 256:           M=256 N=392          K=256*9=2304
//     layer4:  4x4,  first conv 256 -> 512:     M=512 N=8*4*4=128    K=256*9=2304
//                    then 512 -> 512:           M=512 N=128          K=512*9=4608
//   (layer4's stride-2 conv maps 7x7 to 4x4: (7 + 2*1 - 3) / 2 + 1 = 4.)

#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdint>
#include <thread>
#include <vector>

#include "reel/kernels/cpu/parallel.h"
#include "reel/kernels/gemm.h"

#ifdef REEL_HAVE_OPENBLAS
#include <cblas.h>
#endif
#ifdef REEL_WITH_CUDA
#include <string>

#include "reel/core/tensor.h"
#include "reel/kernels/cuda/runtime.h"
#endif
#ifdef REEL_WITH_CUBLAS
#include "reel/kernels/vendor/cublas.h"
#endif

namespace {

struct Operands {
  std::vector<float> a, b, c;
  Operands(int64_t m, int64_t n, int64_t k)
      : a(static_cast<size_t>(m * k)),
        b(static_cast<size_t>(k * n)),
        c(static_cast<size_t>(m * n)) {
    // Small values that keep sums finite; the pattern does not matter for speed.
    for (size_t i = 0; i < a.size(); ++i) a[i] = static_cast<float>(i % 7) * 0.125f - 0.375f;
    for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<float>(i % 5) * 0.25f - 0.5f;
  }
};

void set_flops(benchmark::State& state, int64_t m, int64_t n, int64_t k) {
  state.counters["GFLOPS"] = benchmark::Counter(2.0 * static_cast<double>(m) * n * k * 1e-9,
                                                benchmark::Counter::kIsIterationInvariantRate);
}

// trans_a / trans_b select the stored layouts: A [K, M] and B [N, K] when set.
template <bool TransA, bool TransB>
void BM_GemmT(benchmark::State& state) {
  const int64_t m = state.range(0), n = state.range(1), k = state.range(2);
  Operands x(m, n, k);
  const int64_t lda = TransA ? m : k, ldb = TransB ? k : n;
  for (auto _ : state) {
    reel::cpu::gemm(TransA, TransB, m, n, k, 1.0f, x.a.data(), lda, x.b.data(), ldb, 0.0f,
                    x.c.data(), n);
    benchmark::DoNotOptimize(x.c.data());
    benchmark::ClobberMemory();
  }
  set_flops(state, m, n, k);
  state.SetLabel(reel::cpu::gemm_isa());
}

void BM_Gemm(benchmark::State& state) { BM_GemmT<false, false>(state); }
void BM_GemmNT(benchmark::State& state) { BM_GemmT<false, true>(state); }
void BM_GemmTN(benchmark::State& state) { BM_GemmT<true, false>(state); }

void BM_GemmNaive(benchmark::State& state) {
  const int64_t m = state.range(0), n = state.range(1), k = state.range(2);
  Operands x(m, n, k);
  for (auto _ : state) {
    reel::cpu::gemm_naive(false, false, m, n, k, 1.0f, x.a.data(), k, x.b.data(), n, 0.0f,
                          x.c.data(), n);
    benchmark::DoNotOptimize(x.c.data());
    benchmark::ClobberMemory();
  }
  set_flops(state, m, n, k);
}

#ifdef REEL_HAVE_OPENBLAS
void BM_GemmOpenBLAS(benchmark::State& state) {
  const int m = static_cast<int>(state.range(0)), n = static_cast<int>(state.range(1)),
            k = static_cast<int>(state.range(2));
  Operands x(m, n, k);
  openblas_set_num_threads(reel::cpu::num_threads());
  for (auto _ : state) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, x.a.data(), k, x.b.data(),
                n, 0.0f, x.c.data(), n);
    benchmark::DoNotOptimize(x.c.data());
    benchmark::ClobberMemory();
  }
  set_flops(state, m, n, k);
  // OpenBLAS's idle threads spin for about 2^28 cycles (0.1 s) after a call, on the CPUs that
  // the next benchmark needs: let them fall asleep (after the timed loop, so not timed).
  std::this_thread::sleep_for(std::chrono::milliseconds(250));
}
#endif

#ifdef REEL_WITH_CUDA
// GPU GEMM on cuda:0: `which` is one rung of our ladder (naive, tiled, regblock64,
// regblock128) or "cublas". Each timed iteration queues kLaunches products and waits for them,
// so that launch and synchronisation overheads do not hide the kernel on small shapes.
void run_cuda_gemm(benchmark::State& state, const std::string& which) {
  constexpr int kLaunches = 10;
  const int64_t m = state.range(0), n = state.range(1), k = state.range(2);
  Operands x(m, n, k);
  const reel::Device gpu = reel::Device::cuda(0);
  reel::Tensor a = reel::Tensor::from_vector(x.a, {m, k}).to(gpu);  // [M, K]
  reel::Tensor b = reel::Tensor::from_vector(x.b, {k, n}).to(gpu);  // [K, N]
  reel::Tensor c = reel::Tensor::zeros({m, n}, gpu);                // [M, N]
  cudaStream_t stream = reel::cuda::stream_for(0);
  auto product = [&] {
#ifdef REEL_WITH_CUBLAS
    if (which == "cublas") {
      reel::vendor::cublas_gemm(false, false, m, n, k, 1.0f, a.data(), k, b.data(), n, 0.0f,
                                c.data(), n, stream);
      return;
    }
#endif
    reel::cuda::gemm_variant(which.c_str(), false, false, m, n, k, 1.0f, a.data(), k, b.data(), n,
                             0.0f, c.data(), n, stream);
  };
  product();  // warm up (module load, cuBLAS handle)
  reel::cuda::synchronize(0);
  for (auto _ : state) {
    for (int i = 0; i < kLaunches; ++i) product();
    reel::cuda::synchronize(0);
  }
  set_flops(state, m * kLaunches, n, k);
  state.SetLabel(which);
}
void BM_GemmCuda(benchmark::State& state) { run_cuda_gemm(state, "regblock128"); }
void BM_GemmCublas(benchmark::State& state) { run_cuda_gemm(state, "cublas"); }
#endif

// Each shape runs ours, then OpenBLAS, back to back, so that the pair sees the same machine
// (our VMs are shared and their speed drifts).
const std::vector<std::vector<int64_t>> kShapes = {
    {256, 256, 256},  {512, 512, 512},  {1024, 1024, 1024}, {2048, 2048, 2048}, {32, 1024, 256},
    {512, 1024, 512}, {64, 6272, 576},  {128, 1568, 576},   {128, 1568, 1152},  {256, 392, 1152},
    {256, 392, 2304}, {512, 128, 2304}, {512, 128, 4608},
};

}  // namespace

int main(int argc, char** argv) {
  for (const auto& shape : kShapes) {
    benchmark::RegisterBenchmark("BM_Gemm", BM_Gemm)->Args(shape)->UseRealTime();
#ifdef REEL_HAVE_OPENBLAS
    benchmark::RegisterBenchmark("BM_GemmOpenBLAS", BM_GemmOpenBLAS)->Args(shape)->UseRealTime();
#endif
  }
  for (const auto& shape : {std::vector<int64_t>{1024, 1024, 1024}, {32, 1024, 256}}) {
    benchmark::RegisterBenchmark("BM_GemmNT", BM_GemmNT)->Args(shape)->UseRealTime();
    benchmark::RegisterBenchmark("BM_GemmTN", BM_GemmTN)->Args(shape)->UseRealTime();
  }
  benchmark::RegisterBenchmark("BM_GemmNaive", BM_GemmNaive)->Args({256, 256, 256})->UseRealTime();
#ifdef REEL_WITH_CUDA
  // Registered only when a GPU answers: our CUDA GEMM against cuBLAS on every shape, and each
  // rung of the ladder at 1024^3 (BM_GemmCudaLadder/<rung>).
  if (reel::cuda::device_count() > 0) {
    for (const auto& shape : kShapes) {
      benchmark::RegisterBenchmark("BM_GemmCuda", BM_GemmCuda)->Args(shape)->UseRealTime();
#ifdef REEL_WITH_CUBLAS
      benchmark::RegisterBenchmark("BM_GemmCublas", BM_GemmCublas)->Args(shape)->UseRealTime();
#endif
    }
    for (const char* const* v = reel::cuda::gemm_variants(); *v; ++v) {
      const std::string rung = *v;
      benchmark::RegisterBenchmark(("BM_GemmCudaLadder/" + rung).c_str(),
                                   [rung](benchmark::State& st) { run_cuda_gemm(st, rung); })
          ->Args({1024, 1024, 1024})
          ->UseRealTime();
    }
  }
#endif
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
