// The LSTM: the fused op and the one built from primitive ops, both against PyTorch's nn.LSTM
// (tests/reference/lstm.safetensors, made by tests/reference/make_fixtures.py in float64), and
// against each other; variable lengths, bidirectional, initial states, gate records, LSTMCell,
// dropout and the errors for bad input.
#include <cmath>
#include <map>

#include "../test_util.h"
#include "reel/layers/lstm.h"

using namespace reel;
using reel::test::check_gradients;
using reel::test::leaf;

namespace {

const TensorMap& fixtures() {
  static const TensorMap m = load_safetensors(REEL_SOURCE_DIR "/tests/reference/lstm.safetensors");
  return m;
}

// Outputs within 1e-5 and gradients within 1e-4, relative on a scale of at least 1: float32
// against float64 through up to 33 steps and two layers.
using reel::test::check_close;

struct Case {
  const char* name;
  int64_t D, H, L;
  bool bidirectional, bias;
};

const Case kCases[] = {
    {"one_layer", 5, 7, 1, false, true},
    {"two_layers_state_T33", 6, 5, 2, false, true},
    {"bidirectional_T1", 3, 4, 1, true, true},
    {"bidirectional_two_layers_lengths", 4, 3, 2, true, true},
    {"lengths", 3, 5, 1, false, true},
    {"no_bias", 4, 3, 1, false, false},
};

void run_against_pytorch(const Case& c, bool reference) {
  const TensorMap& f = fixtures();
  const std::string n = c.name;
  INFO(n << (reference ? " (primitive ops)" : " (fused)"));
  LSTMOptions o;
  o.input_size = c.D;
  o.hidden_size = c.H;
  o.num_layers = c.L;
  o.bidirectional = c.bidirectional;
  o.bias = c.bias;
  o.batch_first = true;
  LSTM lstm(o);
  lstm.set_reference(reference);
  TensorMap params;
  for (const auto& [k, v] : f)
    if (k.rfind(n + ".p.", 0) == 0) params[k.substr(n.size() + 3)] = v;
  lstm.load_state_dict(params);
  Tensor x = f.at(n + ".input").clone();
  x.requires_grad_();
  Tensor h0, c0;
  if (f.count(n + ".h0")) {
    h0 = f.at(n + ".h0").clone();
    c0 = f.at(n + ".c0").clone();
    h0.requires_grad_();
    c0.requires_grad_();
  }
  std::vector<int64_t> lengths;
  if (f.count(n + ".lengths"))
    for (float v : f.at(n + ".lengths").to_vector()) lengths.push_back(static_cast<int64_t>(v));
  const LstmOutput y = lstm.forward(x, lengths, h0, c0);
  check_close(y.output, f.at(n + ".output"), 1e-5f, "output");
  check_close(y.h_n, f.at(n + ".h_n"), 1e-5f, "h_n");
  check_close(y.c_n, f.at(n + ".c_n"), 1e-5f, "c_n");
  Tensor loss = (y.output * f.at(n + ".g_output")).sum() + (y.h_n * f.at(n + ".g_h_n")).sum() +
                (y.c_n * f.at(n + ".g_c_n")).sum();
  loss.backward();
  check_close(x.grad(), f.at(n + ".grad.input"), 1e-4f, "grad input");
  if (h0.defined()) {
    check_close(h0.grad(), f.at(n + ".grad.h0"), 1e-4f, "grad h0");
    check_close(c0.grad(), f.at(n + ".grad.c0"), 1e-4f, "grad c0");
  }
  for (const auto& [name, p] : lstm.named_parameters())
    check_close(p.grad(), f.at(n + ".grad." + name), 1e-4f, "grad " + name);
}

}  // namespace

TEST_CASE("the fused LSTM equals PyTorch's nn.LSTM: outputs, states and every gradient") {
  for (const Case& c : kCases) run_against_pytorch(c, false);
}

TEST_CASE("the LSTM built from primitive ops equals PyTorch's nn.LSTM too") {
  for (const Case& c : kCases) run_against_pytorch(c, true);
}

TEST_CASE("parameters have PyTorch's names, shapes and order") {
  LSTMOptions o;
  o.input_size = 3;
  o.hidden_size = 4;
  o.num_layers = 2;
  o.bidirectional = true;
  LSTM lstm(o);
  std::vector<std::string> names;
  for (const auto& [n, p] : lstm.named_parameters()) names.push_back(n);
  CHECK(names == std::vector<std::string>{
                     "weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0",
                     "weight_ih_l0_reverse", "weight_hh_l0_reverse", "bias_ih_l0_reverse",
                     "bias_hh_l0_reverse", "weight_ih_l1", "weight_hh_l1", "bias_ih_l1",
                     "bias_hh_l1", "weight_ih_l1_reverse", "weight_hh_l1_reverse",
                     "bias_ih_l1_reverse", "bias_hh_l1_reverse"});
  const TensorMap sd = lstm.state_dict();
  CHECK(sd.at("weight_ih_l0").shape() == Shape{16, 3});
  CHECK(sd.at("weight_ih_l1").shape() == Shape{16, 8});  // two directions in
  CHECK(sd.at("weight_hh_l1_reverse").shape() == Shape{16, 4});
  // Uniform in [-1/sqrt(H), 1/sqrt(H)] = [-0.5, 0.5].
  for (float v : sd.at("weight_hh_l0").to_vector()) CHECK(std::fabs(v) <= 0.5f);
}

