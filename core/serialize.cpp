#include "reel/core/serialize.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <tuple>
#include <utility>
#include <vector>

#include "reel/core/error.h"
#include "reel/kernels/common.h"

namespace reel {

namespace {

using json = nlohmann::json;

// Maximum header size the format allows (100 MB, as the reference implementation).
constexpr uint64_t kMaxHeader = 100'000'000;
// Tensor data is read and converted through a staging buffer of at most this many bytes.
constexpr uint64_t kChunkBytes = 1 << 20;

enum class DType { F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL };

struct DTypeInfo {
  const char* name;
  DType type;
  uint64_t size;  // bytes per element
};

constexpr DTypeInfo kDTypes[] = {{"F64", DType::F64, 8}, {"F32", DType::F32, 4},
                                 {"F16", DType::F16, 2}, {"BF16", DType::BF16, 2},
                                 {"I64", DType::I64, 8}, {"I32", DType::I32, 4},
                                 {"I16", DType::I16, 2}, {"I8", DType::I8, 1},
                                 {"U8", DType::U8, 1},   {"BOOL", DType::BOOL, 1}};

const DTypeInfo* find_dtype(const std::string& name) {
  for (const DTypeInfo& d : kDTypes)
    if (name == d.name) return &d;
  return nullptr;
}

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

// A double beyond float's range becomes an infinity, as IEEE 754 rounds it (ISO C++ leaves
// such a cast undefined). The threshold is half an ulp past FLT_MAX.
float narrow(double v) {
  constexpr double kHalfPastMax = 0x1.ffffffp127;
  if (v >= kHalfPastMax) return INFINITY;
  if (v <= -kHalfPastMax) return -INFINITY;
  return static_cast<float>(v);
}

template <typename T>
T load(const char* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

// src: n elements of dtype d (little-endian, any alignment); dst: n floats.
void convert(DType d, const char* src, int64_t n, float* dst) {
  switch (d) {
    case DType::F32:
      std::memcpy(dst, src, static_cast<size_t>(n) * 4);
      return;
    case DType::F64:
      for (int64_t i = 0; i < n; ++i) dst[i] = narrow(load<double>(src + 8 * i));
      return;
    case DType::F16:
      for (int64_t i = 0; i < n; ++i) dst[i] = half_to_float(load<uint16_t>(src + 2 * i));
      return;
    case DType::BF16:
      for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_float(load<uint16_t>(src + 2 * i));
      return;
    case DType::I64:
      for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<float>(load<int64_t>(src + 8 * i));
      return;
    case DType::I32:
      for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<float>(load<int32_t>(src + 4 * i));
      return;
    case DType::I16:
      for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<float>(load<int16_t>(src + 2 * i));
      return;
    case DType::I8:
      for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<float>(load<int8_t>(src + i));
      return;
    case DType::U8:
    case DType::BOOL:
      for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<float>(load<uint8_t>(src + i));
      return;
  }
}

// Text from the file, fit for a message: a hostile name must not drive the terminal. Control
// characters (C0, DEL, C1), line separators, bidirectional overrides and bytes that are not
// UTF-8 are shown as \xNN (and quotes and backslashes too, when `quotes`); the text is cut
// after about max_shown bytes.
std::string printable(const std::string& s, size_t max_shown, bool quotes) {
  std::string out;
  size_t i = 0;
  while (i < s.size() && i < max_shown) {
    const auto b = [&s](size_t k) { return static_cast<unsigned char>(s[k]); };
    const unsigned char c = b(i);
    size_t len = c < 0x80   ? 1
                 : c < 0xC2 ? 0  // a continuation byte, or overlong
                 : c < 0xE0 ? 2
                 : c < 0xF0 ? 3
                 : c < 0xF5 ? 4
                            : 0;
    bool ok = len > 0 && i + len <= s.size();
    for (size_t k = 1; ok && k < len; ++k) ok = (b(i + k) & 0xC0) == 0x80;
    if (ok && len == 1) ok = c >= 0x20 && c != 0x7f && !(quotes && (c == '\'' || c == '\\'));
    if (ok && len == 2) ok = !(c == 0xC2 && b(i + 1) < 0xA0);  // C1 controls
    if (ok && len == 3 && c == 0xE2)                           // U+2028..U+202E, U+2066..U+2069
      ok = !((b(i + 1) == 0x80 && b(i + 2) >= 0xA8 && b(i + 2) <= 0xAE) ||
             (b(i + 1) == 0x81 && b(i + 2) >= 0xA6 && b(i + 2) <= 0xA9));
    if (ok) {
      out.append(s, i, len);
      i += len;
    } else {
      char esc[8];
      std::snprintf(esc, sizeof esc, "\\x%02x", c);
      out += esc;
      ++i;
    }
  }
  if (i < s.size()) out += "...";
  return out;
}

// A name or string from the file, quoted for a message.
std::string quote(const std::string& s) { return "'" + printable(s, 200, true) + "'"; }

// One tensor's entry in the header, filled field by field as the parser meets it.
struct Entry {
  std::string name;
  const DTypeInfo* dtype = nullptr;
  bool has_shape = false, has_offsets = false;
  Shape shape;
  std::vector<uint64_t> offsets;  // [begin, end) in the data
  int64_t numel = 0;
};

// Checks the JSON header as a stream of SAX events, every field as it arrives. No document
// tree is built: nothing nests deeper than the format does (root object, entry, array), no
// array holds more than kMaxDims values, and memory stays in proportion to the header. Every
// refusal throws reel::Error naming the file and, inside an entry, the tensor.
class HeaderParser final : public nlohmann::json_sax<json> {
 public:
  HeaderParser(std::string prefix, uint64_t data_size)
      : prefix_(std::move(prefix)), data_size_(data_size) {}

  std::vector<Entry> entries;  // in the header's order
  std::map<std::string, std::string> metadata;

  bool null() override { return value(Kind::Other, 0, "null"); }
  bool boolean(bool v) override { return value(Kind::Other, 0, v ? "true" : "false"); }
  bool number_integer(number_integer_t v) override {  // only "-..." comes here, "-0" included
    if (v >= 0) return value(Kind::Unsigned, static_cast<uint64_t>(v), std::to_string(v));
    return value(Kind::Negative, 0, std::to_string(v));
  }
  bool number_unsigned(number_unsigned_t v) override {
    return value(Kind::Unsigned, v, std::to_string(v));
  }
  bool number_float(number_float_t, const string_t& text) override {
    return value(Kind::Float, 0, text);
  }
  bool string(string_t& v) override { return value(Kind::String, 0, v); }
  bool binary(binary_t&) override { return value(Kind::Other, 0, "binary data"); }
  bool start_object(std::size_t) override { return value(Kind::Object, 0, ""); }
  bool start_array(std::size_t) override { return value(Kind::Array, 0, ""); }

  bool key(string_t& k) override {
    switch (at_) {
      case At::Root:
        if (!names_.insert(k).second)
          fail(k == "__metadata__" ? "'__metadata__' appears twice in the header"
                                   : "tensor " + quote(k) +
                                         " appears twice in the header (duplicate keys are "
                                         "not allowed)");
        in_metadata_ = k == "__metadata__";
        if (!in_metadata_) {
          entries.emplace_back();
          entries.back().name = k;
          fields_.clear();
        }
        return true;
      case At::Metadata:
        if (metadata.count(k)) fail("'__metadata__' has the key " + quote(k) + " twice");
        meta_key_ = k;
        return true;
      case At::Entry:
        if (k != "dtype" && k != "shape" && k != "data_offsets")
          fail_tensor("has an unknown field " + quote(k) +
                      " (an entry holds dtype, shape and data_offsets)");
        if (!fields_.insert(k).second) fail_tensor("has the field '" + k + "' twice");
        field_ = k;
        return true;
      default:  // keys come only inside the objects accepted above
        fail("the header is malformed");
    }
  }

  bool end_object() override {
    switch (at_) {
      case At::Root:
        at_ = At::End;
        return true;
      case At::Metadata:
        at_ = At::Root;
        return true;
      case At::Entry:
        finish_entry();
        at_ = At::Root;
        return true;
      default:
        fail("the header is malformed");
    }
  }

  bool end_array() override {
    switch (at_) {
      case At::Shape:
        at_ = At::Entry;
        return true;
      case At::Offsets:
        if (entries.back().offsets.size() != 2)
          fail_tensor("has " + std::to_string(entries.back().offsets.size()) +
                      " data_offsets, not two [begin, end]");
        at_ = At::Entry;
        return true;
      default:
        fail("the header is malformed");
    }
  }

  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& e) override {
    // e.what() quotes the input
    fail("the header is not valid JSON (" + printable(e.what(), 300, false) + ")");
  }

  bool complete() const { return at_ == At::End; }

 private:
  enum class Kind { Object, Array, String, Unsigned, Negative, Float, Other };
  // Where the next value goes: the root, a top-level key's value (Root), a metadata value, an
  // entry's field, an element of an entry's shape or data_offsets.
  enum class At { Start, Root, Metadata, Entry, Shape, Offsets, End };

  [[noreturn]] void fail(const std::string& what) const { throw Error(prefix_ + what); }
  [[noreturn]] void fail_tensor(const std::string& what) const {
    fail("tensor " + quote(entries.back().name) + " " + what);
  }

  static std::string describe(Kind kind, const std::string& text) {
    switch (kind) {
      case Kind::Object:
        return "an object";
      case Kind::Array:
        return "an array";
      case Kind::String:
        return "the string " + quote(text);
      default:
        return printable(text, 40, false);
    }
  }

  // A value begins: a scalar, or the opening of an object or array.
  bool value(Kind kind, uint64_t u, const std::string& text) {
    switch (at_) {
      case At::Start:
        if (kind != Kind::Object) fail("the header is not a JSON object");
        at_ = At::Root;
        return true;
      case At::Root:
        if (in_metadata_) {
          if (kind != Kind::Object)
            fail("'__metadata__' is " + describe(kind, text) +
                 ", not an object mapping strings to strings");
          at_ = At::Metadata;
          return true;
        }
        if (kind != Kind::Object)
          fail_tensor("is " + describe(kind, text) +
                      ", not an object {\"dtype\", \"shape\", \"data_offsets\"}");
        at_ = At::Entry;
        return true;
      case At::Metadata:
        if (kind != Kind::String)
          fail("'__metadata__' maps " + quote(meta_key_) + " to " + describe(kind, text) +
               ", not to a string (metadata maps strings to strings)");
        metadata.emplace(meta_key_, text);
        return true;
      case At::Entry:
        return field(kind, text);
      case At::Shape:
      case At::Offsets:
        return element(kind, u, text);
      default:  // the parser stops at the end of the root object
        fail("the header is malformed");
    }
  }

  bool field(Kind kind, const std::string& text) {
    Entry& e = entries.back();
    if (field_ == "dtype") {
      if (kind != Kind::String) fail_tensor("has dtype " + describe(kind, text) + ", not a string");
      e.dtype = find_dtype(text);
      if (!e.dtype)
        fail_tensor("has unsupported dtype " + quote(text) +
                    " (reel reads F64, F32, F16, BF16, I64, I32, I16, I8, U8 and BOOL)");
    } else if (field_ == "shape") {
      if (kind != Kind::Array)
        fail_tensor("has shape " + describe(kind, text) + ", not an array of extents");
      e.has_shape = true;
      at_ = At::Shape;
    } else {
      if (kind != Kind::Array)
        fail_tensor("has data_offsets " + describe(kind, text) + ", not an array [begin, end]");
      e.has_offsets = true;
      at_ = At::Offsets;
    }
    return true;
  }

  bool element(Kind kind, uint64_t u, const std::string& text) {
    Entry& e = entries.back();
    if (at_ == At::Shape) {
      if (kind != Kind::Unsigned)
        fail_tensor("has the extent " + describe(kind, text) +
                    " in its shape (extents are integers >= 0)");
      if (e.shape.size() == static_cast<size_t>(kMaxDims))
        fail_tensor("has more than " + std::to_string(kMaxDims) + " dimensions (reel::kMaxDims)");
      if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        fail_tensor("has the extent " + text + " in its shape, too large to address");
      e.shape.push_back(static_cast<int64_t>(u));
    } else {
      if (kind != Kind::Unsigned)
        fail_tensor("has the offset " + describe(kind, text) +
                    " in data_offsets (offsets are integers >= 0)");
      if (e.offsets.size() == 2) fail_tensor("has more than two data_offsets");
      e.offsets.push_back(u);
    }
    return true;
  }

  // Every field present, and the byte count the shape and dtype need (overflow-checked) equal
  // to a range inside the data.
  void finish_entry() {
    Entry& e = entries.back();
    if (!e.dtype) fail_tensor("has no dtype");
    if (!e.has_shape) fail_tensor("has no shape");
    if (!e.has_offsets) fail_tensor("has no data_offsets");
    // check_shape()'s limit, with a zero extent counted as 1: an empty tensor's other extents
    // must still multiply without overflow (strides are computed from them).
    int64_t numel = 1, span = 1;
    for (int64_t d : e.shape) {
      if (__builtin_mul_overflow(span, std::max<int64_t>(d, 1), &span) ||
          span > std::numeric_limits<int64_t>::max() / 8)
        fail_tensor("has shape " + shape_str(e.shape) + ", too many elements to address");
      numel *= d;  // |numel| <= span
    }
    uint64_t bytes = 0;
    if (__builtin_mul_overflow(static_cast<uint64_t>(numel), e.dtype->size, &bytes))
      fail_tensor("has shape " + shape_str(e.shape) + ", too many bytes to address");
    const uint64_t begin = e.offsets[0], end = e.offsets[1];
    const std::string offs = "[" + std::to_string(begin) + ", " + std::to_string(end) + "]";
    if (begin > end) fail_tensor("has data_offsets " + offs + " that end before they begin");
    if (end > data_size_)
      fail_tensor("has data_offsets " + offs + " beyond the " + std::to_string(data_size_) +
                  " bytes of data (truncated file?)");
    if (end - begin != bytes)
      fail_tensor(shape_str(e.shape) + " " + e.dtype->name + " needs " + std::to_string(bytes) +
                  " bytes but its data_offsets " + offs + " hold " + std::to_string(end - begin));
    e.numel = numel;
  }

  std::string prefix_;
  uint64_t data_size_;
  At at_ = At::Start;
  bool in_metadata_ = false;
  std::set<std::string> names_;   // the top-level keys seen
  std::set<std::string> fields_;  // the fields seen in the current entry
  std::string field_;             // the entry's field whose value comes next
  std::string meta_key_;          // the metadata key whose value comes next
};

// Reads n bytes at offset of the source into dst; false when it cannot.
using ReadAt = std::function<bool(uint64_t offset, char* dst, uint64_t n)>;

// The one reader behind both entry points. `where` names the source in every message; `size`
// is its size in bytes. Everything in the header is checked before any tensor is allocated,
// and no allocation exceeds what the source's size justifies.
TensorMap read_safetensors(const std::string& where, uint64_t size, const ReadAt& read_at,
                           Device device, std::map<std::string, std::string>* metadata) {
  const std::string prefix = "load_safetensors: " + where + ": ";
  REEL_CHECK(size >= 8, prefix << "too short (" << size << " bytes) to be a safetensors file");
  char len[8];
  REEL_CHECK(read_at(0, len, 8), prefix << "reading the header length failed");
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i)
    n |= static_cast<uint64_t>(static_cast<unsigned char>(len[i])) << (8 * i);
  REEL_CHECK(n <= kMaxHeader, prefix << "the header length " << n << " is more than the "
                                     << kMaxHeader
                                     << " bytes the format allows (not a safetensors file?)");
  REEL_CHECK(n <= size - 8, prefix << "the header length " << n << " runs past the end of the "
                                   << size << " bytes (truncated file?)");
  std::string header(n, '\0');
  REEL_CHECK(read_at(8, header.data(), n), prefix << "reading the header failed");
  REEL_CHECK(n > 0 && header[0] == '{',
             prefix << "the header does not begin with '{' (not a safetensors file?)");
  const uint64_t data_start = 8 + n, data_size = size - 8 - n;
  HeaderParser parser(prefix, data_size);
  try {
    json::sax_parse(header, &parser);
  } catch (const json::exception& e) {  // parse errors go through parse_error(); this is a net
    throw Error(prefix + "the header is not valid JSON (" + printable(e.what(), 300, false) + ")");
  }
  REEL_CHECK(parser.complete(), prefix << "the header ends early");
  header = std::string();

