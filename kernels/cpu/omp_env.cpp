// libgomp reads OMP_WAIT_POLICY once, in its own constructor. This file is built as the shared
// library reel_omp_env, which reel links ahead of libgomp: the dynamic loader then runs this
// constructor after libc's and before libgomp's, the one point where a default can still be
// set. (An executable's .preinit_array runs too early: libc's start-up resets the environment
// pointer after it, and a static constructor of ours runs after libgomp's.) overwrite = 0: the
// user's own setting wins.
#include <stdlib.h>

namespace {
int g_applied = 0;
__attribute__((constructor)) void reel_default_omp_wait_policy() {
  g_applied = getenv("OMP_WAIT_POLICY") == nullptr ? 1 : 2;
  setenv("OMP_WAIT_POLICY", "passive", 0);
}
}  // namespace

// 1: reel set the passive default, 2: the user's OMP_WAIT_POLICY was kept.
extern "C" __attribute__((visibility("default"))) int reel_omp_env_linked() { return g_applied; }