TEST_CASE("lstm_layer: gradients by finite differences, forward and reverse, with lengths") {
  for (bool reverse : {false, true}) {
    for (bool with_lengths : {false, true}) {
      INFO("reverse " << reverse << ", lengths " << with_lengths);
      const std::vector<int64_t> lengths =
          with_lengths ? std::vector<int64_t>{3, 1, 2} : std::vector<int64_t>{};
      check_gradients(
          [&](const std::vector<Tensor>& v) {
            const LstmLayerOutput y =
                lstm_layer(v[0], v[1], v[2], v[3], v[4], v[5], v[6], lengths, reverse);
            return y.out.sum() + (y.h_n * 2.0f).sum() + (y.c_n * y.c_n).sum();
          },
          {leaf({3, 3, 2}, 1), leaf({3, 4}, 2), leaf({3, 4}, 3), leaf({16, 2}, 4, 0.5f),
           leaf({16, 4}, 5, 0.5f), leaf({16}, 6), leaf({16}, 7)});
    }
  }
}

TEST_CASE("the gate records are the values the computation used") {
  LSTMOptions o;
  o.input_size = 3;
  o.hidden_size = 5;
  o.bidirectional = true;
  o.batch_first = true;
  LSTM lstm(o);
  const Tensor x = leaf({2, 4, 3}, 10);
  const std::vector<int64_t> lengths{4, 2};
  lstm.set_record_gates(true);
  const LstmOutput fused = lstm.forward(x, lengths);
  const std::vector<GateRecord> a = lstm.gate_records();
  lstm.set_reference(true);
  const LstmOutput slow = lstm.forward(x, lengths);
  const std::vector<GateRecord> b = lstm.gate_records();
  REQUIRE(a.size() == 2);
  REQUIRE(b.size() == 2);
  for (size_t d = 0; d < 2; ++d) {
    INFO("direction " << d);
    CHECK(a[d].i.shape() == Shape{4, 2, 5});
    // Past clip 1's length (2 steps) its gates are 0 and its state is carried, in both.
    for (const auto& [ga, gb, what] :
         {std::make_tuple(a[d].i, b[d].i, "i"), std::make_tuple(a[d].f, b[d].f, "f"),
          std::make_tuple(a[d].g, b[d].g, "g"), std::make_tuple(a[d].o, b[d].o, "o"),
          std::make_tuple(a[d].c, b[d].c, "c"), std::make_tuple(a[d].h, b[d].h, "h")})
      check_close(ga, gb, 1e-5f, what);
    for (float v : a[d].i.slice(0, 2, 4).slice(1, 1, 2).to_vector()) CHECK(v == 0.0f);
    // Forward, the state after step 1 is carried through steps 2 and 3; in reverse, clip 1
    // starts at step 1, so steps 3 and 2 hold the initial state (0) carried.
    check_close(a[d].c.slice(0, 2, 3).slice(1, 1, 2),
                a[d].c.slice(0, d == 0 ? 1 : 3, d == 0 ? 2 : 4).slice(1, 1, 2), 0.0f, "carried c");
  }
  // h is the output where the clip is active.
  check_close(a[0].h.transpose(0, 1).slice(0, 0, 1), fused.output.slice(2, 0, 5).slice(0, 0, 1),
              1e-6f, "h = output");
  check_close(fused.output, slow.output, 1e-5f, "fused = slow");
}

TEST_CASE("fused and primitive-op layers give the same gradients, directly compared") {
  LSTMOptions o;
  o.input_size = 4;
  o.hidden_size = 6;
  o.num_layers = 2;
  o.bidirectional = true;
  o.batch_first = true;
  LSTM lstm(o);
  const Tensor x = leaf({3, 7, 4}, 30), h0 = leaf({4, 3, 6}, 31), c0 = leaf({4, 3, 6}, 32);
  const std::vector<int64_t> lengths{7, 3, 5};
  std::map<std::string, std::vector<float>> grads[2];
  for (int slow = 0; slow < 2; ++slow) {
    lstm.set_reference(slow == 1);
    lstm.zero_grad();
    for (const Tensor* t : {&x, &h0, &c0}) t->zero_grad();
    const LstmOutput y = lstm.forward(x, lengths, h0, c0);
    (y.output.sum() + (y.h_n * y.h_n).sum() + y.c_n.sum()).backward();
    for (const auto& [n, p] : lstm.named_parameters()) grads[slow][n] = p.grad().to_vector();
    grads[slow]["input"] = x.grad().to_vector();
    grads[slow]["h0"] = h0.grad().to_vector();
    grads[slow]["c0"] = c0.grad().to_vector();
  }
  for (const auto& [n, g] : grads[0]) {
    INFO(n);
    const std::vector<float>& r = grads[1].at(n);
    REQUIRE(g.size() == r.size());
    for (size_t i = 0; i < g.size(); ++i)
      CHECK(g[i] == doctest::Approx(r[i]).epsilon(1e-5).scale(1.0));
  }
}

