#include "reel/kernels/cpu/parallel.h"

#include <omp.h>

#include <atomic>
#include <cstdlib>

extern "C" int reel_omp_env_linked();

namespace reel::cpu {
namespace {

std::atomic<int> g_threads{0};

int default_threads() {
  if (const char* s = std::getenv("REEL_NUM_THREADS")) {
    char* end = nullptr;
    long v = std::strtol(s, &end, 10);
    if (end != s && *end == '\0' && v > 0 && v < 4096) return static_cast<int>(v);
  }
  return omp_get_max_threads();
}

}  // namespace

int num_threads() {
  if (omp_in_parallel()) return 1;  // called from a thread of an enclosing team
  // Referencing the library keeps it linked under --as-needed (see omp_env.cpp).
  static const bool env_linked = reel_omp_env_linked() != 0;
  (void)env_linked;
  int n = g_threads.load(std::memory_order_relaxed);
  if (n > 0) return n;
  n = default_threads();
  g_threads.store(n, std::memory_order_relaxed);
  return n;
}

void set_num_threads(int n) { g_threads.store(n > 0 ? n : 0, std::memory_order_relaxed); }

}  // namespace reel::cpu
