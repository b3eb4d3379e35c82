// The video classifier (layers/video.h): each fusion against its PyTorch twin
// (tests/reference/video.safetensors, made by tests/reference/make_fixtures.py), what each fusion
// may and may not see, the frozen backbone, recomputation (core/autograd.h checkpoint) against
// the plain backward, and bad input.
#include <string>

#include "../test_util.h"
#include "reel/layers/vgg.h"
#include "reel/layers/video.h"

using namespace reel;
using reel::test::check_close;
using reel::test::error_of;

namespace {

VideoClassifierOptions small(Fusion fusion) {
  VideoClassifierOptions o;
  o.width = 4, o.feature_dim = 12, o.hidden_size = 10, o.num_layers = 2, o.num_classes = 5;
  o.fusion = fusion;
  return o;
}

Tensor clips(int64_t B, int64_t T, uint64_t seed, int64_t size = 32) {
  Generator g(seed);
  return Tensor::normal({B, T, 3, size, size}, 0.0f, 1.0f, g);
}

// The clip b of x with its frames [0, n) reversed and the rest left as they are.
Tensor reverse_frames(const Tensor& x, int64_t b, int64_t n) {
  std::vector<float> v = x.to_vector();
  const int64_t T = x.size(1), F = x.numel() / (x.size(0) * T);
  std::vector<float> out = v;
  for (int64_t t = 0; t < n; ++t)
    std::copy(v.begin() + (b * T + t) * F, v.begin() + (b * T + t + 1) * F,
              out.begin() + (b * T + n - 1 - t) * F);
  return Tensor::from_vector(out, x.shape());
}

// Replaces frames [n, T) of clip b with noise.
Tensor scramble_past(const Tensor& x, int64_t b, int64_t n, uint64_t seed) {
  std::vector<float> v = x.to_vector();
  const int64_t T = x.size(1), F = x.numel() / (x.size(0) * T);
  Generator g(seed);
  const std::vector<float> noise = Tensor::normal({(T - n) * F}, 3.0f, 2.0f, g).to_vector();
  std::copy(noise.begin(), noise.end(), v.begin() + (b * T + n) * F);
  return Tensor::from_vector(v, x.shape());
}

const TensorMap& fixtures() {
  static const TensorMap m = load_safetensors(REEL_SOURCE_DIR "/tests/reference/video.safetensors");
  return m;
}

Tensor fx(const std::string& key) {
  auto it = fixtures().find(key);
  REQUIRE_MESSAGE(it != fixtures().end(), "missing fixture " << key);
  return it->second;
}

std::vector<int64_t> lengths_of(const std::string& key) {
  std::vector<int64_t> out;
  for (float v : fx(key).to_vector()) out.push_back(static_cast<int64_t>(v));
  return out;
}

// The twin's weights: the shared CNN (video.p.cnn.*) and the fusion's own (<fusion>.p.*).
void load_twin(VideoClassifier& m, const std::string& fusion) {
  TensorMap state;
  for (const auto& [key, t] : fixtures()) {
    if (key.rfind("video.p.", 0) == 0) state[key.substr(8)] = t;
    const std::string own = fusion + ".p.";
    if (key.rfind(own, 0) == 0) state[key.substr(own.size())] = t;
  }
  m.load_state_dict(state);  // strict: every name of the twin, none left over
}

}  // namespace

TEST_CASE("video classifier: state-dict names and sizes of each fusion") {
  VideoClassifier last(small(Fusion::last));
  const TensorMap s = last.state_dict();
  CHECK(s.count("cnn.conv1.weight"));
  CHECK(s.at("cnn.fc.weight").shape() == Shape{12, 32});  // Linear(8 * width, F)
  CHECK(s.at("lstm.weight_ih_l0").shape() == Shape{40, 12});
  CHECK(s.at("lstm.weight_hh_l1").shape() == Shape{40, 10});
  CHECK(s.at("fc.weight").shape() == Shape{5, 10});
  CHECK_FALSE(s.count("attention.weight"));
  // Registration order: cnn, lstm, attention, fc.
  VideoClassifier att(small(Fusion::attention));
  const NamedTensors np = att.named_parameters();
  CHECK(np.front().first == "cnn.conv1.weight");
  CHECK(np[np.size() - 4].first == "attention.weight");
  CHECK(np.back().first == "fc.bias");
  CHECK(VideoClassifier(small(Fusion::concat)).state_dict().at("fc.weight").shape() ==
        Shape{5, 22});
  VideoClassifier pool(small(Fusion::pool));
  CHECK(pool.lstm() == nullptr);
  CHECK_FALSE(pool.state_dict().count("lstm.weight_ih_l0"));
  CHECK(pool.state_dict().at("fc.weight").shape() == Shape{5, 12});
  for (const char* f : {"last", "mean", "concat", "attention", "pool"})
    CHECK(fusion_name(parse_fusion(f)) == f);
}