TEST_CASE("LSTMCell is one step of the layer") {
  LSTMCell cell(3, 4);
  const Tensor x = leaf({2, 3}, 20);
  const LSTMCell::State s1 = cell.forward(x);
  const TensorMap sd = cell.state_dict();
  const LstmLayerOutput ref =
      lstm_layer_reference(x.reshape({1, 2, 3}), Tensor(), Tensor(), sd.at("weight_ih"),
                           sd.at("weight_hh"), sd.at("bias_ih"), sd.at("bias_hh"), {}, false);
  check_close(s1.h, ref.h_n, 1e-6f, "h");
  check_close(s1.c, ref.c_n, 1e-6f, "c");
  const LSTMCell::State s2 = cell.forward(x, s1);  // a second step from the state
  CHECK(s2.h.shape() == Shape{2, 4});
  CHECK_THROWS_WITH_AS(cell.forward(x, {s1.h, Tensor()}), doctest::Contains("both h and c"), Error);
  s2.h.sum().backward();
  CHECK(x.grad().defined());
}

TEST_CASE("a module moved to another device after its forward cannot run that backward") {
  LSTMCell cell(2, 3);
  const LSTMCell::State s = cell.forward(Tensor::ones({1, 2}));
  cell.to(Device::cpu());  // the same device: nothing moves, the graph stays usable
  s.h.sum().backward(Tensor(), true);
  if (!cuda::available()) return;
  cell.to(Device::cuda(0));
  CHECK_THROWS_WITH_AS(s.h.sum().backward(), doctest::Contains("modified in place"), Error);
}

TEST_CASE("dropout: inverted in training, the identity in evaluation") {
  manual_seed(3);
  const Tensor x = Tensor::ones({10000});
  const std::vector<float> y = dropout(x, 0.25f, true).to_vector();
  int zeros = 0;
  for (float v : y) {
    CHECK((v == 0.0f || v == doctest::Approx(1.0f / 0.75f)));
    zeros += v == 0.0f;
  }
  CHECK(zeros > 2300);  // 2500 expected; the binomial's sd is about 43
  CHECK(zeros < 2700);
  CHECK(dropout(x, 0.25f, false).same_storage(x));
  CHECK_THROWS_AS(dropout(x, 1.5f, true), Error);  // p = 1 drops everything, as PyTorch
}

TEST_CASE("bad input names the shapes") {
  LSTMOptions o;
  o.input_size = 3;
  o.hidden_size = 4;
  o.num_layers = 2;
  o.batch_first = true;
  LSTM lstm(o);
  CHECK_THROWS_WITH_AS(lstm.forward(Tensor::zeros({2, 5, 7})),
                       doctest::Contains("input [2, 5, 7] has 7 features in its last dimension, "
                                         "expected input_size 3"),
                       Error);
  CHECK_THROWS_WITH_AS(lstm.forward(Tensor::zeros({2, 5})),
                       doctest::Contains("expected an input of shape [B, T, input_size]"), Error);
  const Tensor x = Tensor::zeros({2, 5, 3});
  CHECK_THROWS_WITH_AS(lstm.forward(x, {5, 6}),
                       doctest::Contains("length 6 of clip 1 is outside 1..5"), Error);
  CHECK_THROWS_WITH_AS(lstm.forward(x, {0, 2}),
                       doctest::Contains("length 0 of clip 0 is outside 1..5"), Error);
  CHECK_THROWS_WITH_AS(lstm.forward(x, {-1, 2}), doctest::Contains("length -1"), Error);
  CHECK_THROWS_WITH_AS(lstm.forward(x, {3}), doctest::Contains("1 lengths for a batch of 2"),
                       Error);
  CHECK_THROWS_WITH_AS(lstm.forward(x, {}, Tensor::zeros({1, 2, 4}), Tensor::zeros({1, 2, 4})),
                       doctest::Contains("initial state [1, 2, 4] should be [2, 2, 4]"), Error);
  LSTMOptions other = o;
  other.hidden_size = 5;
  LSTM bigger(other);
  try {
    lstm.load_state_dict(bigger.state_dict());
    FAIL("a state_dict of another size must not load");
  } catch (const Error& e) {
    const std::string m = e.what();
    CHECK(m.find("weight_hh_l0 (checkpoint [20, 5], module [16, 4])") != std::string::npos);
    CHECK(m.find("weight_ih_l1 (checkpoint [20, 5], module [16, 4])") != std::string::npos);
  }
  CHECK_THROWS_WITH_AS(LSTM(LSTMOptions{}), doctest::Contains("must be positive"), Error);
}
