// Every differentiable op against PyTorch: tests/reference/make_fixtures.py ran each op in
// PyTorch (float64) on fixed inputs and stored inputs, upstream gradient, output and input
// gradients in tests/reference/ops.safetensors. Here reel runs the same ops on the same inputs.
#include <cmath>
#include <functional>
#include <map>

#include "../test_util.h"

using namespace reel;

namespace {

const TensorMap& fixtures() {
  static const TensorMap m = load_safetensors(REEL_SOURCE_DIR "/tests/reference/ops.safetensors");
  return m;
}

std::vector<int64_t> targets(const std::string& name) {
  std::vector<int64_t> t;
  for (float v : fixtures().at(name + ".targets").to_vector()) t.push_back(static_cast<int64_t>(v));
  return t;
}

void check_close(const Tensor& got, const Tensor& want, const std::string& what) {
  INFO(what);
  REQUIRE(got.shape() == want.shape());
  const std::vector<float> a = got.to_vector(), b = want.to_vector();
  for (size_t i = 0; i < a.size(); ++i) {
    INFO("element " << i << ": reel " << a[i] << ", PyTorch " << b[i]);
    CHECK(std::fabs(a[i] - b[i]) <= 1e-5f * (1.0f + std::fabs(b[i])));
  }
}

using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

void run_case(const std::string& name, const Fn& fn) {
  const TensorMap& f = fixtures();
  std::vector<Tensor> in;
  for (int i = 0; f.count(name + ".in" + std::to_string(i)); ++i) {
    Tensor t = f.at(name + ".in" + std::to_string(i)).clone();
    t.requires_grad_();
    in.push_back(t);
  }
  REQUIRE_MESSAGE(!in.empty(), "no fixture for " << name);
  Tensor out = fn(in);
  check_close(out, f.at(name + ".out"), name + " output");
  out.backward(f.at(name + ".gout"));
  for (size_t i = 0; i < in.size(); ++i)
    check_close(in[i].grad(), f.at(name + ".grad" + std::to_string(i)),
                name + " gradient of input " + std::to_string(i));
}

}  // namespace

TEST_CASE("the fixtures hold every case") {
  CHECK(fixtures().size() == 165);  // make_fixtures.py's count: a regenerated file must match
}

TEST_CASE("elementwise ops against PyTorch") {
  run_case("add", [](const std::vector<Tensor>& v) { return v[0] + v[1]; });
  run_case("sub", [](const std::vector<Tensor>& v) { return v[0] - v[1]; });
  run_case("mul", [](const std::vector<Tensor>& v) { return v[0] * v[1]; });
  run_case("div", [](const std::vector<Tensor>& v) { return v[0] / v[1]; });
  run_case("div_bcast", [](const std::vector<Tensor>& v) { return v[0] / v[1]; });
  run_case("neg", [](const std::vector<Tensor>& v) { return -v[0]; });
  run_case("exp", [](const std::vector<Tensor>& v) { return exp(v[0]); });
  run_case("log", [](const std::vector<Tensor>& v) { return log(v[0]); });
  run_case("tanh", [](const std::vector<Tensor>& v) { return tanh(v[0]); });
  run_case("sigmoid", [](const std::vector<Tensor>& v) { return sigmoid(v[0]); });
  run_case("relu", [](const std::vector<Tensor>& v) { return relu(v[0]); });
}

TEST_CASE("matmul, shape ops and reductions against PyTorch") {
  const Fn mm = [](const std::vector<Tensor>& v) { return matmul(v[0], v[1]); };
  run_case("matmul", mm);
  run_case("bmm", mm);
  run_case("matmul_3x2", mm);
  run_case("matmul_2x3", mm);
  run_case("transpose", [](const std::vector<Tensor>& v) { return v[0].transpose(0, 1); });
  run_case("permute", [](const std::vector<Tensor>& v) { return v[0].permute({2, 0, 1}); });
  run_case("reshape", [](const std::vector<Tensor>& v) { return v[0].reshape({4, -1}) * 2.0f; });
  run_case("sum_02", [](const std::vector<Tensor>& v) { return v[0].sum({0, 2}); });
  run_case("mean_1_keep", [](const std::vector<Tensor>& v) { return v[0].mean({1}, true); });
  run_case("mean_all", [](const std::vector<Tensor>& v) { return v[0].mean(); });
  run_case("concat", [](const std::vector<Tensor>& v) { return concat({v[0], v[1], v[0]}, 1); });
  run_case("stack", [](const std::vector<Tensor>& v) { return stack({v[0], v[1]}, 1); });
  run_case("slice", [](const std::vector<Tensor>& v) { return v[0].slice(1, 1, 5, 2); });
  run_case("linear", [](const std::vector<Tensor>& v) { return linear(v[0], v[1], v[2]); });
  run_case("linear_nobias", [](const std::vector<Tensor>& v) { return linear(v[0], v[1]); });
}

TEST_CASE("softmax family and cross-entropy against PyTorch") {
  run_case("softmax_1", [](const std::vector<Tensor>& v) { return softmax(v[0], 1); });
  run_case("softmax_0", [](const std::vector<Tensor>& v) { return softmax(v[0], 0); });
  run_case("log_softmax_2", [](const std::vector<Tensor>& v) { return log_softmax(v[0], 2); });
  const std::vector<int64_t> t = targets("cross_entropy");
  CHECK(t[3] == -100);
  run_case("cross_entropy", [&t](const std::vector<Tensor>& v) { return cross_entropy(v[0], t); });
  run_case("cross_entropy_smooth",
           [&t](const std::vector<Tensor>& v) { return cross_entropy(v[0], t, 0.1f); });
  const std::vector<int64_t> tm = targets("mlp");
  run_case("mlp", [&tm](const std::vector<Tensor>& v) {
    return cross_entropy(matmul(tanh(matmul(v[0], v[1]) + v[2]), v[3]), tm);
  });
}
