#pragma once
// Tensor: float32, contiguous, row-major, with a shape and a device. A Tensor is a handle: copies
// share storage (reference counted). Reshape shares storage; transpose and permute copy.
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <iosfwd>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "reel/core/device.h"
#include "reel/core/error.h"

namespace reel {

using Shape = std::vector<int64_t>;

// "[2, 3]"
std::string shape_str(const Shape& shape);
// Product of the extents (1 for a 0-d shape). For a shape that passed check_shape().
int64_t shape_numel(const Shape& shape);
// Throws reel::Error naming op and the shape when an extent is negative or the tensor would
// hold more elements than memory can address.
void check_shape(const char* op, const Shape& shape);

class Generator;
struct Node;
class Tensor;

// Owns one buffer of floats on one device; returns it to the caching allocator when released.
struct Storage {
  // pinned: page-locked host memory (device must be cpu), see pinned_allocate().
  Storage(int64_t numel, Device device, bool pinned = false);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  float* data = nullptr;
  int64_t numel = 0;
  Device device;
  bool pinned = false;
  // Bumped by every change in place (fill_, add_, mul_, copy_, copy_from_host): a tensor saved
  // for backward remembers the version it was saved at (autograd.h).
  uint64_t version = 0;
};

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  Shape shape;
  bool requires_grad = false;
  bool retains_grad = false;
  std::shared_ptr<TensorImpl> grad;  // accumulated gradient of a leaf (or a retained non-leaf)
  std::shared_ptr<Node> grad_fn;     // the op that made this tensor, when recorded
  int output_nr = 0;                 // which output of grad_fn this tensor is
  // Tensor::add_grad_ready_hook: called with the leaf when a backward has accumulated the last
  // of its gradients (null until one is added).
  std::shared_ptr<std::vector<std::function<void(const Tensor&)>>> grad_ready_hooks;
};

class Tensor {
 public:
  Tensor() = default;  // an undefined tensor: defined() is false
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // ---- creation (all throw reel::Error on a negative extent or an unusable device) ----
  static Tensor empty(const Shape& shape, Device device = Device::cpu());
  // A cpu tensor in pinned (page-locked) memory, from which to(cuda, true) copies
  // asynchronously. Throws reel::Error when no CUDA device is available.
  static Tensor empty_pinned(const Shape& shape);
  static Tensor zeros(const Shape& shape, Device device = Device::cpu());
  static Tensor ones(const Shape& shape, Device device = Device::cpu());
  static Tensor full(const Shape& shape, float value, Device device = Device::cpu());
  // [ceil((end - start) / step)] values start, start + step, ...
  static Tensor arange(float start, float end, float step = 1.0f, Device device = Device::cpu());
  // values.size() must equal the product of shape.
  static Tensor from_vector(const std::vector<float>& values, const Shape& shape,
                            Device device = Device::cpu());
  // A 0-d tensor holding value.
  static Tensor scalar(float value, Device device = Device::cpu());
  static Tensor uniform(const Shape& shape, float low, float high, Generator& gen,
                        Device device = Device::cpu());
  static Tensor normal(const Shape& shape, float mean, float std, Generator& gen,
                       Device device = Device::cpu());

  // ---- properties ----
  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const;
  int64_t dim() const { return static_cast<int64_t>(shape().size()); }
  // Extent of dimension d; negative d counts from the end.
  int64_t size(int64_t d) const;
  int64_t numel() const;
  Device device() const;
  // Raw storage pointer (device memory for a CUDA tensor). Only for kernels and I/O.
  float* data() const;