TEST_CASE("video classifier equals its PyTorch twin: every fusion, training mode, every gradient") {
  // The twin (make_fixtures.py, CnnLstm) in float64: a width-4 ResNet-18 on 3 clips of 4 frames
  // of 32x32 with lengths 4, 2, 3, two LSTM layers. Tolerances as ResNet's against torchvision
  // (test_cnn): outputs 1e-4; gradients 1e-3 (training-mode BatchNorm over 12 frames at 1x1 in
  // layer4 amplifies rounding).
  const std::vector<int64_t> lengths = lengths_of("video.lengths");
  for (const char* f : {"last", "mean", "concat", "attention", "pool"}) {
    INFO(f);
    VideoClassifier m(small(parse_fusion(f)));
    load_twin(m, f);
    m.train();
    Tensor x = fx("video.input").clone();
    x.requires_grad_();
    Tensor y = m.forward(x, lengths);
    const std::string p = std::string(f) + ".";
    check_close(y, fx(p + "output"), 1e-4f, "output");
    y.backward(fx(p + "grad_output"));
    check_close(x.grad(), fx(p + "grad.input"), 1e-3f, "grad input");
    for (const auto& [name, param] : m.named_parameters())
      check_close(param.grad(), fx(p + "grad." + name), 1e-3f, "grad " + name);
    for (const auto& [name, buf] : m.named_buffers())
      check_close(buf, fx(p + "buffers." + name), 1e-4f, "buffer " + name);
  }
  VideoClassifier m(small(Fusion::last));
  load_twin(m, "last");
  m.eval();
  Tensor x = fx("video.input").clone();
  x.requires_grad_();
  Tensor y = m.forward(x, lengths_of("last_eval.lengths"));
  check_close(y, fx("last_eval.output"), 1e-4f, "eval output");
  y.backward(fx("last_eval.grad_output"));
  check_close(x.grad(), fx("last_eval.grad.input"), 1e-3f, "eval grad input");
}

TEST_CASE("video classifier: frames past a clip's length change nothing; pool is blind to order") {
  const Tensor x = clips(3, 5, 11);
  const std::vector<int64_t> lengths{5, 2, 3};
  for (Fusion f : {Fusion::last, Fusion::mean, Fusion::concat, Fusion::attention, Fusion::pool}) {
    INFO(fusion_name(f));
    VideoClassifier m(small(f));
    m.eval();  // in training mode BatchNorm's batch statistics see every frame
    NoGradGuard no_grad;
    const Tensor y = m.forward(x, lengths);
    CHECK(y.shape() == Shape{3, 5});
    // Noise in clip 1's frames 2..4 leaves every clip's logits as they were.
    check_close(m.forward(scramble_past(x, 1, 2, 5), lengths), y, 0.0f, "past the length");
    // Reversing clip 2's valid frames: the pool baseline cannot tell; the others can.
    const Tensor yr = m.forward(reverse_frames(x, 2, 3), lengths);
    const std::vector<float> a = y.to_vector(), b = yr.to_vector();
    float diff = 0;
    for (int k = 0; k < 5; ++k) diff = std::max(diff, std::fabs(a[10 + k] - b[10 + k]));
    if (f == Fusion::pool)
      CHECK(diff < 1e-5f);
    else
      CHECK(diff > 1e-4f);
    // Without lengths, every frame counts: equal to lengths of T.
    check_close(m.forward(x), m.forward(x, {5, 5, 5}), 0.0f, "no lengths");
  }
}

