#include "reel/core/tensor.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <ostream>
#include <sstream>

#include "reel/core/allocator.h"
#include "reel/core/autograd.h"
#include "reel/core/dispatch.h"
#include "reel/core/ops.h"
#include "reel/core/random.h"
#include "reel/kernels/cuda/runtime.h"
#include "reel/kernels/elementwise.h"

namespace reel {

std::string shape_str(const Shape& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

int64_t shape_numel(const Shape& shape) {
  return shape_product(shape.data(), static_cast<int>(shape.size()));
}

Storage::Storage(int64_t n, Device dev, bool pin) : numel(n), device(dev), pinned(pin) {
  const std::size_t bytes = static_cast<std::size_t>(n) * sizeof(float);
  REEL_CHECK(!pinned || device.is_cpu(), "pinned memory is host memory, not " << device.str());
  if (pinned)
    data = static_cast<float*>(pinned_allocate(bytes));
  else if (device.is_cpu())
    data = static_cast<float*>(cpu_allocate(bytes));
  else if (bytes > 0)
    data = static_cast<float*>(device_allocate(device, bytes));
}

Storage::~Storage() {
  const std::size_t bytes = static_cast<std::size_t>(numel) * sizeof(float);
  if (pinned)
    pinned_release(data, bytes);
  else if (device.is_cpu())
    cpu_release(data, bytes);
  else
    device_release(device, data, bytes);
}

void check_shape(const char* op, const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    REEL_CHECK(d >= 0, op << ": invalid shape " << shape_str(shape) << " (extents must be >= 0)");
    const bool overflow = __builtin_mul_overflow(n, d, &n);
    REEL_CHECK(!overflow && n <= std::numeric_limits<int64_t>::max() / 8,
               op << ": shape " << shape_str(shape) << " has too many elements to address");
  }
}

namespace {

// Fills a host buffer and moves it to `device` (the CPU path writes in place).
template <class Fill>
Tensor make_filled(const char* op, const Shape& shape, Device device, Fill&& fill) {
  check_shape(op, shape);
  if (device.is_cpu()) {
    Tensor t = Tensor::empty(shape, device);
    fill(t.data(), t.numel());
    return t;
  }
  check_device_usable(device);
  Tensor host = Tensor::empty(shape);
  fill(host.data(), host.numel());
  return host.to(device);
}

void check_in_place(const char* op, const Tensor& t) {
  REEL_CHECK(t.defined(), op << ": called on an undefined tensor");
  REEL_CHECK(!(grad_mode_enabled() && t.requires_grad()),
             op << ": in-place change of a tensor that requires grad while grad mode is on "
                   "(wrap it in NoGradGuard, as optimizers do)");
}

}  // namespace

void mark_modified(const Tensor& t) { ++t.impl()->storage->version; }

Tensor Tensor::empty(const Shape& shape, Device device) {
  check_shape("empty", shape);
  check_device_usable(device);
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>(shape_numel(shape), device);
  impl->shape = shape;
  return Tensor(impl);
}

Tensor Tensor::empty_pinned(const Shape& shape) {
  check_shape("empty_pinned", shape);
  REEL_CHECK(cuda::available(),
             "empty_pinned: pinned memory needs a CUDA device, and none is "
             "available here");
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>(shape_numel(shape), Device::cpu(), true);
  impl->shape = shape;
  return Tensor(impl);
}

bool Tensor::is_pinned() const { return defined() && impl_->storage->pinned; }

Tensor Tensor::pin_memory() const {
  REEL_CHECK(defined(), "pin_memory: called on an undefined tensor");
  REEL_CHECK(device().is_cpu(),
             "pin_memory: the tensor is on " << device().str() << ", expected cpu");
  if (is_pinned()) return *this;
  Tensor out = empty_pinned(shape());
  NoGradGuard guard;
  out.copy_(*this);
  return out;
}

Tensor Tensor::zeros(const Shape& shape, Device device) { return full(shape, 0.0f, device); }
Tensor Tensor::ones(const Shape& shape, Device device) { return full(shape, 1.0f, device); }

Tensor Tensor::full(const Shape& shape, float value, Device device) {
  check_shape("full", shape);
  Tensor t = empty(shape, device);
  REEL_KERNEL(device, fill, t.data(), value, t.numel());
  return t;
}

Tensor Tensor::scalar(float value, Device device) { return full({}, value, device); }

Tensor Tensor::arange(float start, float end, float step, Device device) {
  REEL_CHECK(step != 0.0f && std::isfinite(start) && std::isfinite(end) && std::isfinite(step),
             "arange: expected finite start, end and a non-zero step, got start "
                 << start << ", end " << end << ", step " << step);
  const double span = (static_cast<double>(end) - start) / step;
  REEL_CHECK(span < 0x1p62, "arange: " << span << " values from start " << start << " to end "
                                       << end << " in steps of " << step << " are too many");
  const int64_t n = span > 0 ? static_cast<int64_t>(std::ceil(span)) : 0;
  return make_filled("arange", {n}, device, [start, step](float* p, int64_t count) {
    for (int64_t i = 0; i < count; ++i) p[i] = start + static_cast<float>(i) * step;
  });
}

Tensor Tensor::from_vector(const std::vector<float>& values, const Shape& shape, Device device) {
  check_shape("from_vector", shape);
  REEL_CHECK(static_cast<int64_t>(values.size()) == shape_numel(shape),
             "from_vector: " << values.size() << " values for shape " << shape_str(shape)
                             << " (expected " << shape_numel(shape) << ")");
  return make_filled("from_vector", shape, device, [&values](float* p, int64_t n) {
    if (n > 0) std::memcpy(p, values.data(), static_cast<std::size_t>(n) * sizeof(float));
  });
}

Tensor Tensor::uniform(const Shape& shape, float low, float high, Generator& gen, Device device) {
  REEL_CHECK(low <= high, "uniform: low " << low << " is greater than high " << high);
  return make_filled("uniform", shape, device, [&](float* p, int64_t n) {
    for (int64_t i = 0; i < n; ++i) p[i] = low + (high - low) * gen.uniform();
  });
}

Tensor Tensor::normal(const Shape& shape, float mean, float std, Generator& gen, Device device) {
  REEL_CHECK(std >= 0.0f, "normal: std must be >= 0, got " << std);
  return make_filled("normal", shape, device, [&](float* p, int64_t n) {
    for (int64_t i = 0; i < n; ++i) p[i] = mean + std * gen.normal();
  });
}

const Shape& Tensor::shape() const {
  REEL_CHECK(defined(), "shape: called on an undefined tensor");
  return impl_->shape;
}

int64_t Tensor::size(int64_t d) const {
  const int64_t r = dim();
  REEL_CHECK(d >= -r && d < r, "size: dimension " << d << " is out of range for a tensor of shape "
                                                  << shape_str(shape()));
  return impl_->shape[d < 0 ? d + r : d];
}

int64_t Tensor::numel() const { return shape_numel(shape()); }

Device Tensor::device() const {
  REEL_CHECK(defined(), "device: called on an undefined tensor");
  return impl_->storage->device;
}

float* Tensor::data() const {
  REEL_CHECK(defined(), "data: called on an undefined tensor");
  return impl_->storage->data;
}

void Tensor::copy_from_host(const float* src, int64_t n) {
  REEL_CHECK(defined(), "copy_from_host: called on an undefined tensor");
  REEL_CHECK(n == numel(), "copy_from_host: " << n << " values for a tensor of shape "
                                              << shape_str(shape()) << " (expected " << numel()
                                              << ")");
  mark_modified(*this);
  if (n == 0) return;
  const std::size_t bytes = static_cast<std::size_t>(n) * sizeof(float);
  if (device().is_cpu()) {
    std::memcpy(data(), src, bytes);
    return;
  }
  cuda::copy_host_to_device(device().index, data(), src, bytes);
}

void Tensor::copy_to_host(float* dst, int64_t n) const {
  REEL_CHECK(n == numel(), "copy_to_host: room for " << n << " values for a tensor of shape "
                                                     << shape_str(shape()) << " (expected "
                                                     << numel() << ")");
  if (n == 0) return;
  const std::size_t bytes = static_cast<std::size_t>(n) * sizeof(float);
  if (device().is_cpu()) {
    std::memcpy(dst, data(), bytes);
    return;
  }
  cuda::copy_device_to_host(device().index, dst, data(), bytes);
}

std::vector<float> Tensor::to_vector() const {
  std::vector<float> v(static_cast<std::size_t>(numel()));
  copy_to_host(v.data(), numel());
  return v;
}

Tensor Tensor::to(Device target, bool non_blocking) const {
  REEL_CHECK(defined(), "to: called on an undefined tensor");
  if (device() == target) return *this;
  Tensor out = empty(shape(), target);
  if (non_blocking && is_pinned() && target.is_cuda() && numel() > 0) {
    cuda::copy_host_to_device_async(target.index, out.data(), data(),
                                    static_cast<std::size_t>(numel()) * sizeof(float));
    pinned_record_use(data(), cuda::record_event(target.index));
  } else {
    NoGradGuard guard;
    out.copy_(*this);
  }
  if (any_requires_grad({this})) {
    auto node = record("to", out, {*this});
    const Device source = device();
    node->backward = [source](Node&, const std::vector<Tensor>& g) {
      return std::vector<Tensor>{g[0].to(source)};
    };
  }
  return out;
}

float Tensor::item() const {
  REEL_CHECK(defined(), "item: called on an undefined tensor");
  REEL_CHECK(numel() == 1, "item: expected a tensor with one element, got shape "
                               << shape_str(shape()) << " (" << numel() << " elements)");
  float v = 0.0f;
  copy_to_host(&v, 1);
  return v;
}

float Tensor::at(const std::vector<int64_t>& index) const {
  REEL_CHECK(static_cast<int64_t>(index.size()) == dim(),
             "at: " << index.size() << " indices for a tensor of shape " << shape_str(shape()));
  int64_t flat = 0;
  for (int64_t d = 0; d < dim(); ++d) {
    REEL_CHECK(index[d] >= 0 && index[d] < shape()[d],
               "at: index " << index[d] << " is out of range for dimension " << d << " of "
                            << shape_str(shape()));
    flat = flat * shape()[d] + index[d];
  }
  if (device().is_cpu()) return data()[flat];
  return to_vector()[static_cast<std::size_t>(flat)];
}

Tensor Tensor::reshape(const Shape& s) const { return reel::reshape(*this, s); }
Tensor Tensor::transpose(int64_t d0, int64_t d1) const { return reel::transpose(*this, d0, d1); }
Tensor Tensor::permute(const std::vector<int64_t>& dims) const {
  return reel::permute(*this, dims);
}
Tensor Tensor::slice(int64_t d, int64_t start, int64_t end, int64_t step) const {
  return reel::slice(*this, d, start, end, step);
}
Tensor Tensor::sum(const std::vector<int64_t>& dims, bool keepdim) const {
  return reel::sum(*this, dims, keepdim);
}
Tensor Tensor::mean(const std::vector<int64_t>& dims, bool keepdim) const {
  return reel::mean(*this, dims, keepdim);
}

bool Tensor::requires_grad() const { return defined() && impl_->requires_grad; }

Tensor& Tensor::requires_grad_(bool value) {
  REEL_CHECK(defined(), "requires_grad_: called on an undefined tensor");
  REEL_CHECK(is_leaf(), "requires_grad_: only a leaf's flag can be set; this tensor was made by "
                            << impl_->grad_fn->name << " (use detach() first)");
  impl_->requires_grad = value;
  return *this;
}

bool Tensor::is_leaf() const { return defined() && impl_->grad_fn == nullptr; }

Tensor Tensor::grad() const {
  REEL_CHECK(defined(), "grad: called on an undefined tensor");
  return Tensor(impl_->grad);
}

void Tensor::set_grad(const Tensor& g) const {
  REEL_CHECK(defined(), "set_grad: called on an undefined tensor");
  REEL_CHECK(!g.defined() || (g.shape() == shape() && g.device() == device()),
             "set_grad: gradient of shape " << shape_str(g.shape()) << " on " << g.device().str()
                                            << " for a tensor of shape " << shape_str(shape())
                                            << " on " << device().str());
  impl_->grad = g.impl();
}

void Tensor::zero_grad(bool set_to_none) const {
  REEL_CHECK(defined(), "zero_grad: called on an undefined tensor");
  if (set_to_none || !impl_->grad) {
    impl_->grad.reset();
    return;
  }
  NoGradGuard guard;
  Tensor(impl_->grad).fill_(0.0f);
}

void Tensor::add_grad_ready_hook(std::function<void(const Tensor&)> hook) const {
  REEL_CHECK(defined() && is_leaf() && requires_grad(),
             "add_grad_ready_hook: the tensor must be a leaf that requires grad");
  if (!impl_->grad_ready_hooks)
    impl_->grad_ready_hooks = std::make_shared<std::vector<std::function<void(const Tensor&)>>>();
  impl_->grad_ready_hooks->push_back(std::move(hook));
}

void Tensor::clear_grad_ready_hooks() const {
  if (defined()) impl_->grad_ready_hooks.reset();
}

void Tensor::retain_grad() const {
  REEL_CHECK(requires_grad(), "retain_grad: the tensor does not require grad");
  impl_->retains_grad = true;
}

void Tensor::backward(const Tensor& g, bool retain_graph) const {
  REEL_CHECK(defined(), "backward: called on an undefined tensor");
  REEL_CHECK(requires_grad(), "backward: the tensor of shape "
                                  << shape_str(shape())
                                  << " does not require grad and has no grad_fn");
  Tensor seed = g;
  if (!seed.defined()) {
    REEL_CHECK(numel() == 1,
               "backward: a gradient can be created implicitly only for a "
               "one-element output, got shape "
                   << shape_str(shape()) << "; pass grad explicitly");
    seed = full(shape(), 1.0f, device());
  }
  REEL_CHECK(seed.shape() == shape() && seed.device() == device(),
             "backward: gradient of shape " << shape_str(seed.shape()) << " on "
                                            << seed.device().str() << " for an output of shape "
                                            << shape_str(shape()) << " on " << device().str());
  run_backward(*this, seed, retain_graph);
}

Tensor Tensor::detach() const {
  REEL_CHECK(defined(), "detach: called on an undefined tensor");
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = impl_->storage;
  impl->shape = impl_->shape;
  return Tensor(impl);
}

Tensor Tensor::clone() const {
  REEL_CHECK(defined(), "clone: called on an undefined tensor");
  Tensor out = empty(shape(), device());
  {
    NoGradGuard guard;
    out.copy_(*this);
  }
  if (any_requires_grad({this})) {
    auto node = record("clone", out, {*this});
    node->backward = [](Node&, const std::vector<Tensor>& g) { return std::vector<Tensor>{g[0]}; };
  }
  return out;
}

const std::shared_ptr<Node>& Tensor::grad_fn() const {
  REEL_CHECK(defined(), "grad_fn: called on an undefined tensor");
  return impl_->grad_fn;
}

Tensor& Tensor::fill_(float value) {
  check_in_place("fill_", *this);
  mark_modified(*this);
  REEL_KERNEL(device(), fill, data(), value, numel());
  return *this;
}

Tensor& Tensor::add_(const Tensor& other, float alpha) {
  check_in_place("add_", *this);
  REEL_CHECK(other.defined() && other.shape() == shape() && other.device() == device(),
             "add_: expected a tensor of shape "
                 << shape_str(shape()) << " on " << device().str() << ", got "
                 << (other.defined() ? shape_str(other.shape()) + " on " + other.device().str()
                                     : std::string("an undefined tensor")));
  mark_modified(*this);
  REEL_KERNEL(device(), axpy, alpha, other.data(), data(), numel());
  return *this;
}

Tensor& Tensor::mul_(float value) {
  check_in_place("mul_", *this);
  mark_modified(*this);
  REEL_KERNEL(device(), scale, value, data(), numel());
  return *this;
}

Tensor& Tensor::copy_(const Tensor& src) {
  check_in_place("copy_", *this);
  REEL_CHECK(src.defined() && src.numel() == numel(),
             "copy_: source of shape " << (src.defined() ? shape_str(src.shape()) : "undefined")
                                       << " for a tensor of shape " << shape_str(shape()));
  mark_modified(*this);
  const std::size_t bytes = static_cast<std::size_t>(numel()) * sizeof(float);
  if (bytes == 0 || src.data() == data()) return *this;
  const Device sd = src.device(), dd = device();
  if (sd.is_cpu() && dd.is_cpu())
    std::memcpy(data(), src.data(), bytes);
  else if (sd.is_cpu())
    cuda::copy_host_to_device(dd.index, data(), src.data(), bytes);
  else if (dd.is_cpu())
    cuda::copy_device_to_host(sd.index, data(), src.data(), bytes);
  else if (sd == dd)
    cuda::copy_device_to_device(dd.index, data(), src.data(), bytes);
  else  // between two GPUs: through the host
    copy_(src.to(Device::cpu()));
  return *this;
}

uint64_t Tensor::version() const {
  REEL_CHECK(defined(), "version: called on an undefined tensor");
  return impl_->storage->version;
}

bool Tensor::same_storage(const Tensor& other) const {
  return defined() && other.defined() && impl_->storage == other.impl_->storage;
}

namespace {

void print_values(std::ostream& os, const std::vector<float>& v, const Shape& shape, size_t dim,
                  int64_t offset, int indent) {
  constexpr int64_t kEdge = 3;  // values shown at each end of a long dimension
  const int64_t n = shape[dim];
  int64_t stride = 1;
  for (size_t d = dim + 1; d < shape.size(); ++d) stride *= shape[d];
  os << "[";
  for (int64_t i = 0; i < n; ++i) {
    if (n > 2 * kEdge && i == kEdge) {
      os << "...";
      i = n - kEdge - 1;
      os << (dim + 1 == shape.size() ? ", " : ",\n" + std::string(indent + 1, ' '));
      continue;
    }
    if (dim + 1 == shape.size()) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.4f", v[static_cast<size_t>(offset + i)]);
      os << buf;
    } else {
      print_values(os, v, shape, dim + 1, offset + i * stride, indent + 1);
    }
    if (i + 1 < n) os << (dim + 1 == shape.size() ? ", " : ",\n" + std::string(indent + 1, ' '));
  }
  os << "]";
}

}  // namespace

std::string Tensor::str() const {
  std::ostringstream os;
  os << *this;
  return os.str();
}

std::ostream& operator<<(std::ostream& os, const Tensor& t) {
  if (!t.defined()) return os << "tensor(undefined)";
  const std::vector<float> v = t.to_vector();
  os << "tensor(";
  if (t.dim() == 0) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.4f", v[0]);
    os << buf;
  } else if (t.numel() == 0) {
    os << "[]";
  } else {
    print_values(os, v, t.shape(), 0, 0, 7);
  }
  os << ", shape=" << shape_str(t.shape());
  if (!t.device().is_cpu()) os << ", device=" << t.device().str();
  if (t.grad_fn())
    os << ", grad_fn=" << t.grad_fn()->name;
  else if (t.requires_grad())
    os << ", requires_grad=true";
  return os << ")";
}

}  // namespace reel