  // ---- host I/O and devices ----
  std::vector<float> to_vector() const;
  // src/dst: numel() floats of host memory.
  void copy_from_host(const float* src, int64_t n);
  void copy_to_host(float* dst, int64_t n) const;
  // Same tensor when already there; otherwise a copy (differentiable). non_blocking: a copy
  // from pinned memory to a GPU is queued on the device's stream and to() returns at once
  // (work on the result is ordered after it; the pinned block is not reused until it is done).
  Tensor to(Device device, bool non_blocking = false) const;
  bool is_pinned() const;
  // A copy in pinned memory (this tensor when it is pinned already); not recorded by autograd.
  Tensor pin_memory() const;
  // The only value of a one-element tensor.
  float item() const;
  // Element at a multi-index (host tensors or copied from the device). For tests and printing.
  float at(const std::vector<int64_t>& index) const;

  // ---- shape (differentiable) ----
  // Shares storage. One extent may be -1 (inferred).
  Tensor reshape(const Shape& shape) const;
  Tensor transpose(int64_t d0, int64_t d1) const;
  Tensor permute(const std::vector<int64_t>& dims) const;
  Tensor slice(int64_t dim, int64_t start, int64_t end, int64_t step = 1) const;
  Tensor sum(const std::vector<int64_t>& dims = {}, bool keepdim = false) const;
  Tensor mean(const std::vector<int64_t>& dims = {}, bool keepdim = false) const;

  // ---- autograd ----
  bool requires_grad() const;
  // Marks a leaf as needing its gradient. Throws on a non-leaf (use detach() first).
  Tensor& requires_grad_(bool value = true);
  bool is_leaf() const;
  // The accumulated gradient (undefined until a backward reaches this tensor).
  Tensor grad() const;
  void set_grad(const Tensor& grad) const;
  // Clears the gradient: set_to_none drops it, otherwise it is filled with zeros.
  void zero_grad(bool set_to_none = true) const;
  // Keep the gradient of this non-leaf in grad() during backward.
  void retain_grad() const;
  // Calls hook(leaf) during each backward, as soon as every gradient that backward sends this
  // leaf has been accumulated into grad() (PyTorch's post-accumulate-grad hook): what
  // data-parallel training needs to start reducing a gradient while backward still runs.
  // Within a recomputed block (checkpoint()), only the final accumulation counts. The hooks
  // run on the thread that called backward(), in the order they were added.
  void add_grad_ready_hook(std::function<void(const Tensor&)> hook) const;
  void clear_grad_ready_hooks() const;
  // Back-propagates from this tensor. grad: d(loss)/d(this); may be left out when numel() == 1.
  // What each node saved for backward is freed as soon as its backward has run, so that
  // memory falls during backward; retain_graph keeps it for another backward through the
  // same graph (a second backward through a freed graph throws reel::Error).
  void backward(const Tensor& grad = Tensor(), bool retain_graph = false) const;
  // Same storage, no history, requires_grad false.
  Tensor detach() const;
  // A copy of the data (differentiable).
  Tensor clone() const;
  const std::shared_ptr<Node>& grad_fn() const;

  // ---- in-place, never recorded (for optimizers and accumulation) ----
  // Throw when grad mode is on and this tensor requires grad. Each bumps the storage's version:
  // a tensor saved for backward and changed by one of these makes that backward throw.
  Tensor& fill_(float value);
  Tensor& add_(const Tensor& other, float alpha = 1.0f);  // other: same shape and device
  Tensor& mul_(float value);
  Tensor& copy_(const Tensor& src);  // src: same numel, any device

  std::string str() const;
  const std::shared_ptr<TensorImpl>& impl() const { return impl_; }
  // The storage's version counter (see Storage::version).
  uint64_t version() const;
  bool same_storage(const Tensor& other) const;

 private:
  std::shared_ptr<TensorImpl> impl_;
};

// Counts an in-place change of t's storage in its version (Storage::version), for changes made
// through data() by a kernel (BatchNorm's running statistics, an optimizer's step) rather than
// by Tensor's own in-place methods, which count themselves: a graph that saved t then refuses
// to run its backward on the changed values.
void mark_modified(const Tensor& t);

// (name, tensor) pairs in a meaningful order: Module::named_parameters(), an optimizer's
// parameter list.
using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

std::ostream& operator<<(std::ostream& os, const Tensor& t);

}  // namespace reel
