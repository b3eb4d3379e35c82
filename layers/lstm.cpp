#include "reel/layers/lstm.h"

#include <algorithm>
#include <cmath>
#include <memory>

#include "reel/core/allocator.h"
#include "reel/core/autograd.h"
#include "reel/core/dispatch.h"
#include "reel/core/nn.h"
#include "reel/core/ops.h"
#include "reel/core/random.h"
#include "reel/kernels/copy.h"
#include "reel/kernels/elementwise.h"
#include "reel/kernels/lstm.h"

namespace reel {

namespace {

using Grads = std::vector<Tensor>;

// Checks one layer's arguments; returns {T, B, D, H}.
std::vector<int64_t> check_layer(const char* op, const Tensor& x, const Tensor& h0,
                                 const Tensor& c0, const Tensor& w_ih, const Tensor& w_hh,
                                 const Tensor& b_ih, const Tensor& b_hh,
                                 const std::vector<int64_t>& lengths) {
  REEL_CHECK(x.defined() && x.dim() == 3,
             op << ": expected an input of shape [T, B, D], got "
                << (x.defined() ? shape_str(x.shape()) : std::string("an undefined tensor")));
  REEL_CHECK(w_ih.defined() && w_hh.defined() && w_ih.dim() == 2 && w_hh.dim() == 2,
             op << ": expected weights [4H, D] and [4H, H]");
  const int64_t T = x.size(0), B = x.size(1), D = x.size(2), H = w_hh.size(1);
  REEL_CHECK(T >= 1, op << ": the input " << shape_str(x.shape()) << " has no time step");
  REEL_CHECK(w_hh.size(0) == 4 * H,
             op << ": weight_hh " << shape_str(w_hh.shape()) << " is not [4H, H]");
  REEL_CHECK(w_ih.size(0) == 4 * H && w_ih.size(1) == D,
             op << ": input " << shape_str(x.shape()) << " and weight_ih "
                << shape_str(w_ih.shape()) << " do not fit (expected weight_ih [" << 4 * H << ", "
                << D << "] for input_size " << D << " and hidden_size " << H << ")");
  REEL_CHECK(b_ih.defined() == b_hh.defined(), op << ": give both biases or neither");
  if (b_ih.defined())
    REEL_CHECK(b_ih.shape() == Shape{4 * H} && b_hh.shape() == Shape{4 * H},
               op << ": biases " << shape_str(b_ih.shape()) << " and " << shape_str(b_hh.shape())
                  << " should be [" << 4 * H << "]");
  for (const Tensor* s : {&h0, &c0})
    if (s->defined())
      REEL_CHECK(s->shape() == (Shape{B, H}),
                 op << ": initial state " << shape_str(s->shape()) << " should be [" << B << ", "
                    << H << "] for batch " << B << " and hidden_size " << H);
  std::vector<const Tensor*> all{&x, &w_ih, &w_hh};
  for (const Tensor* t : {&h0, &c0, &b_ih, &b_hh})
    if (t->defined()) all.push_back(t);
  for (const Tensor* t : all)
    REEL_CHECK(t->device() == x.device(), op << ": expected every tensor on " << x.device().str()
                                             << ", got one on " << t->device().str());
  REEL_CHECK(lengths.empty() || static_cast<int64_t>(lengths.size()) == B,
             op << ": " << lengths.size() << " lengths for a batch of " << B);
  for (size_t b = 0; b < lengths.size(); ++b)
    REEL_CHECK(lengths[b] >= 1 && lengths[b] <= T, op << ": length " << lengths[b] << " of clip "
                                                      << b << " is outside 1.." << T
                                                      << " (the sequence has " << T << " steps)");
  return {T, B, D, H};
}

// Rows [t * B, (t + 1) * B) of a [T, B, K] buffer.
float* step(const Tensor& buf, int64_t t, int64_t B, int64_t K) { return buf.data() + t * B * K; }

// dst: [n] = src: [n], both on dev.
void copy_n(const Device& dev, const float* src, float* dst, int64_t n) {
  if (n == 0) return;
  const int64_t shape[1] = {n}, st[1] = {1};
  REEL_KERNEL(dev, strided_copy, src, st, dst, st, shape, 1);
}

// The clip lengths where the kernels read them: a typed buffer on the device (null: all T).
std::shared_ptr<Buffer> lengths_on(const Device& dev, const std::vector<int64_t>& lengths) {
  if (lengths.empty()) return nullptr;
  const std::size_t bytes = lengths.size() * sizeof(int64_t);
  auto buf = std::make_shared<Buffer>(bytes, dev);
  if (dev.is_cpu())
    std::copy(lengths.begin(), lengths.end(), static_cast<int64_t*>(buf->data()));
  else
    copy_to_device_async(dev, buf->data(), lengths.data(), bytes);
  return buf;
}

}  // namespace

LstmLayerOutput lstm_layer(const Tensor& x, const Tensor& h0, const Tensor& c0, const Tensor& w_ih,
                           const Tensor& w_hh, const Tensor& b_ih, const Tensor& b_hh,
                           const std::vector<int64_t>& lengths, bool reverse, GateRecord* record) {
  const auto dims = check_layer("lstm", x, h0, c0, w_ih, w_hh, b_ih, b_hh, lengths);
  const int64_t T = dims[0], B = dims[1], D = dims[2], H = dims[3];
  const Device dev = x.device();
  // Time-major buffers. gates: [T, B, 4H], the activations i, f, g, o of every step. State
  // slots hs, cs: [T + 1, B, H]: forward, slot t holds the state before time t and slot t + 1
  // the state after it; in reverse, slot t + 1 before and slot t after. Either way the states
  // before each time are T consecutive slots, which the W_hh gradient reads as one matrix.
  Tensor gates = Tensor::empty({T, B, 4 * H}, dev);
  Tensor hs = Tensor::empty({T + 1, B, H}, dev), cs = Tensor::empty({T + 1, B, H}, dev);
  Tensor out = Tensor::empty({T, B, H}, dev);
  const std::shared_ptr<Buffer> lens = lengths_on(dev, lengths);
  const int64_t* len_ptr = lens ? static_cast<const int64_t*>(lens->data()) : nullptr;
  const int64_t first = reverse ? T : 0, last = reverse ? 0 : T;
  {
    NoGradGuard guard;
    // gates = x W_ih^T + (b_ih + b_hh) for all T steps at once: bias rows, then one GEMM that
    // adds into them.
    float beta = 0.0f;
    if (b_ih.defined() && T * B > 0) {
      const Tensor bias = b_ih + b_hh;
      const int64_t shape2[2] = {T * B, 4 * H}, in_st[2] = {0, 1}, out_st[2] = {4 * H, 1};
      REEL_KERNEL(dev, strided_copy, bias.data(), in_st, gates.data(), out_st, shape2, 2);
      beta = 1.0f;
    }
    device_gemm(dev, false, true, T * B, 4 * H, D, 1.0f, x.data(), D, w_ih.data(), D, beta,
                gates.data(), 4 * H);
    if (h0.defined())
      copy_n(dev, h0.data(), step(hs, first, B, H), B * H);
    else if (B * H > 0)
      REEL_KERNEL(dev, fill, step(hs, first, B, H), 0.0f, B * H);
    if (c0.defined())
      copy_n(dev, c0.data(), step(cs, first, B, H), B * H);
    else if (B * H > 0)
      REEL_KERNEL(dev, fill, step(cs, first, B, H), 0.0f, B * H);
    // W_hh^T: [H, 4H], copied once so that each step's GEMM reads it row by row, as it is, rather
    // than packing a transposed W_hh again at every step.
    const Tensor w_hh_t = w_hh.transpose(0, 1);
    for (int64_t s = 0; s < T; ++s) {
      const int64_t t = reverse ? T - 1 - s : s;
      const int64_t before = reverse ? t + 1 : t, after = reverse ? t : t + 1;
      // gates[t] += h_before W_hh^T, then the fused pointwise step.
      device_gemm(dev, false, false, B, 4 * H, H, 1.0f, step(hs, before, B, H), H, w_hh_t.data(),
                  4 * H, 1.0f, step(gates, t, B, 4 * H), 4 * H);
      REEL_KERNEL(dev, lstm_cell_forward, step(gates, t, B, 4 * H), step(cs, before, B, H),
                  step(hs, before, B, H), step(cs, after, B, H), step(hs, after, B, H),
                  step(out, t, B, H), len_ptr, t, B, H);
    }
  }
  Tensor h_n = Tensor::empty({B, H}, dev), c_n = Tensor::empty({B, H}, dev);
  copy_n(dev, step(hs, last, B, H), h_n.data(), B * H);
  copy_n(dev, step(cs, last, B, H), c_n.data(), B * H);
  if (record) {
    NoGradGuard guard;
    record->i = gates.slice(2, 0, H);
    record->f = gates.slice(2, H, 2 * H);
    record->g = gates.slice(2, 2 * H, 3 * H);
    record->o = gates.slice(2, 3 * H, 4 * H);
    record->c = reverse ? cs.slice(0, 0, T) : cs.slice(0, 1, T + 1);  // the state after time t
    record->h = reverse ? hs.slice(0, 0, T) : hs.slice(0, 1, T + 1);
  }
  const std::vector<Tensor> inputs{x, h0, c0, w_ih, w_hh, b_ih, b_hh};
  if (!any_requires_grad(inputs)) return {out, h_n, c_n};

  auto node = reel::record("lstm", {out, h_n, c_n}, inputs);
  node->save(node->needs_grad(3) ? x : Tensor());     // 0: dW_ih reads the input
  node->save(node->needs_grad(0) ? w_ih : Tensor());  // 1: dx reads W_ih
  node->save(w_hh);                                   // 2
  node->save(gates);                                  // 3
  node->save(hs);                                     // 4
  node->save(cs);                                     // 5
  node->backward = [T, B, D, H, reverse, lens](Node& self, const Grads& g) {
    const Tensor xs = self.saved(0), wih = self.saved(1), whh = self.saved(2);
    const Tensor gates = self.saved(3), hs = self.saved(4), cs = self.saved(5);
    const Device dev = gates.device();
    const int64_t* len_ptr = lens ? static_cast<const int64_t*>(lens->data()) : nullptr;
    // dh, dc: [B, H], the gradients arriving at the state after the current step (at first
    // h_n's and c_n's). dG: [T, B, 4H], the pre-activation gradients of every step.
    Tensor dh = Tensor::empty({B, H}, dev), dc = Tensor::empty({B, H}, dev);
    if (g[1].defined())
      copy_n(dev, g[1].data(), dh.data(), B * H);
    else if (B * H > 0)
      REEL_KERNEL(dev, fill, dh.data(), 0.0f, B * H);
    if (g[2].defined())
      copy_n(dev, g[2].data(), dc.data(), B * H);
    else if (B * H > 0)
      REEL_KERNEL(dev, fill, dc.data(), 0.0f, B * H);
    Tensor dG = Tensor::empty({T, B, 4 * H}, dev);
    const float* dout = g[0].defined() ? g[0].data() : nullptr;
    for (int64_t s = T - 1; s >= 0; --s) {
      const int64_t t = reverse ? T - 1 - s : s;
      const int64_t before = reverse ? t + 1 : t, after = reverse ? t : t + 1;
      // dh becomes what an inactive row carries through; dc becomes dL/dc_before.
      REEL_KERNEL(dev, lstm_cell_backward, step(gates, t, B, 4 * H), step(cs, after, B, H),
                  step(cs, before, B, H), dh.data(), dout ? dout + t * B * H : nullptr, dc.data(),
                  step(dG, t, B, 4 * H), dh.data(), len_ptr, t, B, H);
      // dL/dh_before = dG[t] W_hh + the carried part (beta = 1: a sum inside this one op).
      device_gemm(dev, false, false, B, H, 4 * H, 1.0f, step(dG, t, B, 4 * H), 4 * H, whh.data(), H,
                  1.0f, dh.data(), H);
    }
    Grads grads(7);
    if (self.needs_grad(0)) {  // dx: [T*B, D] = dG [T*B, 4H] W_ih [4H, D]
      Tensor dx = Tensor::empty({T, B, D}, dev);
      device_gemm(dev, false, false, T * B, D, 4 * H, 1.0f, dG.data(), 4 * H, wih.data(), D, 0.0f,
                  dx.data(), D);
      grads[0] = dx;
    }
    if (self.needs_grad(1)) grads[1] = dh;
    if (self.needs_grad(2)) grads[2] = dc;
    if (self.needs_grad(3)) {  // dW_ih: [4H, D] = dG^T x, summed over all T*B rows in one GEMM
      Tensor dw = Tensor::empty({4 * H, D}, dev);
      device_gemm(dev, true, false, 4 * H, D, T * B, 1.0f, dG.data(), 4 * H, xs.data(), D, 0.0f,
                  dw.data(), D);
      grads[3] = dw;
    }
    if (self.needs_grad(4)) {  // dW_hh: [4H, H] = dG^T h_before, the T slots before each time
      Tensor dw = Tensor::empty({4 * H, H}, dev);
      const float* h_before = step(hs, reverse ? 1 : 0, B, H);
      device_gemm(dev, true, false, 4 * H, H, T * B, 1.0f, dG.data(), 4 * H, h_before, H, 0.0f,
                  dw.data(), H);
      grads[4] = dw;
    }
    if (self.needs_grad(5) || self.needs_grad(6)) {  // both biases: the column sums of dG
      Tensor db = sum_to(dG.reshape({T * B, 4 * H}), {1, 4 * H}).reshape({4 * H});
      if (self.needs_grad(5)) grads[5] = db;
      if (self.needs_grad(6)) grads[6] = self.needs_grad(5) ? db.clone() : db;
    }
    return grads;
  };
  return {out, h_n, c_n};
}

LstmLayerOutput lstm_layer_reference(const Tensor& x, const Tensor& h0, const Tensor& c0,
                                     const Tensor& w_ih, const Tensor& w_hh, const Tensor& b_ih,
                                     const Tensor& b_hh, const std::vector<int64_t>& lengths,
                                     bool reverse, GateRecord* record) {
  const auto dims = check_layer("lstm_reference", x, h0, c0, w_ih, w_hh, b_ih, b_hh, lengths);
  const int64_t T = dims[0], B = dims[1], H = dims[3];
  const Device dev = x.device();
  Tensor h = h0.defined() ? h0 : Tensor::zeros({B, H}, dev);
  Tensor c = c0.defined() ? c0 : Tensor::zeros({B, H}, dev);
  std::vector<Tensor> outs(static_cast<size_t>(T));
  std::vector<Tensor> ri, rf, rg, ro, rc, rh;
  for (int64_t s = 0; s < T; ++s) {
    const int64_t t = reverse ? T - 1 - s : s;
    const Tensor xt = x.slice(0, t, t + 1).reshape({B, -1});
    // The gate equations of kernels/lstm_math.h, one primitive op at a time.
    const Tensor a = linear(xt, w_ih, b_ih) + linear(h, w_hh, b_hh);  // [B, 4H]
    const Tensor i = sigmoid(a.slice(1, 0, H));
    const Tensor f = sigmoid(a.slice(1, H, 2 * H));
    const Tensor gg = tanh(a.slice(1, 2 * H, 3 * H));
    const Tensor o = sigmoid(a.slice(1, 3 * H, 4 * H));
    Tensor c_new = f * c + i * gg;
    Tensor h_new = o * tanh(c_new);
    Tensor out_t = h_new;
    Tensor mask;             // [B, 1]: 1 where the clip takes part in this step
    if (!lengths.empty()) {  // rows past their length keep the state and output 0
      std::vector<float> m(static_cast<size_t>(B));
      for (int64_t b = 0; b < B; ++b) m[static_cast<size_t>(b)] = t < lengths[b] ? 1.0f : 0.0f;
      mask = Tensor::from_vector(m, {B, 1}, dev);
      c_new = mask * c_new + (1.0f - mask) * c;
      h_new = mask * h_new + (1.0f - mask) * h;
      out_t = mask * out_t;
    }
    c = c_new;
    h = h_new;
    outs[static_cast<size_t>(t)] = out_t;
    if (record) {
      NoGradGuard guard;
      auto gate = [&mask](const Tensor& v) { return mask.defined() ? v * mask : v.detach(); };
      ri.push_back(gate(i));
      rf.push_back(gate(f));
      rg.push_back(gate(gg));
      ro.push_back(gate(o));
      rc.push_back(c.detach());
      rh.push_back(h.detach());
    }
  }
  if (record) {
    NoGradGuard guard;
    if (reverse)  // recorded in reading order: put them in time order
      for (auto* v : {&ri, &rf, &rg, &ro, &rc, &rh}) std::reverse(v->begin(), v->end());
    record->i = stack(ri, 0);
    record->f = stack(rf, 0);
    record->g = stack(rg, 0);
    record->o = stack(ro, 0);
    record->c = stack(rc, 0);
    record->h = stack(rh, 0);
  }
  return {stack(outs, 0), h, c};
}

// ---- modules ----

namespace {

Tensor init_uniform(const Shape& shape, int64_t hidden) {
  const float k = 1.0f / std::sqrt(static_cast<float>(hidden));
  return Tensor::uniform(shape, -k, k, default_generator());
}

}  // namespace

LSTM::LSTM(const LSTMOptions& o) : opts_(o) {
  REEL_CHECK(o.input_size > 0 && o.hidden_size > 0 && o.num_layers > 0,
             "LSTM: input_size, hidden_size and num_layers must be positive, got "
                 << o.input_size << ", " << o.hidden_size << ", " << o.num_layers);
  REEL_CHECK(o.dropout >= 0.0f && o.dropout < 1.0f,
             "LSTM: dropout " << o.dropout << " is outside [0, 1)");
  const int64_t H = o.hidden_size, dirs = o.bidirectional ? 2 : 1;
  for (int64_t l = 0; l < o.num_layers; ++l) {
    const int64_t in = l == 0 ? o.input_size : H * dirs;
    for (int64_t d = 0; d < dirs; ++d) {
      const std::string sfx = "_l" + std::to_string(l) + (d == 1 ? "_reverse" : "");
      std::vector<Tensor> w;
      w.push_back(register_parameter("weight_ih" + sfx, init_uniform({4 * H, in}, H)));
      w.push_back(register_parameter("weight_hh" + sfx, init_uniform({4 * H, H}, H)));
      if (o.bias) {
        w.push_back(register_parameter("bias_ih" + sfx, init_uniform({4 * H}, H)));
        w.push_back(register_parameter("bias_hh" + sfx, init_uniform({4 * H}, H)));
      } else {
        w.push_back(Tensor());
        w.push_back(Tensor());
      }
      weights_.push_back(w);
    }
  }
}

LstmOutput LSTM::forward(const Tensor& x, const std::vector<int64_t>& lengths, const Tensor& h0,
                         const Tensor& c0) {
  const int64_t dirs = opts_.bidirectional ? 2 : 1, L = opts_.num_layers, H = opts_.hidden_size;
  REEL_CHECK(x.defined() && x.dim() == 3,
             "LSTM: expected an input of shape "
                 << (opts_.batch_first ? "[B, T, input_size]" : "[T, B, input_size]") << ", got "
                 << (x.defined() ? shape_str(x.shape()) : std::string("an undefined tensor")));
  REEL_CHECK(x.size(2) == opts_.input_size,
             "LSTM: input " << shape_str(x.shape()) << " has " << x.size(2)
                            << " features in its last dimension, expected input_size "
                            << opts_.input_size);
  const Tensor xt = opts_.batch_first ? x.transpose(0, 1) : x;  // [T, B, D]
  const int64_t B = xt.size(1);
  for (const Tensor* s : {&h0, &c0})
    if (s->defined())
      REEL_CHECK(s->shape() == (Shape{L * dirs, B, H}),
                 "LSTM: initial state " << shape_str(s->shape()) << " should be [" << L * dirs
                                        << ", " << B << ", " << H << "]");
  records_.clear();
  Tensor input = xt;
  std::vector<Tensor> hn, cn;
  for (int64_t l = 0; l < L; ++l) {
    std::vector<Tensor> outs;
    for (int64_t d = 0; d < dirs; ++d) {
      const std::vector<Tensor>& w = weights_[static_cast<size_t>(l * dirs + d)];
      const int64_t k = l * dirs + d;
      const Tensor h = h0.defined() ? h0.slice(0, k, k + 1).reshape({B, H}) : Tensor();
      const Tensor c = c0.defined() ? c0.slice(0, k, k + 1).reshape({B, H}) : Tensor();
      GateRecord rec;
      GateRecord* r = record_gates_ ? &rec : nullptr;
      const LstmLayerOutput y =
          reference_ ? lstm_layer_reference(input, h, c, w[0], w[1], w[2], w[3], lengths, d == 1, r)
                     : lstm_layer(input, h, c, w[0], w[1], w[2], w[3], lengths, d == 1, r);
      if (r) records_.push_back(rec);
      outs.push_back(y.out);
      hn.push_back(y.h_n);
      cn.push_back(y.c_n);
    }
    input = dirs == 1 ? outs[0] : concat(outs, 2);
    if (l + 1 < L && opts_.dropout > 0.0f) input = dropout(input, opts_.dropout, is_training());
  }
  return {opts_.batch_first ? input.transpose(0, 1) : input, stack(hn, 0), stack(cn, 0)};
}

LSTMCell::LSTMCell(int64_t input_size, int64_t hidden_size, bool bias)
    : input_size_(input_size), hidden_size_(hidden_size) {
  REEL_CHECK(input_size > 0 && hidden_size > 0,
             "LSTMCell: input_size and hidden_size must be positive, got " << input_size << ", "
                                                                           << hidden_size);
  const int64_t H = hidden_size;
  w_ih_ = register_parameter("weight_ih", init_uniform({4 * H, input_size}, H));
  w_hh_ = register_parameter("weight_hh", init_uniform({4 * H, H}, H));
  if (bias) {
    b_ih_ = register_parameter("bias_ih", init_uniform({4 * H}, H));
    b_hh_ = register_parameter("bias_hh", init_uniform({4 * H}, H));
  }
}

LSTMCell::State LSTMCell::forward(const Tensor& x, const State& state) {
  REEL_CHECK(x.defined() && x.dim() == 2 && x.size(1) == input_size_,
             "LSTMCell: expected an input of shape [B, "
                 << input_size_ << "], got "
                 << (x.defined() ? shape_str(x.shape()) : std::string("none")));
  const int64_t B = x.size(0);
  REEL_CHECK(state.h.defined() == state.c.defined(),
             "LSTMCell: give both h and c of the state, or neither");
  const LstmLayerOutput y = lstm_layer(x.reshape({1, B, input_size_}), state.h, state.c, w_ih_,
                                       w_hh_, b_ih_, b_hh_, {}, false);
  return {y.h_n, y.c_n};
}

}  // namespace reel
