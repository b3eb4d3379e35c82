#include <cstdlib>
#include <cstring>
#include <string>

#include "../test_util.h"

using namespace reel;
using reel::test::check_values;

TEST_CASE("creation") {
  Tensor z = Tensor::zeros({2, 3});
  CHECK(z.shape() == Shape{2, 3});
  CHECK(z.numel() == 6);
  CHECK(z.dim() == 2);
  CHECK(z.device() == Device::cpu());
  check_values(z, {0, 0, 0, 0, 0, 0});
  check_values(Tensor::ones({3}), {1, 1, 1});
  check_values(Tensor::full({2}, 2.5f), {2.5f, 2.5f});
  check_values(Tensor::arange(0, 5), {0, 1, 2, 3, 4});
  check_values(Tensor::arange(1, 2, 0.25f), {1, 1.25f, 1.5f, 1.75f});
  check_values(Tensor::arange(3, 0, -1), {3, 2, 1});
  CHECK(Tensor::arange(2, 2).numel() == 0);
  Tensor v = Tensor::from_vector({1, 2, 3, 4, 5, 6}, {2, 3});
  CHECK(v.at({1, 0}) == 4.0f);
  CHECK(v.at({0, 2}) == 3.0f);
  Tensor s = Tensor::scalar(7.0f);
  CHECK(s.dim() == 0);
  CHECK(s.item() == 7.0f);
  Tensor e = Tensor::empty({0, 4});
  CHECK(e.numel() == 0);
  CHECK(e.size(-1) == 4);
}

TEST_CASE("host copies and to(device)") {
  Tensor t = Tensor::zeros({4});
  const float src[4] = {1, 2, 3, 4};
  t.copy_from_host(src, 4);
  float dst[4] = {};
  t.copy_to_host(dst, 4);
  CHECK(std::memcmp(src, dst, sizeof src) == 0);
  Tensor same = t.to(Device::cpu());
  CHECK(same.same_storage(t));
  Tensor c = t.clone();
  CHECK_FALSE(c.same_storage(t));
  check_values(c, {1, 2, 3, 4});
}

TEST_CASE("reshape shares storage, transpose copies") {
  Tensor a = Tensor::arange(0, 6);
  Tensor r = a.reshape({2, 3});
  CHECK(r.same_storage(a));
  CHECK(r.shape() == Shape{2, 3});
  CHECK(a.reshape({-1, 2}).shape() == Shape{3, 2});
  Tensor t = r.transpose(0, 1);
  CHECK_FALSE(t.same_storage(a));
  check_values(t, {0, 3, 1, 4, 2, 5});
}

TEST_CASE("seeded random tensors are reproducible and have the right moments") {
  Generator g1(42), g2(42), g3(43);
  Tensor a = Tensor::normal({10000}, 0.0f, 1.0f, g1);
  Tensor b = Tensor::normal({10000}, 0.0f, 1.0f, g2);
  Tensor c = Tensor::normal({10000}, 0.0f, 1.0f, g3);
  CHECK(a.to_vector() == b.to_vector());
  CHECK(a.to_vector() != c.to_vector());
  const float m = a.mean().item();
  const float var = ((a - m) * (a - m)).mean().item();
  CHECK(std::abs(m) < 0.05f);
  CHECK(std::abs(var - 1.0f) < 0.05f);
  Generator g4(7);
  Tensor u = Tensor::uniform({10000}, -2.0f, 3.0f, g4);
  for (float x : u.to_vector()) REQUIRE((x >= -2.0f && x < 3.0f));
  CHECK(std::abs(u.mean().item() - 0.5f) < 0.05f);
}

TEST_CASE("printing") {
  Tensor t = Tensor::from_vector({1, 2, 3, 4}, {2, 2});
  const std::string s = t.str();
  CHECK(s.find("[[1.0000, 2.0000],") != std::string::npos);
  CHECK(s.find("shape=[2, 2]") != std::string::npos);
  Tensor big = Tensor::arange(0, 100);
  CHECK(big.str().find("...") != std::string::npos);
  CHECK(Tensor::scalar(1.5f).str().find("tensor(1.5000") == 0);
  Tensor w = Tensor::ones({2});
  w.requires_grad_();
  CHECK((w * 2.0f).str().find("grad_fn=mul") != std::string::npos);
}

TEST_CASE("the CPU pool reuses freed blocks") {
  // Warm up: one step's worth of tensors.
  auto step = [] {
    Tensor a = Tensor::ones({256, 256});
    Tensor b = Tensor::ones({256, 256});
    Tensor c = matmul(a, b);
    return c.sum().item();
  };
  step();
  const AllocatorStats before = cpu_allocator_stats();
  for (int i = 0; i < 5; ++i) CHECK(step() == doctest::Approx(256.0 * 256 * 256));
  const AllocatorStats after = cpu_allocator_stats();
  // Later steps are served from the cache: no new system allocation.
  CHECK(after.system_allocations == before.system_allocations);
  CHECK(after.cache_hits > before.cache_hits);
  CHECK(allocation_size_class(1) == 64);
  CHECK(allocation_size_class(513) == 640);
  CHECK(allocation_size_class(4096) == 4096);
  CHECK(allocation_size_class(4097) == 5120);
}

TEST_CASE("devices") {
  CHECK(Device::parse("cpu") == Device::cpu());
  CHECK(Device::parse("cuda:1") == Device::cuda(1));
  CHECK(Device::parse("cuda").str() == "cuda:0");
  if (!cuda::available()) {
    // No GPU here: asking for one is one clear error, never a crash.
    CHECK_THROWS_WITH_AS(Tensor::zeros({2}, Device::cuda(0)), doctest::Contains("cuda:0"),
                         reel::Error);
    CHECK_THROWS_AS(Tensor::ones({2}).to(Device::cuda(0)), reel::Error);
  } else {
    Tensor a = Tensor::arange(0, 5).to(Device::cuda(0));
    CHECK(a.device() == Device::cuda(0));
    check_values(a.to(Device::cpu()), {0, 1, 2, 3, 4});
  }
}

TEST_CASE("OpenMP waits passively by default; REEL_NUM_THREADS picks the thread count") {
  // CTest runs this binary with OMP_WAIT_POLICY unset, so the value comes from reel's preinit.
  const char* policy = std::getenv("OMP_WAIT_POLICY");
  REQUIRE(policy != nullptr);
  CHECK(std::string(policy) == "passive");
  CHECK(cpu::num_threads() >= 1);
  cpu::set_num_threads(1);
  CHECK(cpu::num_threads() == 1);
  cpu::set_num_threads(0);
  setenv("REEL_NUM_THREADS", "3", 1);
  cpu::set_num_threads(0);  // re-read on the next call
  CHECK(cpu::num_threads() == 3);
  unsetenv("REEL_NUM_THREADS");
  cpu::set_num_threads(0);
}
