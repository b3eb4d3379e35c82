#pragma once
// Threading for the CPU kernels. The kernels use OpenMP; this header is the one place that
// decides how many threads they use.
//
// OpenMP waits passively by default in every program that links reel: the small shared library
// reel_omp_env (kernels/cpu/omp_env.cpp) sets OMP_WAIT_POLICY=passive in its constructor,
// which runs before libgomp reads its environment, unless the user set OMP_WAIT_POLICY already.
// Spin-waiting threads stalled every parallel region by 4 to 8 ms on our shared 2-core VMs
// (measured).

namespace reel::cpu {

// Threads the CPU kernels use: set_num_threads() if called, else REEL_NUM_THREADS when set to a
// positive integer, else omp_get_max_threads(). 1 inside an OpenMP parallel region: a kernel
// that one thread of another kernel's team calls (a convolution's per-image GEMM) runs on that
// thread alone.
int num_threads();

// n >= 1; n <= 0 restores the default above.
void set_num_threads(int n);

}  // namespace reel::cpu
