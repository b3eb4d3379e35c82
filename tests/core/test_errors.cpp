// Bad input: every case raises reel::Error whose message names the op, the shapes and what was
// expected. None may crash.
#include "../test_util.h"

using namespace reel;

namespace {
// A CUDA tensor's handle without storage: enough to reach the device checks on a machine
// without a GPU (no memory is allocated for zero elements).
Tensor fake_cuda_tensor() {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>(0, Device::cuda(0));
  impl->shape = {0};
  return Tensor(impl);
}
}  // namespace

#define CHECK_ERROR(expr, ...)                                                          \
  do {                                                                                  \
    std::string msg_;                                                                   \
    try {                                                                               \
      (void)(expr);                                                                     \
    } catch (const reel::Error& e) {                                                    \
      msg_ = e.what();                                                                  \
    }                                                                                   \
    INFO("message: " << msg_);                                                          \
    CHECK_FALSE(msg_.empty());                                                          \
    for (const char* part : {__VA_ARGS__}) CHECK(msg_.find(part) != std::string::npos); \
  } while (0)

TEST_CASE("mismatched shapes") {
  Tensor a = Tensor::ones({2, 3}), b = Tensor::ones({4});
  CHECK_ERROR(a + b, "add", "[2, 3]", "[4]", "broadcast");
  CHECK_ERROR(a * Tensor::ones({3, 3}), "mul", "[2, 3]", "[3, 3]");
  CHECK_ERROR(matmul(a, Tensor::ones({2, 3})), "matmul", "[2, 3] @ [2, 3]", "inner");
  CHECK_ERROR(matmul(Tensor::ones({2, 2, 3}), Tensor::ones({3, 3, 1})), "matmul", "batch");
  CHECK_ERROR(matmul(Tensor::ones({3}), a), "matmul", "2-D or 3-D");
  CHECK_ERROR(a.reshape({4, 2}), "reshape", "[2, 3]", "[4, 2]");
  CHECK_ERROR(a.reshape({-1, -1}), "reshape", "-1");
  CHECK_ERROR(concat({a, Tensor::ones({2, 2})}, 0), "concat", "input 1", "[2, 2]");
  CHECK_ERROR(stack({a, Tensor::ones({3, 2})}, 0), "stack", "[3, 2]");
  CHECK_ERROR(permute(a, {0}), "permute", "[2, 3]");
  CHECK_ERROR(permute(a, {0, 0}), "permute", "twice");
  CHECK_ERROR(Tensor::from_vector({1, 2, 3}, {2, 2}), "from_vector", "[2, 2]");
  CHECK_ERROR(cross_entropy(Tensor::ones({2, 3, 1}), {0, 1}), "cross_entropy", "[2, 3, 1]");
  CHECK_ERROR(cross_entropy(a, {0}), "cross_entropy", "1 targets", "[2, 3]");
  CHECK_ERROR(expand(a, {3, 3}), "expand", "[2, 3]", "[3, 3]");
  CHECK_ERROR(a.backward(), "backward", "does not require grad");
  Tensor w = Tensor::ones({2, 3});
  w.requires_grad_();
  CHECK_ERROR((w * 2.0f).backward(), "backward", "[2, 3]", "one-element");
  CHECK_ERROR((w * 2.0f).backward(Tensor::ones({3})), "backward", "[3]", "[2, 3]");
  CHECK_ERROR((w * 2.0f).requires_grad_(), "requires_grad_", "mul");
  CHECK_ERROR(w.add_(Tensor::ones({3})), "add_");
  CHECK_ERROR(Tensor::zeros({2, -1}), "invalid shape", "[2, -1]");
  // Sizes that would overflow the element count or the kernels' rank limit.
  CHECK_ERROR(Tensor::zeros({(int64_t{1} << 62) + 1}), "[4611686018427387905]",
              "too many elements");
  CHECK_ERROR(Tensor::ones({1 << 30, 1 << 30, 1 << 30}), "too many elements");
  CHECK_ERROR(Tensor::ones({4}).reshape({(int64_t{1} << 62) + 1, 4}), "reshape", "too many");
  CHECK_ERROR(expand(Tensor::ones({1}), Shape(17, 1)), "expand", "16 dimensions");
  CHECK_ERROR(Tensor::arange(0, 1e30f), "arange", "too many");
}

