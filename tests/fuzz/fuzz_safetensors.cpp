// libFuzzer target for the safetensors reader (built and run by scripts/fuzz_safetensors.sh,
// never by CMake). Each input is a whole file, read through load_safetensors_from_memory, the
// same reader as load_safetensors. A finding is: a crash or sanitizer report, an exception
// other than reel::Error, a reel::Error that does not name the input, or a load that holds
// more elements than the input has bytes (every element takes at least one byte of data).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "reel/core/serialize.h"

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
    if (std::string(e.what()).find("load_safetensors: " + kName + ": ") != 0) {
      std::fprintf(stderr, "a reel::Error that does not name the input: %s\n", e.what());
      std::abort();
    }
  }
  return 0;
}
