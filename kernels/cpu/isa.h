#pragma once
// The one CPU feature check behind every run-time choice of a vector body (GEMM micro-kernels,
// pointwise, reduction and softmax bodies). A file named kernels/cpu/*_avx512.cpp is compiled with
// -mavx512f -mavx512vl -mavx2 -mfma and *_avx2.cpp with -mavx2 -mfma (top CMakeLists.txt); the
// rest is baseline x86-64.

namespace reel::cpu {

enum class Isa : int { Generic, Avx2, Avx512 };

// True when this CPU (and OS) can run code compiled for `isa` with the flags above.
bool cpu_has(Isa isa);

// "avx512", "avx2", "generic".
const char* isa_name(Isa isa);

// Parses a name above into *isa; false (and *isa unchanged) for an unknown name or nullptr.
bool isa_from_name(const char* name, Isa* isa);

// The best ISA this CPU has: Avx512, else Avx2, else Generic.
Isa best_isa();

}  // namespace reel::cpu