TEST_CASE("streaming one frame at a time equals the clip's forward after every frame") {
  const Tensor x = clips(1, 6, 21);
  for (Fusion f : {Fusion::last, Fusion::mean, Fusion::concat, Fusion::attention, Fusion::pool}) {
    INFO(fusion_name(f));
    VideoClassifier m(small(f));
    VideoStreamState state;
    CHECK(error_of([&] {
            m.stream_step(slice(x, 1, 0, 1).reshape({1, 3, 32, 32}), state);
          }).find("eval mode") != std::string::npos);
    m.eval();
    NoGradGuard no_grad;
    for (int64_t n = 1; n <= 6; ++n) {
      INFO("after frame " << n);
      const Tensor frame = reshape(slice(x, 1, n - 1, n), {1, 3, 32, 32});
      const Tensor streamed = m.stream_step(frame, state);
      // The clip of the first n frames, as one forward: lengths n of T = 6 give the same.
      check_close(streamed, m.forward(x, {n}), 1e-5f, "stream vs forward");
    }
    CHECK(state.frames == 6);
    CHECK(error_of([&] { m.stream_step(x, state); }).find("[1, 3, H, W]") != std::string::npos);
  }
}

TEST_CASE("recompute: the same outputs, gradients and running statistics as the plain backward") {
  for (Fusion f : {Fusion::last, Fusion::concat}) {
    INFO(fusion_name(f));
    manual_seed(7);
    VideoClassifier plain(small(f));
    VideoClassifier again(small(f));
    again.load_state_dict(plain.state_dict());
    again.set_recompute(true);
    const Tensor x = clips(2, 3, 4);
    const std::vector<int64_t> lengths{3, 2};
    Tensor y0 = plain.forward(x, lengths), y1 = again.forward(x, lengths);
    check_close(y1, y0, 0.0f, "output");
    Generator g(3);
    const Tensor gy = Tensor::normal(y0.shape(), 0.0f, 1.0f, g);
    y0.backward(gy);
    y1.backward(gy);
    const NamedTensors p0 = plain.named_parameters(), p1 = again.named_parameters();
    for (size_t i = 0; i < p0.size(); ++i) {
      REQUIRE(p1[i].second.grad().defined());
      check_close(p1[i].second.grad(), p0[i].second.grad(), 1e-5f, "grad " + p0[i].first);
    }
    // BatchNorm counted the batch once (the recomputation leaves the buffers alone).
    const NamedTensors b0 = plain.named_buffers(), b1 = again.named_buffers();
    for (size_t i = 0; i < b0.size(); ++i)
      check_close(b1[i].second, b0[i].second, 0.0f, "buffer " + b0[i].first);
    CHECK(again.state_dict().at("cnn.layer2.1.bn1.num_batches_tracked").item() == 1.0f);
    // A second step accumulates into the gradients already there, as the plain one does.
    plain.forward(x, lengths).backward(gy);
    again.forward(x, lengths).backward(gy);
    check_close(again.named_parameters()[0].second.grad(),
                plain.named_parameters()[0].second.grad(), 1e-5f, "accumulated grad");
  }
}

TEST_CASE("recompute: the gradient of the input too, against finite differences") {
  // One BasicBlock-deep check through checkpoint() itself, on a function of x and a parameter.
  Tensor w = reel::test::leaf({3, 3}, 1);
  Tensor x = reel::test::leaf({2, 3}, 2);
  auto fn = [&](const Tensor& in) { return tanh(matmul(in, w)) * in; };
  Tensor y = checkpoint(fn, x, {w});
  Tensor y_ref = fn(x);
  check_close(y, y_ref, 0.0f, "value");
  const Tensor g = Tensor::ones({2, 3});
  y.backward(g);
  const Tensor gx = x.grad().clone(), gw = w.grad().clone();
  x.zero_grad();
  w.zero_grad();
  y_ref.backward(g);
  check_close(gx, x.grad(), 1e-6f, "grad x");
  check_close(gw, w.grad(), 1e-6f, "grad w");
  reel::test::check_gradients(
      [&](const std::vector<Tensor>& in) {
        return checkpoint([&](const Tensor& a) { return tanh(matmul(a, in[1])) * a; }, in[0],
                          {in[1]});
      },
      {x, w});
}