  // The data is covered exactly, as the format demands: the tensors' ranges, in order, neither
  // overlap nor leave a hole, and the last one ends where the file does.
  std::vector<const Entry*> order;
  order.reserve(parser.entries.size());
  for (const Entry& e : parser.entries) order.push_back(&e);
  std::sort(order.begin(), order.end(), [](const Entry* a, const Entry* b) {
    return std::tie(a->offsets[0], a->offsets[1], a->name) <
           std::tie(b->offsets[0], b->offsets[1], b->name);
  });
  uint64_t pos = 0;
  const Entry* prev = nullptr;
  for (const Entry* e : order) {
    const uint64_t begin = e->offsets[0], end = e->offsets[1];
    REEL_CHECK(begin >= pos, prefix << "tensor " << quote(e->name) << " has data_offsets [" << begin
                                    << ", " << end << "] that overlap those of tensor "
                                    << quote(prev->name) << " [" << prev->offsets[0] << ", "
                                    << prev->offsets[1] << "]");
    REEL_CHECK(begin == pos, prefix << "bytes [" << pos << ", " << begin
                                    << ") of the data belong to no tensor (a hole before tensor "
                                    << quote(e->name) << "; the format allows none)");
    pos = end;
    prev = e;
  }
  REEL_CHECK(pos == data_size, prefix << "bytes [" << pos << ", " << data_size
                                      << ") of the data belong to no tensor (the format allows "
                                         "nothing after the last tensor)");

