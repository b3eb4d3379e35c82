// `reel forward` end to end: the binary reads torchvision's ResNet-18 (width 8) weights and an
// input written from tests/reference/cnn.safetensors, runs it in training mode with gradients,
// and its output file must hold PyTorch's output, gradients and updated BatchNorm buffers; the
// same for nn.LSTM from tests/reference/lstm.safetensors, with initial states. Bad
// model files, weights and inputs must fail with exit code 1, one line naming the file, and no
// output file.
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "../test_util.h"

using namespace reel;
using reel::test::check_close;

namespace {

const std::string kTmp = REEL_TEST_TMP_DIR "/forward_";

const TensorMap& fixtures() {
  static const TensorMap m = load_safetensors(REEL_SOURCE_DIR "/tests/reference/cnn.safetensors");
  return m;
}

const TensorMap& lstm_fixtures() {
  static const TensorMap m = load_safetensors(REEL_SOURCE_DIR "/tests/reference/lstm.safetensors");
  return m;
}

// The fixture tensors under `prefix`, renamed without it.
TensorMap strip(const std::string& prefix, const TensorMap& from = fixtures()) {
  TensorMap out;
  for (const auto& [k, v] : from)
    if (k.rfind(prefix, 0) == 0) out[k.substr(prefix.size())] = v;
  return out;
}

void write_text(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

bool exists(const std::string& path) { return std::ifstream(path).good(); }

// Runs reel with args; returns its exit code and puts stderr in *err.
int run_reel(const std::string& args, std::string* err) {
  return reel::test::run_command(std::string(REEL_CLI) + " " + args, kTmp + "run", nullptr, err);
}

}  // namespace

TEST_CASE("reel forward: ResNet-18 in training mode with gradients equals torchvision") {
  save_safetensors(kTmp + "w.safetensors", strip("resnet18.p."));
  save_safetensors(kTmp + "x.safetensors",
                   {{"input", fixtures().at("resnet18.train.input")},
                    {"grad_output", fixtures().at("resnet18.train.grad_output")}});
  write_text(kTmp + "model.json", R"({"arch": "resnet18", "num_classes": 10, "width": 8})");
  std::remove((kTmp + "y.safetensors").c_str());
  std::string err;
  const int rc = run_reel("forward --model " + kTmp + "model.json --weights " + kTmp +
                              "w.safetensors --input " + kTmp + "x.safetensors --output " + kTmp +
                              "y.safetensors --train --grad",
                          &err);
  INFO(err);
  REQUIRE(rc == 0);
  const TensorMap y = load_safetensors(kTmp + "y.safetensors");
  check_close(y.at("output"), fixtures().at("resnet18.train.output"), 1e-4f, "output");
  check_close(y.at("grad.input"), fixtures().at("resnet18.train.grad.input"), 1e-3f, "grad input");
  int params = 0, buffers = 0;
  for (const auto& [k, v] : strip("resnet18.train.grad.")) {
    check_close(y.at("grad." + k), v, 1e-3f, k);
    params += k != "input";
  }
  for (const auto& [k, v] : strip("resnet18.train.buffers.")) {
    check_close(y.at(k), v, 1e-4f, k);
    ++buffers;
  }
  CHECK(params == 62);
  CHECK(buffers == 60);
}

TEST_CASE("reel forward: nn.LSTM with initial states and gradients equals PyTorch") {
  // The fixtures are batch first ([B, T, D]); a time-major case ("batch_first" false, PyTorch's
  // default) swaps the first two dimensions of the sequences in and out. Tolerances as in
  // tests/layers/test_lstm.cpp.
  struct Case {
    std::string name, json;
    bool batch_first;
  };
  const Case cases[] = {
      {"two_layers_state_T33",
       R"({"arch": "lstm", "input_size": 6, "hidden_size": 5, "num_layers": 2, "bias": true,
           "batch_first": true, "bidirectional": false})",
       true},
      {"two_layers_state_T33",
       R"({"arch": "lstm", "input_size": 6, "hidden_size": 5, "num_layers": 2})", false},
      {"bidirectional_T1",
       R"({"arch": "lstm", "input_size": 3, "hidden_size": 4, "num_layers": 1,
           "batch_first": true, "bidirectional": true})",
       true},
  };
  const TensorMap& f = lstm_fixtures();
  for (const Case& c : cases) {
    const std::string& n = c.name;
    INFO(n << (c.batch_first ? " (batch first)" : " (time major)"));
    auto seq = [&](const Tensor& t) { return c.batch_first ? t : t.transpose(0, 1); };
    save_safetensors(kTmp + "lstm_w.safetensors", strip(n + ".p.", f));
    TensorMap x = {{"input", seq(f.at(n + ".input"))},
                   {"grad_output", seq(f.at(n + ".g_output"))},
                   {"grad_h_n", f.at(n + ".g_h_n")},
                   {"grad_c_n", f.at(n + ".g_c_n")}};
    if (f.count(n + ".h0")) {
      x["h0"] = f.at(n + ".h0");
      x["c0"] = f.at(n + ".c0");
    }
    save_safetensors(kTmp + "lstm_x.safetensors", x);
    write_text(kTmp + "lstm.json", c.json);
    std::remove((kTmp + "lstm_y.safetensors").c_str());
    std::string err;
    const int rc = run_reel("forward --model " + kTmp + "lstm.json --weights " + kTmp +
                                "lstm_w.safetensors --input " + kTmp +
                                "lstm_x.safetensors --output " + kTmp + "lstm_y.safetensors --grad",
                            &err);
    INFO(err);
    REQUIRE(rc == 0);
    const TensorMap y = load_safetensors(kTmp + "lstm_y.safetensors");
    check_close(y.at("output"), seq(f.at(n + ".output")), 1e-5f, "output");
    check_close(y.at("h_n"), f.at(n + ".h_n"), 1e-5f, "h_n");
    check_close(y.at("c_n"), f.at(n + ".c_n"), 1e-5f, "c_n");
    check_close(y.at("grad.input"), seq(f.at(n + ".grad.input")), 1e-4f, "grad input");
    int params = 0;
    for (const auto& [k, v] : strip(n + ".p.", f)) {
      INFO("grad." << k);
      REQUIRE(y.count("grad." + k));
      check_close(y.at("grad." + k), f.at(n + ".grad." + k), 1e-4f, "grad " + k);
      ++params;
    }
    CHECK(params == 8);  // weight_ih, weight_hh, bias_ih, bias_hh for two layers or directions
  }
}

