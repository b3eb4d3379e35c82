#include "reel/kernels/cpu/isa.h"

#include <cstring>
#include <initializer_list>

namespace reel::cpu {

bool cpu_has(Isa isa) {
  __builtin_cpu_init();
  switch (isa) {
    case Isa::Avx512:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
             __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case Isa::Avx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case Isa::Generic:
      return true;
  }
  return false;
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Avx512:
      return "avx512";
    case Isa::Avx2:
      return "avx2";
    case Isa::Generic:
      return "generic";
  }
  return "generic";
}

bool isa_from_name(const char* name, Isa* isa) {
  if (name == nullptr) return false;
  for (Isa i : {Isa::Avx512, Isa::Avx2, Isa::Generic}) {
    if (std::strcmp(name, isa_name(i)) == 0) {
      *isa = i;
      return true;
    }
  }
  return false;
}

Isa best_isa() {
  for (Isa i : {Isa::Avx512, Isa::Avx2}) {
    if (cpu_has(i)) return i;
  }
  return Isa::Generic;
}

}  // namespace reel::cpu
