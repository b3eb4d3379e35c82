#include "reel/core/serialize.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <vector>

#include "reel/core/error.h"

namespace reel {

namespace {

using json = nlohmann::json;

// Maximum header size the format allows (100 MB, as the reference implementation).
constexpr uint64_t kMaxHeader = 100'000'000;

float half_to_float(uint16_t h) {
  const uint32_t sign = (h >> 15) & 1, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  float v;
  if (exp == 0)
    v = std::ldexp(static_cast<float>(mant), -24);
  else if (exp == 31)
    v = mant ? NAN : INFINITY;
  else
    v = std::ldexp(static_cast<float>(mant | 0x400), static_cast<int>(exp) - 25);
  return sign ? -v : v;
}

float bf16_to_float(uint16_t b) {
  const uint32_t bits = static_cast<uint32_t>(b) << 16;
  float v;
  std::memcpy(&v, &bits, 4);
  return v;
}

// Bytes per element of a dtype, 0 when unsupported.
size_t dtype_size(const std::string& d) {
  if (d == "F32" || d == "I32") return 4;
  if (d == "F64" || d == "I64") return 8;
  if (d == "F16" || d == "BF16" || d == "I16") return 2;
  if (d == "I8" || d == "U8" || d == "BOOL") return 1;
  return 0;
}

float element(const std::string& d, const char* p) {
  if (d == "F32") {
    float v;
    std::memcpy(&v, p, 4);
    return v;
  }
  if (d == "F64") {
    double v;
    std::memcpy(&v, p, 8);
    return static_cast<float>(v);
  }
  if (d == "I64") {
    int64_t v;
    std::memcpy(&v, p, 8);
    return static_cast<float>(v);
  }
  if (d == "I32") {
    int32_t v;
    std::memcpy(&v, p, 4);
    return static_cast<float>(v);
  }
  uint16_t h = 0;
  if (d == "F16" || d == "BF16" || d == "I16") std::memcpy(&h, p, 2);
  if (d == "F16") return half_to_float(h);
  if (d == "BF16") return bf16_to_float(h);
  if (d == "I16") return static_cast<float>(static_cast<int16_t>(h));
  if (d == "I8") return static_cast<float>(static_cast<int8_t>(*p));
  return static_cast<float>(static_cast<uint8_t>(*p));  // U8, BOOL
}

}  // namespace

void save_safetensors(const std::string& path, const TensorMap& tensors,
                      const std::map<std::string, std::string>& metadata) {
  json header = json::object();
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    REEL_CHECK(t.defined(),
               "save_safetensors " << path << ": tensor '" << name << "' is undefined");
    REEL_CHECK(name != "__metadata__",
               "save_safetensors " << path << ": '__metadata__' is reserved");
    const uint64_t bytes = static_cast<uint64_t>(t.numel()) * 4;
    header[name] = {
        {"dtype", "F32"}, {"shape", t.shape()}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');  // keep the data 8-byte aligned, as the format advises
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    REEL_CHECK(out.good(), "save_safetensors: cannot open " << tmp << " for writing");
    const uint64_t n = h.size();
    unsigned char len[8];
    for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>(n >> (8 * i));
    out.write(reinterpret_cast<const char*>(len), 8);
    out.write(h.data(), static_cast<std::streamsize>(h.size()));
    for (const auto& [name, t] : tensors) {
      const std::vector<float> v = t.to_vector();
      out.write(reinterpret_cast<const char*>(v.data()),
                static_cast<std::streamsize>(v.size() * sizeof(float)));
    }
    out.flush();
    if (!out.good()) {
      out.close();
      std::remove(tmp.c_str());
      throw Error("save_safetensors: writing " + tmp + " failed (disk full?)");
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw Error("save_safetensors: cannot rename " + tmp + " to " + path);
  }
}

TensorMap load_safetensors(const std::string& path, Device device,
                           std::map<std::string, std::string>* metadata) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  REEL_CHECK(in.good(), "load_safetensors: cannot open " << path);
  const uint64_t file_size = static_cast<uint64_t>(in.tellg());
  in.seekg(0);
  REEL_CHECK(file_size >= 8, "load_safetensors: " << path << " is too short (" << file_size
                                                  << " bytes) to be a safetensors file");
  unsigned char len[8];
  in.read(reinterpret_cast<char*>(len), 8);
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= static_cast<uint64_t>(len[i]) << (8 * i);
  REEL_CHECK(n <= kMaxHeader && n <= file_size - 8,
             "load_safetensors: " << path << " is not a safetensors file or is truncated (header "
                                  << "of " << n << " bytes in a file of " << file_size << ")");
  std::string h(n, '\0');
  in.read(h.data(), static_cast<std::streamsize>(n));
  json header;
  try {
    header = json::parse(h);
  } catch (const json::exception& e) {
    throw Error("load_safetensors: " + path + ": the header is not valid JSON (" + e.what() + ")");
  }
  REEL_CHECK(header.is_object(), "load_safetensors: " << path << ": the header is not an object");
  const uint64_t data_size = file_size - 8 - n;
  TensorMap out;
  std::vector<char> buf;
  for (const auto& [name, info] : header.items()) {
    if (name == "__metadata__") {
      if (metadata && info.is_object())
        for (const auto& [k, v] : info.items())
          (*metadata)[k] = v.is_string() ? v.get<std::string>() : v.dump();
      continue;
    }
    try {
      const std::string dtype = info.at("dtype").get<std::string>();
      const Shape shape = info.at("shape").get<Shape>();
      const auto offs = info.at("data_offsets").get<std::vector<uint64_t>>();
      const size_t es = dtype_size(dtype);
      REEL_CHECK(es > 0, "load_safetensors: " << path << ": tensor '" << name
                                              << "' has unsupported dtype " << dtype);
      for (int64_t d : shape)
        REEL_CHECK(d >= 0, "load_safetensors: " << path << ": tensor '" << name
                                                << "' has a negative extent");
      const uint64_t count = static_cast<uint64_t>(shape_numel(shape));
      REEL_CHECK(offs.size() == 2 && offs[0] <= offs[1] && offs[1] <= data_size &&
                     offs[1] - offs[0] == count * es,
                 "load_safetensors: " << path << ": tensor '" << name << "' " << shape_str(shape)
                                      << " " << dtype
                                      << " has data_offsets outside the file or of the wrong "
                                         "size (truncated file?)");
      buf.resize(offs[1] - offs[0]);
      in.seekg(static_cast<std::streamoff>(8 + n + offs[0]));
      in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
      REEL_CHECK(in.good(),
                 "load_safetensors: " << path << ": reading tensor '" << name << "' failed");
      std::vector<float> v(count);
      for (uint64_t i = 0; i < count; ++i) v[i] = element(dtype, buf.data() + i * es);
      out[name] = Tensor::from_vector(v, shape, device);
    } catch (const json::exception& e) {
      throw Error("load_safetensors: " + path + ": entry '" + name + "' is malformed (" + e.what() +
                  ")");
    }
  }
  return out;
}

}  // namespace reel