TEST_CASE("reel forward: the CNN-LSTM video classifier in training mode equals its PyTorch twin") {
  // tests/reference/video.safetensors: a width-4 ResNet-18, F 12, H 10, two layers, clips of
  // lengths 4, 2, 3 (make_fixtures.py's CnnLstm). Tolerances as in tests/layers/test_video.cpp.
  static const TensorMap f = load_safetensors(REEL_SOURCE_DIR "/tests/reference/video.safetensors");
  for (const std::string fusion : {"last", "attention"}) {
    INFO(fusion);
    TensorMap w = strip("video.p.", f);
    for (const auto& [k, v] : strip(fusion + ".p.", f)) w[k] = v;
    save_safetensors(kTmp + "video_w.safetensors", w);
    save_safetensors(kTmp + "video_x.safetensors",
                     {{"input", f.at("video.input")},
                      {"lengths", f.at("video.lengths")},
                      {"grad_output", f.at(fusion + ".grad_output")}});
    write_text(kTmp + "video.json",
               R"({"arch": "cnn_lstm", "backbone": "resnet18", "width": 4, "feature_dim": 12,
                   "hidden_size": 10, "num_layers": 2, "num_classes": 5, "fusion": ")" +
                   fusion + R"("})");
    std::remove((kTmp + "video_y.safetensors").c_str());
    std::string err;
    const int rc =
        run_reel("forward --model " + kTmp + "video.json --weights " + kTmp +
                     "video_w.safetensors --input " + kTmp + "video_x.safetensors --output " +
                     kTmp + "video_y.safetensors --train --grad",
                 &err);
    INFO(err);
    REQUIRE(rc == 0);
    const TensorMap y = load_safetensors(kTmp + "video_y.safetensors");
    check_close(y.at("output"), f.at(fusion + ".output"), 1e-4f, "output");
    int grads = 0, buffers = 0;
    for (const auto& [k, v] : strip(fusion + ".grad.", f)) {
      INFO("grad." << k);
      REQUIRE(y.count("grad." + k));
      check_close(y.at("grad." + k), v, 1e-3f, k);
      ++grads;
    }
    for (const auto& [k, v] : strip(fusion + ".buffers.", f)) {
      check_close(y.at(k), v, 1e-4f, k);
      ++buffers;
    }
    CHECK(grads == (fusion == "last" ? 73 : 75));  // input, 62 of the CNN, 8 LSTM, fc (+ attention)
    CHECK(buffers == 60);
  }
}

