#pragma once
// LSTMCell and LSTM with PyTorch's parameters and names (weight_ih_l0, weight_hh_l0, bias_ih_l0,
// bias_hh_l0, ..._reverse), gate order i, f, g, o, and the equations of kernels/lstm_math.h.
//
// One layer and direction is one fused autograd op, lstm_layer(): one GEMM projects the input
// of all T steps; then per step one GEMM with W_hh and one fused pointwise kernel; its backward
// through time is written by hand (per step one pointwise kernel and one GEMM; the gradients of
// the input, W_ih and W_hh one GEMM each over all steps). lstm_layer_reference() is the same
// layer built from core's primitive ops and differentiated by autograd: the one to read first.
#include <cstdint>
#include <vector>

#include "reel/core/nn.h"  // dropout between layers
#include "reel/layers/module.h"

namespace reel {

// The values one layer and direction computed, for teaching and for `reel inspect`: the gate
// activations i, f, g, o and the state c, h of every step, each [T, B, H] in time order (for
// the reverse direction too). At steps past a clip's length the gates are 0 and c, h hold the
// state carried through them.
struct GateRecord {
  Tensor i, f, g, o, c, h;
};

struct LstmLayerOutput {
  Tensor out;  // [T, B, H], 0 at steps past a clip's length
  Tensor h_n;  // [B, H], the state after the last valid step of each clip
  Tensor c_n;  // [B, H]
};

// One LSTM layer in one direction over a time-major sequence, as one autograd node with three
// outputs. x: [T, B, D]; h0, c0: [B, H] or undefined (zeros); w_ih: [4H, D]; w_hh: [4H, H];
// b_ih, b_hh: [4H] or both undefined (no bias); lengths: [B] valid steps per clip (each in
// 1..T) or empty (all T); reverse: read the steps from last to first (each clip from its last
// valid step). record: when not null, receives the gate values.
LstmLayerOutput lstm_layer(const Tensor& x, const Tensor& h0, const Tensor& c0, const Tensor& w_ih,
                           const Tensor& w_hh, const Tensor& b_ih, const Tensor& b_hh,
                           const std::vector<int64_t>& lengths, bool reverse,
                           GateRecord* record = nullptr);

// The same layer from core's ops (linear, slice, sigmoid, tanh, mul, add): one autograd node
// per primitive, the reference that the fused op is tested against.
LstmLayerOutput lstm_layer_reference(const Tensor& x, const Tensor& h0, const Tensor& c0,
                                     const Tensor& w_ih, const Tensor& w_hh, const Tensor& b_ih,
                                     const Tensor& b_hh, const std::vector<int64_t>& lengths,
                                     bool reverse, GateRecord* record = nullptr);

struct LSTMOptions {
  int64_t input_size = 0;
  int64_t hidden_size = 0;
  int64_t num_layers = 1;
  bool bias = true;
  bool batch_first = false;  // as PyTorch: input [T, B, D] unless set
  float dropout = 0.0f;      // between layers, in training mode only
  bool bidirectional = false;
};

struct LstmOutput {
  Tensor output;  // [B, T, H * directions] (batch_first) or [T, B, H * directions]
  Tensor h_n;     // [num_layers * directions, B, H]
  Tensor c_n;     // [num_layers * directions, B, H]
};

class LSTM : public Module {
 public:
  // Parameters drawn uniformly from [-1/sqrt(H), 1/sqrt(H)] with reel's default generator, as
  // PyTorch initialises them.
  explicit LSTM(const LSTMOptions& options);

  // x: [B, T, D] (batch_first) or [T, B, D]. lengths: [B] valid steps (1..T) or empty.
  // h0, c0: [num_layers * directions, B, H] or undefined (zeros).
  LstmOutput forward(const Tensor& x, const std::vector<int64_t>& lengths = {},
                     const Tensor& h0 = Tensor(), const Tensor& c0 = Tensor());

  const LSTMOptions& options() const { return opts_; }
  // Build every layer from primitive ops instead of the fused op (slow; for study and tests).
  void set_reference(bool on) { reference_ = on; }
  // Record the gates of every layer and direction at the next forwards: gate_records()[layer *
  // directions + direction].
  void set_record_gates(bool on) { record_gates_ = on; }
  const std::vector<GateRecord>& gate_records() const { return records_; }

 private:
  LSTMOptions opts_;
  // [layer * directions + direction] -> {w_ih, w_hh, b_ih, b_hh}
  std::vector<std::vector<Tensor>> weights_;
  bool reference_ = false;
  bool record_gates_ = false;
  std::vector<GateRecord> records_;
};

// One step of one layer: (h, c) = cell(x, (h, c)), PyTorch's nn.LSTMCell (weight_ih, weight_hh,
// bias_ih, bias_hh), computed by the fused op over one step.
class LSTMCell : public Module {
 public:
  LSTMCell(int64_t input_size, int64_t hidden_size, bool bias = true);
  struct State {
    Tensor h, c;  // [B, H]
  };
  // x: [B, D]; state: h, c [B, H] or undefined (zeros).
  State forward(const Tensor& x, const State& state = State());

 private:
  int64_t input_size_, hidden_size_;
  Tensor w_ih_, w_hh_, b_ih_, b_hh_;
};

}  // namespace reel
