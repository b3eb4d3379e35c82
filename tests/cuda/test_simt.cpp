// The SIMT emulation itself: barriers, shared memory, warp operations, deadlock reports and
// the shuffled fibre order that exposes a missing barrier.
#include <doctest/doctest.h>

#include <numeric>
#include <vector>

#include "reel/kernels/cuda/launch.h"

namespace {

// Reverses each block's slice of x through shared memory. With the barrier a correct kernel;
// without it a thread may read a slot before its owner wrote it.
template <bool Barrier>
__global__ void reverse_kernel(const int* x, int* y) {
  __shared__ int tile[64];
  const int t = threadIdx.x;
  tile[t] = x[blockIdx.x * 64 + t];
  if (Barrier) __syncthreads();
  y[blockIdx.x * 64 + t] = tile[63 - t];
}

// out[lane] for each lane of each warp: several warp operations.
__global__ void warp_kernel(int* shfl_idx, int* shfl_down, int* shfl_xor, unsigned* ballot,
                            float* sum) {
  const int t = threadIdx.x, lane = t % 32;
  shfl_idx[t] = __shfl_sync(0xffffffffu, t * 10, 3);
  shfl_down[t] = __shfl_down_sync(0xffffffffu, t, 1);
  shfl_xor[t] = __shfl_xor_sync(0xffffffffu, t, 5);
  ballot[t] = __ballot_sync(0xffffffffu, lane % 3 == 0);
  float v = static_cast<float>(t);
  for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
  sum[t] = v;
}

// Lanes 0..15 shuffle while lanes 16..31 do not: undefined on a GPU.
__global__ void divergent_shuffle_kernel(int* out) {
  const int t = threadIdx.x;
  if (t < 16) out[t] = __shfl_sync(0xffffffffu, t, 0);
}

// Two groups of lanes with their own masks, then a whole-warp __syncwarp (legal on Volta and
// later): lanes 16..31 swap neighbours among themselves while lanes 0..15 wait.
__global__ void divergent_groups_kernel(int* out) {
  const int t = threadIdx.x;
  int v = t;
  if (t >= 16) v = __shfl_xor_sync(0xffff0000u, v, 1);
  __syncwarp();
  out[t] = v;
}

// Reads lane 20, which is outside the mask of the lanes that shuffle.
__global__ void shuffle_outside_mask_kernel(int* out) {
  const int t = threadIdx.x;
  if (t < 16) out[t] = __shfl_sync(0x0000ffffu, t, 20);
}

// Reads dynamic shared memory before writing it.
__global__ void read_dynamic_smem_kernel(float* out) {
  REEL_DYNAMIC_SMEM(float, s);
  out[threadIdx.x] = s[threadIdx.x];
}

__global__ void coords_kernel(int* out) {
  const int b = blockIdx.y * gridDim.x + blockIdx.x;
  const int t = threadIdx.y * blockDim.x + threadIdx.x;
  out[b * blockDim.x * blockDim.y + t] = b * 1000 + t;
}

}  // namespace

TEST_CASE("a barrier orders shared-memory writes before reads") {
  std::vector<int> x(128), y(128, -1);
  std::iota(x.begin(), x.end(), 0);
  for (uint64_t seed : {0ull, 1ull, 2ull, 3ull}) {
    reel::emu::set_shuffle_seed(seed);
    reel::launch_kernel(reverse_kernel<true>, dim3(2), dim3(64), 0, nullptr, x.data(), y.data());
    for (int b = 0; b < 2; ++b)
      for (int t = 0; t < 64; ++t) REQUIRE(y[b * 64 + t] == b * 64 + 63 - t);
  }
  reel::emu::set_shuffle_seed(0);
}