  TensorMap out;
  std::vector<char> chunk;
  for (const Entry& e : parser.entries) {
    const uint64_t es = e.dtype->size;
    const int64_t per_chunk = static_cast<int64_t>(kChunkBytes / es);
    Tensor t;
    try {
      t = Tensor::empty(e.shape, Device::cpu());
    } catch (const Error& err) {
      throw Error(prefix + "tensor " + quote(e.name) + ": " + err.what());
    }
    float* dst = t.data();
    for (int64_t i = 0; i < e.numel; i += per_chunk) {
      const int64_t m = std::min(per_chunk, e.numel - i);
      const uint64_t bytes = static_cast<uint64_t>(m) * es;
      chunk.resize(bytes);
      REEL_CHECK(
          read_at(data_start + e.offsets[0] + static_cast<uint64_t>(i) * es, chunk.data(), bytes),
          prefix << "reading tensor " << quote(e.name)
                 << " failed (was the file changed while it was read?)");
      convert(e.dtype->type, chunk.data(), m, dst + i);
    }
    if (!device.is_cpu()) {
      try {
        t = t.to(device);
      } catch (const Error& err) {
        throw Error(prefix + "tensor " + quote(e.name) + ": " + err.what());
      }
    }
    out.emplace(e.name, std::move(t));
  }
  if (metadata)
    for (auto& [k, v] : parser.metadata) (*metadata)[k] = std::move(v);
  return out;
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
  std::string h;
  try {
    h = header.dump();
  } catch (const json::exception& e) {  // a name or metadata that is not UTF-8
    throw Error("save_safetensors: " + path + ": " + e.what());
  }
  h.append((8 - h.size() % 8) % 8, ' ');  // keep the data 8-byte aligned, as the format advises
  AtomicFile out(path);
  const uint64_t n = h.size();
  unsigned char len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>(n >> (8 * i));
  out.write(len, 8);
  out.write(h.data(), h.size());
  for (const auto& [name, t] : tensors) {
    const std::vector<float> v = t.to_vector();
    out.write(v.data(), v.size() * sizeof(float));
  }
  out.commit();
}

AtomicFile::AtomicFile(std::string path) : path_(std::move(path)), tmp_(path_ + ".tmp") {
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  REEL_CHECK(fd_ >= 0, "cannot write " << path_ << ": cannot create " << tmp_ << ": "
                                       << std::strerror(errno));
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) {
    ::close(fd_);
    ::unlink(tmp_.c_str());
  }
}

