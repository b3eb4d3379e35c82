#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "../test_util.h"
#include "reel/kernels/common.h"

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
bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}
// A safetensors file: the header's length (8 bytes, little-endian), the header, the data.
std::string st_file(const std::string& header, const std::string& data = "") {
  std::string out(8, '\0');
  const uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>(n >> (8 * i));
  return out + header + data;
}
// One F32 entry "x", with its fields as JSON text.
std::string entry_x(const std::string& shape, const std::string& offsets,
                    const std::string& dtype = "\"F32\"") {
  return R"({"x":{"dtype":)" + dtype + R"(,"shape":)" + shape + R"(,"data_offsets":)" + offsets +
         "}}";
}
// The message of the reel::Error that loading `bytes` throws, from a file named `name` and from
// memory (the same message but for the name); "(loaded)" when it loads.
std::string refusal(const std::string& name, const std::string& bytes) {
  const std::string path = tmp_path(name + ".safetensors");
  write_bytes(path, bytes);
  std::string from_file = "(loaded)", from_memory = "(loaded)";
  try {
    load_safetensors(path);
  } catch (const reel::Error& e) {
    from_file = e.what();
  }
  try {
    load_safetensors_from_memory(bytes.data(), bytes.size(), "memory:" + name);
  } catch (const reel::Error& e) {
    from_memory = e.what();
  }
  CHECK(from_memory == (from_file == "(loaded)" ? from_file
                                                : "load_safetensors: memory:" + name +
                                                      from_file.substr(18 + path.size())));
  return from_file;
}
// Loading `bytes` throws reel::Error naming the file and holding every fragment.
void check_refused(const std::string& name, const std::string& bytes,
                   const std::vector<std::string>& fragments) {
  const std::string message = refusal(name, bytes);
  INFO("message: " << message);
  CHECK(contains(message, tmp_path(name + ".safetensors") + ": "));
  for (const std::string& fragment : fragments) {
    INFO("expected: " << fragment);
    CHECK(contains(message, fragment));
  }
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
  CHECK_THROWS_WITH_AS(load_safetensors(garbage), doctest::Contains("does not begin with '{'"),
                       reel::Error);
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

TEST_CASE("safetensors: a header length beyond the file or the format is refused unallocated") {
  check_refused("short", "abc", {"too short (3 bytes)"});
  // 99,999,999 bytes is within the format's limit but not within this 24-byte file.
  std::string past = st_file("{}      ");
  past[0] = '\xff', past[1] = '\xe0', past[2] = '\xf5', past[3] = '\x05';
  check_refused("past", past, {"header length 99999999 runs past the end of the 16 bytes"});
  std::string absurd = st_file("{}      ");
  absurd[0] = '\0', absurd[7] = '\x80';  // 2^63
  check_refused("absurd", absurd,
                {"header length 9223372036854775808 is more than the 100000000 bytes"});
  check_refused("empty_header", st_file(""), {"does not begin with '{'"});
  check_refused("array_header", st_file("[1, 2]"), {"does not begin with '{'"});
  check_refused("space_first", st_file(" {}"), {"does not begin with '{'"});
}

TEST_CASE("safetensors: JSON that nlohmann refuses becomes a reel::Error naming the file") {
  check_refused("unterminated", st_file(R"({"x":)"), {"not valid JSON", "unexpected end"});
  check_refused("trailing", st_file("{} {}"), {"not valid JSON", "expected end of input"});
  check_refused("bad_utf8", st_file("{\"\xff\":1}"), {"not valid JSON", "ill-formed UTF-8"});
  check_refused("comment", st_file("{/* c */}"), {"not valid JSON"});
  check_refused("number_overflow", st_file(entry_x("[1e999]", "[0,4]"), std::string(4, '\0')),
                {"not valid JSON", "number overflow"});
  // Nesting deeper than the format is refused at its first level, not parsed into a tree.
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  check_refused("deep", st_file(entry_x(deep, "[0,4]")),
                {"tensor 'x' has the extent an array in its shape"});
  check_refused("deep_metadata", st_file(R"({"__metadata__":{"a":)" + deep + "}}"),
                {"'__metadata__' maps 'a' to an array, not to a string"});
}

TEST_CASE("safetensors: duplicate, unknown, missing and mistyped keys name the tensor") {
  const std::string f32 = R"("dtype":"F32","shape":[1],"data_offsets":)";
  check_refused(
      "dup_tensor",
      st_file(R"({"x":{)" + f32 + R"([0,4]},"x":{)" + f32 + "[4,8]}}", std::string(8, '\0')),
      {"tensor 'x' appears twice in the header"});
  check_refused("dup_field",
                st_file(R"({"x":{"shape":[2],)" + f32 + "[0,4]}}", std::string(4, '\0')),
                {"tensor 'x' has the field 'shape' twice"});
  check_refused("unknown_field",
                st_file(R"({"x":{)" + f32 + R"([0,4],"offsets":[0,4]}})", std::string(4, '\0')),
                {"tensor 'x' has an unknown field 'offsets'"});
  check_refused("no_dtype", st_file(R"({"x":{"shape":[1],"data_offsets":[0,4]}})"),
                {"tensor 'x' has no dtype"});
  check_refused("no_shape", st_file(R"({"x":{"dtype":"F32","data_offsets":[0,4]}})"),
                {"tensor 'x' has no shape"});
  check_refused("no_offsets", st_file(R"({"x":{"dtype":"F32","shape":[1]}})"),
                {"tensor 'x' has no data_offsets"});
  check_refused("entry_string", st_file(R"({"x":"F32"})"),
                {"tensor 'x' is the string 'F32', not an object"});
  check_refused("entry_null", st_file(R"({"x":null})"), {"tensor 'x' is null, not an object"});
}

TEST_CASE("safetensors: dtype must be a supported string") {
  const std::string z4(4, '\0');
  check_refused("dtype_number", st_file(entry_x("[1]", "[0,4]", "4"), z4),
                {"tensor 'x' has dtype 4, not a string"});
  check_refused("dtype_array", st_file(entry_x("[1]", "[0,4]", R"(["F32"])"), z4),
                {"tensor 'x' has dtype an array, not a string"});
  check_refused("dtype_u16", st_file(entry_x("[2]", "[0,4]", R"("U16")"), z4),
                {"tensor 'x' has unsupported dtype 'U16'"});
  check_refused("dtype_lower", st_file(entry_x("[1]", "[0,4]", R"("f32")"), z4),
                {"tensor 'x' has unsupported dtype 'f32'"});
}

TEST_CASE("safetensors: extents are integers >= 0, rank <= kMaxDims, numel addressable") {
  const std::string z4(4, '\0');
  const auto refused = [&](const std::string& name, const std::string& shape,
                           const std::string& what) {
    check_refused(name, st_file(entry_x(shape, "[0,4]"), z4), {"tensor 'x' " + what});
  };
  refused("extent_fraction", "[1.5]", "has the extent 1.5 in its shape");
  refused("extent_float_one", "[1.0]", "has the extent 1.0 in its shape");
  refused("extent_exponent", "[1e0]", "has the extent 1e0 in its shape");
  refused("extent_negative", "[2,-1]", "has the extent -1 in its shape");
  refused("extent_string", R"(["1"])", "has the extent the string '1' in its shape");
  refused("extent_bool", "[true]", "has the extent true in its shape");
  refused("extent_null", "[null]", "has the extent null in its shape");
  refused("extent_object", R"([{"a":1}])", "has the extent an object in its shape");
  refused("shape_string", R"("[1]")", "has shape the string '[1]', not an array");
  refused("shape_object", "{}", "has shape an object, not an array");
  refused("extent_i64_overflow", "[9223372036854775808]",
          "has the extent 9223372036854775808 in its shape, too large to address");
  refused("extent_u64_overflow", "[18446744073709551616]",
          "has the extent 18446744073709551616 in its shape");  // a float to nlohmann
  // Once std::length_error from std::vector: 2^32 * 2^32 overflows 64 bits.
  refused("numel_overflow", "[4294967296,4294967296]",
          "has shape [4294967296, 4294967296], too many elements to address");
  refused("numel_too_large", "[1152921504606846977]",
          "has shape [1152921504606846977], too many elements to address");
  // A zero extent does not excuse the others from multiplying without overflow.
  check_refused("numel_overflow_zero", st_file(entry_x("[0,4294967296,4294967296]", "[0,0]")),
                {"tensor 'x' has shape [0, 4294967296, 4294967296], too many elements"});
  std::string ones16 = "[1", ones17;
  for (int i = 1; i < kMaxDims; ++i) ones16 += ",1";
  ones17 = ones16 + ",1]";
  ones16 += "]";
  refused("rank17", ones17, "has more than 16 dimensions (reel::kMaxDims)");
  const std::string rank16 = st_file(entry_x(ones16, "[0,4]"), z4);
  CHECK(load_safetensors_from_memory(rank16.data(), rank16.size(), "rank16").at("x").dim() ==
        kMaxDims);
  // Zero-size tensors with large (addressable) extents load, holding no data.
  const std::string empty = st_file(entry_x("[0,1000000000]", "[0,0]"));
  CHECK(load_safetensors_from_memory(empty.data(), empty.size(), "empty").at("x").shape() ==
        Shape{0, 1000000000});
}

TEST_CASE("safetensors: data_offsets are two integers 0 <= begin <= end <= data, sized exactly") {
  const std::string z4(4, '\0');
  const auto refused = [&](const std::string& name, const std::string& shape,
                           const std::string& offsets, const std::string& data,
                           const std::string& what) {
    check_refused(name, st_file(entry_x(shape, offsets), data), {"tensor 'x' " + what});
  };
  refused("offs_string", "[1]", R"("0,4")", z4, "has data_offsets the string '0,4', not an array");
  refused("offs_one", "[1]", "[4]", z4, "has 1 data_offsets, not two");
  refused("offs_none", "[1]", "[]", z4, "has 0 data_offsets, not two");
  refused("offs_three", "[1]", "[0,4,4]", z4, "has more than two data_offsets");
  refused("offs_negative", "[1]", "[-4,0]", z4, "has the offset -4 in data_offsets");
  refused("offs_fraction", "[1]", "[0,4.0]", z4, "has the offset 4.0 in data_offsets");
  refused("offs_bool", "[1]", "[false,4]", z4, "has the offset false in data_offsets");
  refused("offs_reversed", "[1]", "[4,0]", z4,
          "has data_offsets [4, 0] that end before they begin");
  refused("offs_beyond", "[2]", "[0,8]", z4,
          "has data_offsets [0, 8] beyond the 4 bytes of data (truncated file?)");
  // Beyond 2^64 nlohmann reads a double, which get<uint64_t>() used to cast (undefined).
  refused("offs_beyond_u64", "[1]", "[0,18446744073709551616]", z4,
          "has the offset 18446744073709551616 in data_offsets");
  refused("offs_huge", "[1]", "[18446744073709551612,18446744073709551615]", z4,
          "has data_offsets [18446744073709551612, 18446744073709551615] beyond the 4 bytes");
  refused("offs_size", "[2]", "[0,4]", z4,
          "[2] F32 needs 8 bytes but its data_offsets [0, 4] hold 4");
  check_refused("offs_size_f64", st_file(entry_x("[1]", "[0,4]", R"("F64")"), z4),
                {"tensor 'x' [1] F64 needs 8 bytes but its data_offsets [0, 4] hold 4"});
}

TEST_CASE("safetensors: the data is covered exactly, without overlap, hole or trailing bytes") {
  const auto two = [](const std::string& a_offsets, const std::string& b_offsets) {
    return R"({"a":{"dtype":"F32","shape":[1],"data_offsets":)" + a_offsets +
           R"(},"b":{"dtype":"F32","shape":[1],"data_offsets":)" + b_offsets + "}}";
  };
  const std::string z8(8, '\0');
  check_refused("overlap", st_file(two("[0,4]", "[0,4]"), z8),
                {"overlap those of tensor 'a' [0, 4]", "tensor 'b' has data_offsets [0, 4]"});
  check_refused("hole", st_file(two("[0,4]", "[8,12]"), std::string(12, '\0')),
                {"bytes [4, 8) of the data belong to no tensor", "hole before tensor 'b'"});
  check_refused("hole_first", st_file(two("[4,8]", "[8,12]"), std::string(12, '\0')),
                {"bytes [0, 4) of the data belong to no tensor", "hole before tensor 'a'"});
  check_refused("trailing", st_file(two("[0,4]", "[4,8]"), std::string(9, '\0')),
                {"bytes [8, 9) of the data belong to no tensor", "nothing after the last"});
  check_refused("no_tensor_data", st_file("{}      ", "junk"),
                {"bytes [0, 4) of the data belong to no tensor"});
  // A zero-size tensor inside another's data overlaps it too.
  check_refused("empty_inside",
                st_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                        R"("e":{"dtype":"F32","shape":[0],"data_offsets":[4,4]}})",
                        z8),
                {"tensor 'e' has data_offsets [4, 4] that overlap those of tensor 'a'"});
  // Out of order in the header, zero-size at either end, and a 0-d tensor: all load.
  const std::string ok_header = R"({"b":{"dtype":"F32","shape":[],"data_offsets":[4,8]},)"
                                R"("z":{"dtype":"I64","shape":[3,0],"data_offsets":[8,8]},)"
                                R"("e":{"dtype":"F16","shape":[0],"data_offsets":[0,0]},)"
                                R"("a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})";
  const float ab[2] = {1.5f, -2.0f};
  const std::string ok = st_file(ok_header, std::string(reinterpret_cast<const char*>(ab), 8));
  const TensorMap m = load_safetensors_from_memory(ok.data(), ok.size(), "ok");
  REQUIRE(m.size() == 4);
  check_values(m.at("a"), {1.5f}, 0.0f);
  CHECK(m.at("b").dim() == 0);
  CHECK(m.at("b").item() == -2.0f);
  CHECK(m.at("z").shape() == Shape{3, 0});
  CHECK(m.at("e").shape() == Shape{0});
}