TEST_CASE("reel forward: VGG-11 with BatchNorm, alone and as the classifier's backbone") {
  // tests/reference/vgg.safetensors (make_fixtures.py): width 2, dropout 0, training mode.
  static const TensorMap f = load_safetensors(REEL_SOURCE_DIR "/tests/reference/vgg.safetensors");
  struct Case {
    std::string prefix, model, grads_of;
    int grads;
  };
  for (const Case& c :
       {Case{"vgg11_bn.train.",
             R"({"arch": "vgg11_bn", "num_classes": 10, "width": 2, "dropout": 0})", "vgg11_bn.p.",
             1 + 32 + 6},
        Case{"video_vgg.",
             R"({"arch": "cnn_lstm", "backbone": "vgg11_bn", "width": 2, "feature_dim": 12,
                 "hidden_size": 10, "num_layers": 2, "num_classes": 5, "dropout": 0})",
             "video_vgg.p.", 1 + 38 + 8 + 2}}) {
    INFO(c.prefix);
    TensorMap w = strip(c.grads_of, f);
    save_safetensors(kTmp + "vgg_w.safetensors", w);
    TensorMap x = {{"input", f.at(c.prefix + "input")},
                   {"grad_output", f.at(c.prefix + "grad_output")}};
    if (f.count(c.prefix + "lengths")) x["lengths"] = f.at(c.prefix + "lengths");
    save_safetensors(kTmp + "vgg_x.safetensors", x);
    write_text(kTmp + "vgg.json", c.model);
    std::remove((kTmp + "vgg_y.safetensors").c_str());
    std::string err;
    const int rc = run_reel(
        "forward --model " + kTmp + "vgg.json --weights " + kTmp + "vgg_w.safetensors --input " +
            kTmp + "vgg_x.safetensors --output " + kTmp + "vgg_y.safetensors --train --grad",
        &err);
    INFO(err);
    REQUIRE(rc == 0);
    const TensorMap y = load_safetensors(kTmp + "vgg_y.safetensors");
    check_close(y.at("output"), f.at(c.prefix + "output"), 1e-4f, "output");
    int grads = 0;
    for (const auto& [k, v] : strip(c.prefix + "grad.", f)) {
      INFO("grad." << k);
      REQUIRE(y.count("grad." + k));
      check_close(y.at("grad." + k), v, 1e-3f, k);
      ++grads;
    }
    CHECK(grads == c.grads);  // input, every parameter
  }
  // "dropout" on a ResNet backbone is refused, naming it.
  write_text(kTmp + "vgg.json", R"({"arch": "cnn_lstm", "backbone": "resnet18", "dropout": 0})");
  std::string err;
  CHECK(run_reel("forward --model " + kTmp + "vgg.json --weights " + kTmp +
                     "vgg_w.safetensors --input " + kTmp + "vgg_x.safetensors --output " + kTmp +
                     "vgg_y.safetensors",
                 &err) == 1);
  CHECK_MESSAGE(err.find("resnet18 has none") != std::string::npos, err);
}

