#include <cstdio>
#include <fstream>
#include <string>

#include "../test_util.h"

using namespace reel;
using reel::test::check_values;

namespace {
std::string tmp_path(const std::string& name) {
  return std::string(REEL_TEST_TMP_DIR) + "/" + name;
}
void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}
std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}
}  // namespace

TEST_CASE("safetensors round trip keeps names, shapes, values and metadata") {
  const std::string path = tmp_path("roundtrip.safetensors");
  TensorMap m;
  m["lstm.weight_ih_l0"] = Tensor::arange(0, 12).reshape({4, 3});
  m["fc.bias"] = Tensor::from_vector({-1.5f, 2.25f}, {2});
  m["scalar"] = Tensor::scalar(3.0f);
  m["empty"] = Tensor::zeros({0, 5});
  save_safetensors(path, m, {{"format", "pt"}});
  std::map<std::string, std::string> meta;
  TensorMap back = load_safetensors(path, Device::cpu(), &meta);
  REQUIRE(back.size() == 4);
  CHECK(back["lstm.weight_ih_l0"].shape() == Shape{4, 3});
  check_values(back["lstm.weight_ih_l0"], m["lstm.weight_ih_l0"].to_vector(), 0.0f);
  check_values(back["fc.bias"], {-1.5f, 2.25f}, 0.0f);
  CHECK(back["scalar"].dim() == 0);
  CHECK(back["empty"].shape() == Shape{0, 5});
  CHECK(meta["format"] == "pt");
  // The header is 8-byte aligned JSON after an 8-byte little-endian length.
  const std::string bytes = read_bytes(path);
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i)
    n |= static_cast<uint64_t>(static_cast<unsigned char>(bytes[i])) << (8 * i);
  CHECK(n % 8 == 0);
  CHECK(bytes.substr(8, 1) == "{");
  CHECK(bytes.size() == 8 + n + 4 * (12 + 2 + 1));
}

TEST_CASE("PyTorch's own file loads, with dtype conversion") {
  // ops.safetensors was written by make_fixtures.py from PyTorch tensors.
  TensorMap f = load_safetensors(REEL_SOURCE_DIR "/tests/reference/ops.safetensors");
  CHECK(f.at("matmul.in0").shape() == Shape{5, 7});
  // A hand-made file with I64, F16 and BF16 entries (num_batches_tracked is I64 in PyTorch).
  std::string header = R"({"a":{"dtype":"I64","shape":[2],"data_offsets":[0,16]},)"
                       R"("h":{"dtype":"F16","shape":[2],"data_offsets":[16,20]},)"
                       R"("b":{"dtype":"BF16","shape":[1],"data_offsets":[20,22]}})";
  std::string bytes(8, '\0');
  bytes[0] = static_cast<char>(header.size());
  bytes += header;
  const int64_t a[2] = {7, -3};
  bytes.append(reinterpret_cast<const char*>(a), 16);
  const uint16_t h[2] = {0x3C00, 0xC100};  // 1.0, -2.5
  bytes.append(reinterpret_cast<const char*>(h), 4);
  const uint16_t b = 0x4049;  // bf16 of 3.140625
  bytes.append(reinterpret_cast<const char*>(&b), 2);
  write_bytes(tmp_path("dtypes.safetensors"), bytes);
  TensorMap d = load_safetensors(tmp_path("dtypes.safetensors"));
  check_values(d["a"], {7, -3}, 0.0f);
  check_values(d["h"], {1.0f, -2.5f}, 0.0f);
  check_values(d["b"], {3.140625f}, 0.0f);
}

TEST_CASE("bad files are reported by name and lose nothing") {
  const std::string missing = tmp_path("does_not_exist.safetensors");
  CHECK_THROWS_WITH_AS(load_safetensors(missing), doctest::Contains(missing.c_str()), reel::Error);
  const std::string short_file = tmp_path("short.safetensors");
  write_bytes(short_file, "abc");
  CHECK_THROWS_WITH_AS(load_safetensors(short_file), doctest::Contains("too short"), reel::Error);
  const std::string garbage = tmp_path("garbage.safetensors");
  write_bytes(garbage, std::string("\x10\0\0\0\0\0\0\0not json at all!", 24));
  CHECK_THROWS_WITH_AS(load_safetensors(garbage), doctest::Contains("not valid JSON"), reel::Error);
  // Truncated: a good file cut in its data.
  const std::string good = tmp_path("good.safetensors");
  save_safetensors(good, {{"w", Tensor::ones({10})}});
  const std::string bytes = read_bytes(good);
  const std::string cut = tmp_path("cut.safetensors");
  write_bytes(cut, bytes.substr(0, bytes.size() - 8));
  CHECK_THROWS_WITH_AS(load_safetensors(cut), doctest::Contains("'w'"), reel::Error);
  const std::string dtype = tmp_path("dtype.safetensors");
  std::string hdr = R"({"x":{"dtype":"C64","shape":[1],"data_offsets":[0,8]}})";
  write_bytes(dtype, std::string(1, static_cast<char>(hdr.size())) + std::string(7, '\0') + hdr +
                         std::string(8, '\0'));
  CHECK_THROWS_WITH_AS(load_safetensors(dtype), doctest::Contains("C64"), reel::Error);
  // A failed save leaves the existing file untouched.
  CHECK_THROWS_AS(
      save_safetensors(tmp_path("no_such_dir/x.safetensors"), {{"w", Tensor::ones({1})}}),
      reel::Error);
  CHECK(read_bytes(good) == bytes);
  CHECK_THROWS_WITH_AS(save_safetensors(good, {{"w", Tensor()}}), doctest::Contains("undefined"),
                       reel::Error);
  CHECK(read_bytes(good) == bytes);
}