TEST_CASE("safetensors: __metadata__ is one object of strings, and no tensor") {
  check_refused("meta_string", st_file(R"({"__metadata__":"pt"})"),
                {"'__metadata__' is the string 'pt', not an object"});
  check_refused("meta_array", st_file(R"({"__metadata__":["pt"]})"),
                {"'__metadata__' is an array, not an object"});
  check_refused("meta_number", st_file(R"({"__metadata__":{"epoch":3}})"),
                {"'__metadata__' maps 'epoch' to 3, not to a string"});
  check_refused("meta_object", st_file(R"({"__metadata__":{"a":{}}})"),
                {"'__metadata__' maps 'a' to an object, not to a string"});
  check_refused("meta_dup_key", st_file(R"({"__metadata__":{"a":"1","a":"2"}})"),
                {"'__metadata__' has the key 'a' twice"});
  check_refused("meta_twice", st_file(R"({"__metadata__":{},"__metadata__":{}})"),
                {"'__metadata__' appears twice"});
  // A tensor named __metadata__ is read as metadata, and refused as such.
  check_refused("meta_tensor",
                st_file(R"({"__metadata__":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
                        std::string(4, '\0')),
                {"'__metadata__' maps 'shape' to an array, not to a string"});
  // Metadata reaches the caller only from a file that loads.
  std::map<std::string, std::string> meta{{"kept", "yes"}};
  const std::string bad = st_file(R"({"__metadata__":{"format":"pt"},"x":{"dtype":"C64"}})");
  CHECK_THROWS_AS(load_safetensors_from_memory(bad.data(), bad.size(), "bad", Device::cpu(), &meta),
                  reel::Error);
  CHECK(meta == std::map<std::string, std::string>{{"kept", "yes"}});
  const std::string good = st_file(R"({"__metadata__":{"format":"pt","":"empty key"}})");
  CHECK(
      load_safetensors_from_memory(good.data(), good.size(), "good", Device::cpu(), &meta).empty());
  CHECK(meta ==
        std::map<std::string, std::string>{{"kept", "yes"}, {"format", "pt"}, {"", "empty key"}});
}