TEST_CASE("reel forward: bad model files, weights and inputs fail cleanly") {
  save_safetensors(kTmp + "w.safetensors", strip("resnet18.p."));
  save_safetensors(kTmp + "x.safetensors", {{"input", fixtures().at("resnet18.eval.input")}});
  save_safetensors(kTmp + "small.safetensors", {{"input", Tensor::zeros({1, 3, 16, 16})}});
  save_safetensors(kTmp + "nokey.safetensors", {{"frames", Tensor::zeros({1, 3, 32, 32})}});
  save_safetensors(kTmp + "noinput.safetensors", {{"grad_output", Tensor::zeros({1, 10})}});
  write_text(kTmp + "r18.json", R"({"arch": "resnet18", "num_classes": 10, "width": 8})");
  write_text(kTmp + "r18w16.json", R"({"arch": "resnet18", "num_classes": 10, "width": 16})");
  write_text(kTmp + "typo.json", R"({"arch": "resnet18", "num_clases": 10})");
  write_text(kTmp + "vgg.json", R"({"arch": "vgg19"})");
  write_text(kTmp + "broken.json", R"({"arch": "resnet18",)");
  write_text(kTmp + "fusion.json", R"({"arch": "cnn_lstm", "width": 8, "fusion": "max"})");
  write_text(kTmp + "backbone.json", R"({"arch": "cnn_lstm", "backbone": 18})");
  struct Case {
    std::string model, input, flags;
    std::vector<std::string> says;
  };
  const Case cases[] = {
      {"r18w16.json",
       "x.safetensors",
       "",
       {"--weights", "w.safetensors",
        "conv1.weight (checkpoint [8, 3, 7, 7], module [16, 3, 7, 7])"}},
      {"typo.json", "x.safetensors", "", {"--model", "typo.json", "unknown key \"num_clases\""}},
      {"vgg.json", "x.safetensors", "", {"unknown arch \"vgg19\"", "vgg16_bn"}},
      {"fusion.json", "x.safetensors", "", {"--model", "fusion.json", "unknown fusion 'max'"}},
      {"backbone.json",
       "x.safetensors",
       "",
       {"--model", "backbone.json", "\"backbone\" must be a string"}},
      {"broken.json", "x.safetensors", "", {"--model", "broken.json", "not valid JSON"}},
      {"r18.json",
       "nokey.safetensors",
       "",
       {"--input", "nokey.safetensors", "unknown tensor \"frames\""}},
      {"r18.json",
       "noinput.safetensors",
       "",
       {"--input", "noinput.safetensors", "no tensor named \"input\""}},
      {"r18.json", "x.safetensors", "--grad", {"--input", "x.safetensors", "\"grad_output\""}},
      {"r18.json", "small.safetensors", "", {"resnet18", "[1, 3, 16, 16]", "too small"}},
      {"r18.json", "missing.safetensors", "", {"missing.safetensors"}},
  };
  for (const Case& c : cases) {
    INFO(c.model << " " << c.input << " " << c.flags);
    std::remove((kTmp + "bad_out.safetensors").c_str());
    std::string err;
    const int rc = run_reel("forward --model " + kTmp + c.model + " --weights " + kTmp +
                                "w.safetensors --input " + kTmp + c.input + " --output " + kTmp +
                                "bad_out.safetensors " + c.flags,
                            &err);
    INFO(err);
    CHECK(rc == 1);
    CHECK(err.rfind("reel: error: ", 0) == 0);
    CHECK(std::count(err.begin(), err.end(), '\n') == 1);  // one line
    for (const auto& s : c.says) CHECK(err.find(s) != std::string::npos);
    CHECK_FALSE(exists(kTmp + "bad_out.safetensors"));
  }
  std::string err;
  CHECK(run_reel("forward --model " + kTmp + "r18.json", &err) == 2);  // a bad command line
}
