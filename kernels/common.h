#pragma once
// Macros shared by the CPU and CUDA builds of every kernel family.

// REEL_HD marks the per-element math in kernels/*_math.h: one definition that both the host
// compiler and nvcc (or the SIMT emulation) inline.
#if defined(__CUDACC__)
#define REEL_HD __host__ __device__ __forceinline__
#else
#define REEL_HD inline
#endif

// The CUDA stream type, declared exactly as cuda_runtime.h does, so that kernel headers can
// declare the CUDA versions of each op without including CUDA.
typedef struct CUstream_st* cudaStream_t;