TEST_CASE("safetensors: names from the file are escaped and cut in messages") {
  const std::string tail = R"(":{"dtype":"C64","shape":[1],"data_offsets":[0,8]}})";
  // ESC [2J (clear screen), a C1 CSI (U+009B), a right-to-left override (U+202E).
  const std::string msg =
      refusal("escape", st_file(R"({"a\u001b[2J\u009b\u202eb)" + tail, std::string(8, '\0')));
  CHECK(contains(msg, R"(tensor 'a\x1b[2J\xc2\x9b\xe2\x80\xaeb' has unsupported dtype 'C64')"));
  CHECK_FALSE(contains(msg, "\x1b"));
  CHECK_FALSE(contains(msg, "\xc2\x9b"));
  // A quote in a name cannot close the quotes around it; other UTF-8 passes.
  CHECK(contains(refusal("quote", st_file(R"({"it's \u00e9)" + tail, std::string(8, '\0'))),
                 "tensor 'it\\x27s \xc3\xa9'"));
  const std::string long_name(100000, 'n');
  const std::string long_msg =
      refusal("long_name", st_file(R"({")" + long_name + tail, std::string(8, '\0')));
  CHECK(contains(long_msg, "tensor '" + std::string(200, 'n') + "...' has unsupported dtype"));
  CHECK(long_msg.size() < 1000);
  // nlohmann's own message quotes the input: escaped too.
  const std::string json_msg = refusal("escape_json", st_file("{\"\x1b[2J\x01"));
  CHECK(contains(json_msg, "not valid JSON"));
  CHECK_FALSE(contains(json_msg, "\x1b"));
}

TEST_CASE("safetensors: from memory, from a directory, and a null pointer") {
  const std::string good = read_bytes(REEL_SOURCE_DIR "/tests/reference/ops.safetensors");
  const TensorMap from_memory =
      load_safetensors_from_memory(good.data(), good.size(), "ops in memory");
  const TensorMap from_file = load_safetensors(REEL_SOURCE_DIR "/tests/reference/ops.safetensors");
  REQUIRE(from_memory.size() == from_file.size());
  for (const auto& [name, t] : from_file) {
    INFO(name);
    REQUIRE(from_memory.count(name) == 1);
    CHECK(from_memory.at(name).shape() == t.shape());
    check_values(from_memory.at(name), t.to_vector(), 0.0f);
  }
  CHECK_THROWS_WITH_AS(load_safetensors_from_memory(nullptr, 16, "nowhere"),
                       doctest::Contains("load_safetensors: nowhere: no data"), reel::Error);
  CHECK_THROWS_WITH_AS(load_safetensors_from_memory(nullptr, 0, "nothing"),
                       doctest::Contains("load_safetensors: nothing: too short (0 bytes)"),
                       reel::Error);
  const std::string dir = tmp_path("a_directory.safetensors");
  std::filesystem::create_directories(dir);
  CHECK_THROWS_WITH_AS(load_safetensors(dir), doctest::Contains(dir.c_str()), reel::Error);
}

TEST_CASE("safetensors: large tensors are read in chunks, every dtype converted") {
  // 1.5 M F16 values span three 1 MiB chunks; 300 K F64 values span three more.
  const int64_t n16 = 1500000, n64 = 300000;
  std::string data(static_cast<size_t>(n16 * 2 + n64 * 8), '\0');
  for (int64_t i = 0; i < n16; ++i) {
    const uint16_t h = i % 2 ? 0x3C00 : 0xC000;  // 1.0, -2.0
    std::memcpy(&data[static_cast<size_t>(i * 2)], &h, 2);
  }
  for (int64_t i = 0; i < n64; ++i) {
    const double d = i == n64 - 1 ? 1e300 : static_cast<double>(i);  // beyond float: +inf
    std::memcpy(&data[static_cast<size_t>(n16 * 2 + i * 8)], &d, 8);
  }
  const std::string header =
      R"({"h":{"dtype":"F16","shape":[1500000],"data_offsets":[0,3000000]},)"
      R"("d":{"dtype":"F64","shape":[300,1000],"data_offsets":[3000000,5400000]}})";
  const std::string path = tmp_path("large.safetensors");
  write_bytes(path, st_file(header, data));
  const TensorMap m = load_safetensors(path);
  const std::vector<float> h = m.at("h").to_vector(), d = m.at("d").to_vector();
  REQUIRE(h.size() == static_cast<size_t>(n16));
  REQUIRE(d.size() == static_cast<size_t>(n64));
  for (int64_t i : {int64_t{0}, int64_t{1}, int64_t{524287}, int64_t{524288}, n16 - 1})
    CHECK(h[static_cast<size_t>(i)] == (i % 2 ? 1.0f : -2.0f));
  for (int64_t i : {int64_t{0}, int64_t{131071}, int64_t{131072}, n64 - 2})
    CHECK(d[static_cast<size_t>(i)] == static_cast<float>(i));
  CHECK(std::isinf(d.back()));
  CHECK(d.back() > 0);
}
