// cuDNN 9 behind reel's conv and batchnorm contracts (kernels/vendor/cudnn.h), through cuDNN's
// legacy (descriptor) API, which cuDNN 9 still ships (deprecated in favour of the graph API).
#include "reel/kernels/cuda/launch.h"
//
#include <cudnn.h>

#include <climits>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "reel/kernels/batchnorm.h"
#include "reel/kernels/cuda/device_utils.h"
#include "reel/kernels/cuda/runtime.h"
#include "reel/kernels/elementwise.h"
#include "reel/kernels/error.h"
#include "reel/kernels/vendor/cudnn.h"

namespace reel {

// REEL_CUDA_CHECK (kernels/cuda/launch.h) also checks cuDNN calls through this overload.
inline void cuda_check(cudnnStatus_t s, const char* call, const char* file, int line) {
  if (s == CUDNN_STATUS_SUCCESS) return;
  throw Error(std::string(call) + " failed at " + file + ":" + std::to_string(line) + ": " +
              cudnnGetErrorString(s));
}

namespace vendor {

namespace {

// Per device: the cuDNN handle and buffers that only grow. A call holds `mu` from start to end,
// since it sets the handle's stream and uses buffers that another thread's call could regrow.
struct Context {
  enum Slot { kWorkspace, kOnes, kZeros, kScratchData, kScratchParams, kSlots };
  std::mutex mu;
  int device = 0;
  cudnnHandle_t handle = nullptr;
  void* ptr[kSlots] = {};
  size_t bytes[kSlots] = {};

  // The buffer of `slot`, at least `need` bytes (ones and zeros are filled when they grow).
  void* buffer(Slot slot, size_t need, cudaStream_t stream) {
    if (need <= bytes[slot]) return ptr[slot];
    if (ptr[slot]) {
      REEL_CUDA_CHECK(cudaStreamSynchronize(stream));  // queued work may still read it
      cuda::free_on(device, ptr[slot]);
      ptr[slot] = nullptr;
      bytes[slot] = 0;
    }
    ptr[slot] = cuda::malloc_on(device, need);
    bytes[slot] = need;
    if (slot == kOnes) cuda::fill(static_cast<float*>(ptr[slot]), 1.0f, need / 4, stream);
    if (slot == kZeros) REEL_CUDA_CHECK(cudaMemsetAsync(ptr[slot], 0, need, stream));
    return ptr[slot];
  }
  float* floats(Slot slot, int64_t n, cudaStream_t stream) {
    return static_cast<float*>(buffer(slot, static_cast<size_t>(n) * sizeof(float), stream));
  }
};

// The current device's context, locked, with the handle on `stream`. Contexts live until the
// process ends (a handle destroyed after the driver has shut down would fail).
class Call {
 public:
  explicit Call(cudaStream_t stream) : ctx_(context()), lock_(ctx_.mu) {
    if (!ctx_.handle) REEL_CUDA_CHECK(cudnnCreate(&ctx_.handle));
    REEL_CUDA_CHECK(cudnnSetStream(ctx_.handle, stream));
  }
  Context* operator->() { return &ctx_; }