TEST_CASE("a missing barrier shows up as a wrong result once the fibre order is shuffled") {
  std::vector<int> x(64), y(64, -1);
  std::iota(x.begin(), x.end(), 0);
  // In natural order every thread writes and then reads before the next runs, so thread t
  // reads slot 63 - t before thread 63 - t has written it for t < 32: stale values.
  bool wrong = false;
  for (uint64_t seed : {1ull, 2ull, 3ull}) {
    reel::emu::set_shuffle_seed(seed);
    std::fill(y.begin(), y.end(), -1);
    reel::launch_kernel(reverse_kernel<false>, dim3(1), dim3(64), 0, nullptr, x.data(), y.data());
    for (int t = 0; t < 64; ++t) wrong = wrong || y[t] != 63 - t;
  }
  reel::emu::set_shuffle_seed(0);
  CHECK(wrong);
}

TEST_CASE("warp shuffles, ballot and a butterfly reduction") {
  std::vector<int> idx(64), down(64), xr(64);
  std::vector<unsigned> ballot(64);
  std::vector<float> sum(64);
  reel::launch_kernel(warp_kernel, dim3(1), dim3(64), 0, nullptr, idx.data(), down.data(),
                      xr.data(), ballot.data(), sum.data());
  unsigned expected_ballot = 0;
  for (int l = 0; l < 32; l += 3) expected_ballot |= 1u << l;
  for (int t = 0; t < 64; ++t) {
    const int warp0 = t / 32 * 32, lane = t % 32;
    CHECK(idx[t] == (warp0 + 3) * 10);
    CHECK(down[t] == (lane == 31 ? t : t + 1));  // the last lane keeps its own value
    CHECK(xr[t] == warp0 + (lane ^ 5));
    CHECK(ballot[t] == expected_ballot);
    CHECK(sum[t] == static_cast<float>(32 * warp0 + 31 * 32 / 2));  // sum of the warp's t
  }
}

TEST_CASE("a warp operation skipped by part of the warp is reported, not hung") {
  std::vector<int> out(32);
  CHECK_THROWS_WITH_AS(
      reel::launch_kernel(divergent_shuffle_kernel, dim3(1), dim3(32), 0, nullptr, out.data()),
      doctest::Contains("deadlock"), reel::Error);
  // The emulator is usable again afterwards.
  std::vector<int> x(64, 1), y(64);
  reel::launch_kernel(reverse_kernel<true>, dim3(1), dim3(64), 0, nullptr, x.data(), y.data());
  CHECK(y[0] == 1);
}

TEST_CASE("divergent groups with their own masks are not a deadlock") {
  std::vector<int> out(32, -1);
  reel::launch_kernel(divergent_groups_kernel, dim3(1), dim3(32), 0, nullptr, out.data());
  for (int t = 0; t < 32; ++t) CHECK(out[t] == (t >= 16 ? (t ^ 1) : t));
}

TEST_CASE("a shuffle from a lane outside the mask is reported") {
  std::vector<int> out(32, -1);
  CHECK_THROWS_WITH_AS(
      reel::launch_kernel(shuffle_outside_mask_kernel, dim3(1), dim3(32), 0, nullptr, out.data()),
      doctest::Contains("does not take part"), reel::Error);
}

TEST_CASE("dynamic shared memory starts as NaN in every block") {
  std::vector<float> out(32, 0.0f);
  reel::launch_kernel(read_dynamic_smem_kernel, dim3(3), dim3(32), 32 * sizeof(float), nullptr,
                      out.data());
  for (float v : out) CHECK(std::isnan(v));
}

TEST_CASE("2-D grids and blocks set blockIdx, threadIdx, blockDim and gridDim") {
  std::vector<int> out(3 * 2 * 4 * 8, -1);
  reel::launch_kernel(coords_kernel, dim3(3, 2), dim3(4, 8), 0, nullptr, out.data());
  for (int b = 0; b < 6; ++b)
    for (int t = 0; t < 32; ++t) CHECK(out[b * 32 + t] == b * 1000 + t);
  CHECK_THROWS_AS(reel::launch_kernel(coords_kernel, dim3(1), dim3(2048), 0, nullptr, out.data()),
                  reel::Error);
}