TEST_CASE("indices out of range") {
  Tensor a = Tensor::ones({2, 3});
  CHECK_ERROR(a.sum({2}), "sum", "dimension 2", "rank 2");
  CHECK_ERROR(a.sum({1, -1}), "sum", "twice");
  CHECK_ERROR(softmax(a, -3), "softmax", "dimension -3");
  CHECK_ERROR(a.slice(1, 0, 4), "slice", "[0, 4)", "[2, 3]");
  CHECK_ERROR(a.slice(0, 2, 1), "slice", "[2, 1)");
  CHECK_ERROR(a.slice(0, 0, 1, 0), "slice", "step");
  CHECK_ERROR(a.transpose(0, 2), "transpose", "dimension 2");
  CHECK_ERROR(a.size(2), "size", "[2, 3]");
  CHECK_ERROR(a.at({2, 0}), "at", "index 2", "[2, 3]");
  CHECK_ERROR(cross_entropy(a, {0, 3}), "cross_entropy", "target 3", "row 1", "3 classes");
  CHECK_ERROR(cross_entropy(a, {-1, 0}), "cross_entropy", "target -1");
  CHECK_ERROR(stack({a}, 3), "stack", "dimension 3");
}

TEST_CASE("empty tensors where one is not allowed") {
  CHECK_ERROR(Tensor::zeros({0}).item(), "item", "[0]");
  CHECK_ERROR(Tensor::ones({2, 2}).item(), "item", "[2, 2]");
  CHECK_ERROR(softmax(Tensor::zeros({2, 0}), 1), "softmax", "[2, 0]", "empty");
  CHECK_ERROR(cross_entropy(Tensor::zeros({2, 0}), {0, 0}), "cross_entropy", "no classes");
  CHECK_ERROR(concat({}, 0), "concat", "empty list");
  CHECK_ERROR(stack({}, 0), "stack", "empty list");
  CHECK_ERROR(Tensor() + Tensor::ones({1}), "add", "undefined");
  CHECK_ERROR(Tensor().shape(), "undefined");
}

TEST_CASE("device mismatch and unusable devices") {
  Tensor c = fake_cuda_tensor();
  CHECK_ERROR(Tensor::zeros({0}) + c, "add", "cpu", "cuda:0", "one device");
  CHECK_ERROR(matmul(Tensor::zeros({0, 0}), c), "matmul", "cuda:0");
  CHECK_ERROR(concat({Tensor::zeros({0}), c}, 0), "concat", "cuda:0");
  CHECK_ERROR(Device::parse("gpu"), "unknown device", "gpu");
  CHECK_ERROR(Device::parse("cuda:x"), "cuda:x");
  if (!cuda::available()) {
    CHECK_ERROR(Tensor::ones({2}, Device::cuda(1)), "cuda:1");
    CHECK_ERROR(Tensor::ones({2}).pin_memory(), "pinned", "CUDA device");
  }
}

TEST_CASE("bad arguments to creation and gradcheck") {
  Generator g(0);
  CHECK_ERROR(Tensor::arange(0, 1, 0), "arange", "step");
  CHECK_ERROR(Tensor::uniform({2}, 1.0f, 0.0f, g), "uniform", "low");
  CHECK_ERROR(Tensor::normal({2}, 0.0f, -1.0f, g), "normal", "std");
  CHECK_ERROR(cross_entropy(Tensor::ones({1, 2}), {0}, 1.5f), "label_smoothing", "1.5");
  CHECK_ERROR(
      gradcheck([](const std::vector<Tensor>& v) { return v[0] * 2.0f; }, {Tensor::ones({2})}),
      "gradcheck", "requires grad");
}