namespace {
std::string write_failure(const std::string& path, int err) {
  return "writing " + path + " failed: " + std::strerror(err) +
         (err == ENOSPC || err == EDQUOT ? " (disk full; the previous file is kept)"
                                         : " (the previous file is kept)");
}
}  // namespace

void AtomicFile::write(const void* data, size_t bytes) {
  REEL_CHECK(fd_ >= 0, "writing " << path_ << ": the file is already committed or failed");
  const char* p = static_cast<const char*>(data);
  while (bytes > 0) {
    const ssize_t w = ::write(fd_, p, bytes);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      const int err = w < 0 ? errno : ENOSPC;
      ::close(fd_);
      fd_ = -1;
      ::unlink(tmp_.c_str());
      throw Error(write_failure(path_, err));
    }
    p += w;
    bytes -= static_cast<size_t>(w);
  }
}

void AtomicFile::commit() {
  REEL_CHECK(fd_ >= 0, "writing " << path_ << ": the file is already committed or failed");
  const int fd = fd_;
  fd_ = -1;
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    const int err = errno;
    ::unlink(tmp_.c_str());
    throw Error(write_failure(path_, err));
  }
  if (std::rename(tmp_.c_str(), path_.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp_.c_str());
    throw Error("cannot rename " + tmp_ + " to " + path_ + ": " + std::strerror(err));
  }
  // The rename itself reaches the disk with the folder's entry.
  const size_t slash = path_.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "." : path_.substr(0, slash + 1);
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