 private:
  static Context& context() {
    static std::mutex mu;
    static std::vector<std::unique_ptr<Context>> contexts;
    int device = 0;
    REEL_CUDA_CHECK(cudaGetDevice(&device));
    std::lock_guard<std::mutex> lock(mu);
    if (static_cast<int>(contexts.size()) <= device) contexts.resize(device + 1);
    if (!contexts[device]) {
      contexts[device] = std::make_unique<Context>();
      contexts[device]->device = device;
    }
    return *contexts[device];
  }
  Context& ctx_;
  std::lock_guard<std::mutex> lock_;
};

int to_int(int64_t v, const char* what) {
  if (v < 0 || v > INT_MAX)
    throw Error(std::string("cuDNN: ") + what + " = " + std::to_string(v) +
                " does not fit cuDNN's int sizes");
  return static_cast<int>(v);
}

// RAII descriptors.
struct TensorDesc {
  cudnnTensorDescriptor_t d = nullptr;
  TensorDesc(int64_t n, int64_t c, int64_t h, int64_t w) {
    REEL_CUDA_CHECK(cudnnCreateTensorDescriptor(&d));
    REEL_CUDA_CHECK(cudnnSetTensor4dDescriptor(d, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT,
                                               to_int(n, "N"), to_int(c, "C"), to_int(h, "H"),
                                               to_int(w, "W")));
  }
  ~TensorDesc() { cudnnDestroyTensorDescriptor(d); }
  TensorDesc(const TensorDesc&) = delete;
  TensorDesc& operator=(const TensorDesc&) = delete;
};

// The four descriptors of one convolution.
struct ConvDescs {
  TensorDesc x, y;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  explicit ConvDescs(const Conv2dShape& s) : x(s.N, s.C, s.H, s.W), y(s.N, s.K, s.P, s.Q) {
    REEL_CUDA_CHECK(cudnnCreateFilterDescriptor(&w));
    REEL_CUDA_CHECK(cudnnSetFilter4dDescriptor(w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW,
                                               to_int(s.K, "K"), to_int(s.C, "C"), to_int(s.R, "R"),
                                               to_int(s.S, "S")));
    REEL_CUDA_CHECK(cudnnCreateConvolutionDescriptor(&conv));
    REEL_CUDA_CHECK(cudnnSetConvolution2dDescriptor(
        conv, to_int(s.pad_h, "pad_h"), to_int(s.pad_w, "pad_w"), to_int(s.stride_h, "stride_h"),
        to_int(s.stride_w, "stride_w"), to_int(s.dil_h, "dil_h"), to_int(s.dil_w, "dil_w"),
        CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    // FMA only: with the default, Ampere and later may run fp32 convolutions in TF32.
    REEL_CUDA_CHECK(cudnnSetConvolutionMathType(conv, CUDNN_FMA_MATH));
    int n = 0, c = 0, h = 0, wd = 0;
    REEL_CUDA_CHECK(cudnnGetConvolution2dForwardOutputDim(conv, x.d, w, &n, &c, &h, &wd));
    if (n != s.N || c != s.K || h != s.P || wd != s.Q)
      throw Error("cudnn conv2d: cuDNN's output [" + std::to_string(n) + ", " + std::to_string(c) +
                  ", " + std::to_string(h) + ", " + std::to_string(wd) +
                  "] differs from the shape's [N, K, P, Q]");
  }
  ~ConvDescs() {
    cudnnDestroyConvolutionDescriptor(conv);
    cudnnDestroyFilterDescriptor(w);
  }
  ConvDescs(const ConvDescs&) = delete;
  ConvDescs& operator=(const ConvDescs&) = delete;
};

// The heuristic's first deterministic choice that runs (else its first that runs), from
// perf: [count] results in the heuristic's order of expected speed.
template <class Perf>
const Perf& pick(const Perf* perf, int count, const char* what) {
  const Perf* any = nullptr;
  for (int i = 0; i < count; ++i) {
    if (perf[i].status != CUDNN_STATUS_SUCCESS) continue;
    if (perf[i].determinism == CUDNN_DETERMINISTIC) return perf[i];
    if (!any) any = &perf[i];
  }
  if (!any) throw Error(std::string("cudnn ") + what + ": cuDNN offers no algorithm");
  return *any;
}

constexpr int kMaxAlgos = 16;
const float kOne = 1.0f, kZero = 0.0f;

// mean, invstd: [C] out, from running_mean, running_var: [C].
__global__ void eval_stats_kernel(const float* running_mean, const float* running_var, float* mean,
                                  float* invstd, float eps, int64_t C) {
  for (int64_t c = cuda::global_thread(); c < C; c += cuda::grid_threads()) {
    mean[c] = running_mean[c];
    invstd[c] = math::batchnorm_invstd(running_var[c], eps);
  }
}

void check_eps(float eps) {
  if (eps < CUDNN_BN_MIN_EPSILON)
    throw Error(
        "cudnn batchnorm: eps = " + std::to_string(eps) +
        " is below cuDNN's minimum CUDNN_BN_MIN_EPSILON = " + std::to_string(CUDNN_BN_MIN_EPSILON));
}

}  // namespace

void cudnn_conv2d_forward(const float* x, const float* w, const float* bias, float* y,
                          const Conv2dShape& s, cudaStream_t stream) {
  if (s.N * s.K * s.P * s.Q == 0) return;
  Call call(stream);
  ConvDescs d(s);
  cudnnConvolutionFwdAlgoPerf_t perf[kMaxAlgos];
  int count = 0;
  REEL_CUDA_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(call->handle, d.x.d, d.w, d.conv, d.y.d,
                                                         kMaxAlgos, &count, perf));
  const auto& algo = pick(perf, count, "conv2d_forward");
  size_t bytes = 0;
  REEL_CUDA_CHECK(cudnnGetConvolutionForwardWorkspaceSize(call->handle, d.x.d, d.w, d.conv, d.y.d,
                                                          algo.algo, &bytes));
  void* work = call->buffer(Context::kWorkspace, bytes, stream);
  REEL_CUDA_CHECK(cudnnConvolutionForward(call->handle, &kOne, d.x.d, x, d.w, w, d.conv, algo.algo,
                                          work, bytes, &kZero, d.y.d, y));
  if (bias) {
    TensorDesc b(1, s.K, 1, 1);
    REEL_CUDA_CHECK(cudnnAddTensor(call->handle, &kOne, b.d, bias, &kOne, d.y.d, y));
  }
}

void cudnn_conv2d_backward_data(const float* dy, const float* w, float* dx, const Conv2dShape& s,
                                cudaStream_t stream) {
  const int64_t dx_size = s.N * s.C * s.H * s.W;
  if (dx_size == 0) return;
  if (s.K * s.P * s.Q == 0) {  // no output reads any input
    REEL_CUDA_CHECK(cudaMemsetAsync(dx, 0, dx_size * sizeof(float), stream));
    return;
  }
  Call call(stream);
  ConvDescs d(s);
  cudnnConvolutionBwdDataAlgoPerf_t perf[kMaxAlgos];
  int count = 0;
  REEL_CUDA_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(call->handle, d.w, d.y.d, d.conv,
                                                              d.x.d, kMaxAlgos, &count, perf));
  const auto& algo = pick(perf, count, "conv2d_backward_data");
  size_t bytes = 0;
  REEL_CUDA_CHECK(cudnnGetConvolutionBackwardDataWorkspaceSize(call->handle, d.w, d.y.d, d.conv,
                                                               d.x.d, algo.algo, &bytes));
  void* work = call->buffer(Context::kWorkspace, bytes, stream);
  REEL_CUDA_CHECK(cudnnConvolutionBackwardData(call->handle, &kOne, d.w, w, d.y.d, dy, d.conv,
                                               algo.algo, work, bytes, &kZero, d.x.d, dx));
}

void cudnn_conv2d_backward_weight(const float* dy, const float* x, float* dw, float* db,
                                  const Conv2dShape& s, cudaStream_t stream) {
  const int64_t dw_size = s.K * s.C * s.R * s.S;
  if (s.N * s.P * s.Q == 0) {  // an empty sum
    if (dw_size > 0) REEL_CUDA_CHECK(cudaMemsetAsync(dw, 0, dw_size * sizeof(float), stream));
    if (db && s.K > 0) REEL_CUDA_CHECK(cudaMemsetAsync(db, 0, s.K * sizeof(float), stream));
    return;
  }
  if (s.K == 0) return;
  Call call(stream);
  ConvDescs d(s);
  if (dw_size > 0) {
    cudnnConvolutionBwdFilterAlgoPerf_t perf[kMaxAlgos];
    int count = 0;
    REEL_CUDA_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(
        call->handle, d.x.d, d.y.d, d.conv, d.w, kMaxAlgos, &count, perf));
    const auto& algo = pick(perf, count, "conv2d_backward_weight");
    size_t bytes = 0;
    REEL_CUDA_CHECK(cudnnGetConvolutionBackwardFilterWorkspaceSize(call->handle, d.x.d, d.y.d,
                                                                   d.conv, d.w, algo.algo, &bytes));
    void* work = call->buffer(Context::kWorkspace, bytes, stream);
    REEL_CUDA_CHECK(cudnnConvolutionBackwardFilter(call->handle, &kOne, d.x.d, x, d.y.d, dy, d.conv,
                                                   algo.algo, work, bytes, &kZero, d.w, dw));
  }
  if (db) {
    TensorDesc b(1, s.K, 1, 1);
    REEL_CUDA_CHECK(cudnnConvolutionBackwardBias(call->handle, &kOne, d.y.d, dy, &kZero, b.d, db));
  }
}

void cudnn_batchnorm_forward_train(const float* x, const float* weight, const float* bias, float* y,
                                   float* mean, float* invstd, float* running_mean,
                                   float* running_var, float momentum, float eps, int64_t N,
                                   int64_t C, int64_t HW, cudaStream_t stream) {
  if (C == 0) return;
  check_eps(eps);
  Call call(stream);
  TensorDesc xd(N, C, HW, 1), pd(1, C, 1, 1);
  if (!weight) weight = call->floats(Context::kOnes, C, stream);
  if (!bias) bias = call->floats(Context::kZeros, C, stream);
  // cuDNN updates both running statistics or neither: a missing one goes to scratch.
  if (running_mean && !running_var) running_var = call->floats(Context::kScratchParams, C, stream);
  if (running_var && !running_mean) running_mean = call->floats(Context::kScratchParams, C, stream);
  REEL_CUDA_CHECK(cudnnBatchNormalizationForwardTraining(
      call->handle, CUDNN_BATCHNORM_SPATIAL, &kOne, &kZero, xd.d, x, xd.d, y, pd.d, weight, bias,
      momentum, running_mean, running_var, eps, mean, invstd));
}

void cudnn_batchnorm_forward_eval(const float* x, const float* weight, const float* bias,
                                  const float* running_mean, const float* running_var, float* y,
                                  float* mean, float* invstd, float eps, int64_t N, int64_t C,
                                  int64_t HW, cudaStream_t stream) {
  if (C == 0) return;
  check_eps(eps);
  launch_kernel(eval_stats_kernel, dim3(blocks_for(C, cuda::kThreadsPerBlock)),
                dim3(cuda::kThreadsPerBlock), 0, stream, running_mean, running_var, mean, invstd,
                eps, C);
  if (N * HW == 0) return;
  Call call(stream);
  TensorDesc xd(N, C, HW, 1), pd(1, C, 1, 1);
  if (!weight) weight = call->floats(Context::kOnes, C, stream);
  if (!bias) bias = call->floats(Context::kZeros, C, stream);
  REEL_CUDA_CHECK(cudnnBatchNormalizationForwardInference(
      call->handle, CUDNN_BATCHNORM_SPATIAL, &kOne, &kZero, xd.d, x, xd.d, y, pd.d, weight, bias,
      running_mean, running_var, eps));
}

void cudnn_batchnorm_backward(const float* dy, const float* x, const float* weight,
                              const float* mean, const float* invstd, float* dx, float* dweight,
                              float* dbias, bool training, int64_t N, int64_t C, int64_t HW,
                              cudaStream_t stream) {
  if (!training) {  // cuDNN has no backward through fixed statistics
    cuda::batchnorm_backward(dy, x, weight, mean, invstd, dx, dweight, dbias, false, N, C, HW,
                             stream);
    return;
  }
  if ((!dx && !dweight && !dbias) || C == 0) return;
  Call call(stream);
  TensorDesc xd(N, C, HW, 1), pd(1, C, 1, 1);
  if (!weight) weight = call->floats(Context::kOnes, C, stream);
  // cuDNN writes all three gradients: the ones not asked for go to scratch.
  if (!dx) dx = call->floats(Context::kScratchData, N * C * HW, stream);
  if (!dweight || !dbias) {
    float* scratch = call->floats(Context::kScratchParams, C, stream);
    if (!dweight) dweight = scratch;
    if (!dbias) dbias = scratch == dweight ? call->floats(Context::kWorkspace, C, stream) : scratch;
  }
  // eps is read only when the saved statistics are not given; they always are here.
  const double unused_eps = CUDNN_BN_MIN_EPSILON > 1e-5 ? CUDNN_BN_MIN_EPSILON : 1e-5;
  REEL_CUDA_CHECK(cudnnBatchNormalizationBackward(
      call->handle, CUDNN_BATCHNORM_SPATIAL, &kOne, &kZero, &kOne, &kZero, xd.d, x, xd.d, dy, xd.d,
      dx, pd.d, weight, dweight, dbias, unused_eps, mean, invstd));
}

}  // namespace vendor
}  // namespace reel
