// libFuzzer target for the safetensors reader (built and run by scripts/fuzz_safetensors.sh,
// never by CMake). Each input is a whole file, read through load_safetensors_from_memory, the
// same reader as load_safetensors. A finding is: a crash or sanitizer report, an exception
// other than reel::Error, a reel::Error that does not name the input or whose message could
// drive a terminal (a control character, or bytes that are not UTF-8), or a load that holds
// more elements than the input has bytes (every element takes at least one byte of data).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "reel/core/serialize.h"

namespace {

// UTF-8 without C0 or C1 control characters (a message is one line).
bool printable(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    const size_t len = c < 0x80 ? 1 : c < 0xC2 ? 0 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : c < 0xF5 ? 4 : 0;
    if (len == 0 || i + len > s.size()) return false;
    if (len == 1 && (c < 0x20 || c == 0x7f)) return false;
    for (size_t k = 1; k < len; ++k)
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    if (c == 0xC2 && static_cast<unsigned char>(s[i + 1]) < 0xA0) return false;
    i += len;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string kName = "fuzz-input";
  try {
    std::map<std::string, std::string> metadata;
    const reel::TensorMap m =
        reel::load_safetensors_from_memory(data, size, kName, reel::Device::cpu(), &metadata);
    size_t elements = 0;
    for (const auto& [name, t] : m) {
      elements += static_cast<size_t>(t.numel());
      if (t.numel() > 0) {  // touch the first and last values
        volatile float first = t.data()[0], last = t.data()[t.numel() - 1];
        (void)first;
        (void)last;
      }
    }
    if (elements > size) {
      std::fprintf(stderr, "loaded %zu elements from %zu bytes\n", elements, size);
      std::abort();
    }
  } catch (const reel::Error& e) {
    const std::string message = e.what();
    if (message.find("load_safetensors: " + kName + ": ") != 0 || !printable(message)) {
      std::fprintf(stderr, "a reel::Error that does not name the input, or is not printable: %s\n",
                   e.what());
      std::abort();
    }
  }
  return 0;
}