void write_file_atomic(const std::string& path, const std::string& bytes) {
  AtomicFile f(path);
  f.write(bytes.data(), bytes.size());
  f.commit();
}

TensorMap load_safetensors(const std::string& path, Device device,
                           std::map<std::string, std::string>* metadata) {
  std::ifstream in(path, std::ios::binary);
  REEL_CHECK(in.is_open(), "load_safetensors: cannot open " << path);
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  REEL_CHECK(in.good() && size >= 0,
             "load_safetensors: cannot read " << path << " (not a regular file?)");
  const ReadAt read_at = [&in](uint64_t offset, char* dst, uint64_t n) {
    in.clear();
    in.seekg(static_cast<std::streamoff>(offset));
    in.read(dst, static_cast<std::streamsize>(n));
    return in.good() && static_cast<uint64_t>(in.gcount()) == n;
  };
  return read_safetensors(path, static_cast<uint64_t>(size), read_at, device, metadata);
}

TensorMap load_safetensors_from_memory(const void* data, size_t size, const std::string& name,
                                       Device device,
                                       std::map<std::string, std::string>* metadata) {
  REEL_CHECK(data != nullptr || size == 0,
             "load_safetensors: " << name << ": no data (a null pointer of " << size << " bytes)");
  const char* bytes = static_cast<const char*>(data);
  const ReadAt read_at = [bytes, size](uint64_t offset, char* dst, uint64_t n) {
    if (offset > size || n > size - offset) return false;
    if (n > 0) std::memcpy(dst, bytes + offset, n);
    return true;
  };
  return read_safetensors(name, size, read_at, device, metadata);
}

}  // namespace reel