TEST_CASE("frozen backbone: no gradient into the ResNet, its BatchNorm in eval, the rest trains") {
  VideoClassifier m(small(Fusion::last));
  m.set_freeze_backbone(true);
  m.train();
  const TensorMap before = m.state_dict();
  const Tensor running = before.at("cnn.bn1.running_mean").clone();
  Tensor y = m.forward(clips(2, 3, 9));
  sum(y).backward();
  for (const auto& [name, p] : m.named_parameters()) {
    INFO(name);
    const bool backbone = name.rfind("cnn.", 0) == 0 && name.rfind("cnn.fc.", 0) != 0;
    CHECK(p.grad().defined() == !backbone);
    CHECK(p.requires_grad() == !backbone);
  }
  check_close(m.state_dict().at("cnn.bn1.running_mean"), running, 0.0f, "running mean");
  CHECK(m.state_dict().at("cnn.bn1.num_batches_tracked").item() == 0.0f);
  m.set_freeze_backbone(false);
  for (const auto& [name, p] : m.named_parameters()) CHECK(p.requires_grad());
  CHECK(m.cnn().is_training());
}

TEST_CASE("video classifier bad input: shapes, lengths and frame sizes named") {
  VideoClassifier m(small(Fusion::last));
  CHECK(error_of([&] {
          m.forward(Tensor::zeros({2, 3, 32, 32}));
        }).find("expected clips of shape [B, T, 3, H, W], got [2, 3, 32, 32]") !=
        std::string::npos);
  CHECK(error_of([&] { m.forward(clips(2, 3, 1), {3}); }).find("1 lengths for a batch of 2") !=
        std::string::npos);
  CHECK(error_of([&] {
          m.forward(clips(2, 3, 1), {3, 4});
        }).find("clip 1 has length 4, outside 1..3") != std::string::npos);
  CHECK(error_of([&] {
          m.forward(clips(2, 3, 1), {0, 3});
        }).find("clip 0 has length 0") != std::string::npos);
  CHECK(error_of([&] { m.forward(clips(1, 2, 1, 16)); }).find("resnet18") != std::string::npos);
  CHECK(error_of([&] { m.forward(clips(1, 2, 1, 16)); }).find("32x32") != std::string::npos);
  CHECK(error_of([] {
          parse_fusion("max");
        }).find("unknown fusion 'max': expected last, mean, concat, attention or pool") !=
        std::string::npos);
  VideoClassifierOptions o = small(Fusion::last);
  o.backbone = "vgg19";
  CHECK(error_of([&] { VideoClassifier bad(o); }).find("unknown backbone 'vgg19'") !=
        std::string::npos);
}

TEST_CASE("video classifier on a VGG-11 backbone equals its PyTorch twin in training mode") {
  // vgg.safetensors' video_vgg: the "last" twin of video.safetensors with a width-2 vgg11_bn
  // (dropout 0) per frame, its classifier.6 the projection to F.
  const TensorMap vf = load_safetensors(REEL_SOURCE_DIR "/tests/reference/vgg.safetensors");
  auto at = [&](const std::string& k) {
    auto it = vf.find("video_vgg." + k);
    REQUIRE_MESSAGE(it != vf.end(), "missing fixture video_vgg." << k);
    return it->second;
  };
  VideoClassifierOptions o = small(Fusion::last);
  o.backbone = "vgg11_bn";
  o.width = 2;
  VideoClassifier m(o);
  dynamic_cast<VGG&>(m.cnn()).set_dropout(0.0f);
  TensorMap state;
  for (const auto& [k, t] : vf)
    if (k.rfind("video_vgg.p.", 0) == 0) state[k.substr(12)] = t;
  m.load_state_dict(state);  // strict: cnn.features.*, cnn.classifier.*, lstm.*, fc.*
  CHECK(m.state_dict().at("cnn.classifier.6.weight").shape() == Shape{12, 128});
  m.train();
  std::vector<int64_t> lengths;
  for (float v : at("lengths").to_vector()) lengths.push_back(static_cast<int64_t>(v));
  Tensor x = at("input").clone();
  x.requires_grad_();
  Tensor y = m.forward(x, lengths);
  check_close(y, at("output"), 1e-4f, "output");
  y.backward(at("grad_output"));
  check_close(x.grad(), at("grad.input"), 1e-3f, "grad input");
  for (const auto& [name, param] : m.named_parameters())
    check_close(param.grad(), at("grad." + name), 1e-3f, "grad " + name);

  // Frozen: only classifier.6 of the backbone trains; the rest of it gets no gradient.
  m.zero_grad();
  m.set_freeze_backbone(true);
  sum(m.forward(at("input"), lengths)).backward();
  for (const auto& [name, p] : m.named_parameters()) {
    INFO(name);
    const bool frozen = name.rfind("cnn.", 0) == 0 && name.rfind("cnn.classifier.6.", 0) != 0;
    CHECK(p.grad().defined() == !frozen);
  }
}
