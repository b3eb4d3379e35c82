// The learning proof of the video classifier on moving digits (data/digits.h): real handwritten
// digits moving down or up, growing or shrinking, where every held-out clip comes with its
// time-reversed twin of the other class. A CNN-LSTM has to read the order of the frames to
// tell the twins apart; the pool baseline, blind to the order, sees the same frames in both and
// cannot beat one right answer per pair (50%). And training is reproducible: the same seed and
// thread count give the same losses bit for bit.
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "../test_util.h"
#include "reel/data/digits.h"
#include "reel/layers/video.h"
#include "reel/optim/optim.h"

using namespace reel;

namespace {

constexpr int kFrames = 8, kSize = 32;

const data::DigitImages& digit_images() {
  static const data::DigitImages d = data::load_digits_png(data::find_digits_png());
  return d;
}

data::DigitClips make_set(int count, bool test) {
  data::DigitsOptions o;
  o.frames = kFrames, o.size = kSize, o.seed = 5;
  return data::make_moving_digits(digit_images(), count, test, o);
}

// Clips [first, first + n) of the set as the classifier's input: [n, T, 3, S, S] (the grey
// frame in all three channels).
Tensor batch_of(const data::DigitClips& set, int64_t first, int64_t n) {
  const Tensor x = slice(set.clips, 0, first, first + n);
  return expand(x, {n, kFrames, 3, kSize, kSize});
}

std::vector<int64_t> labels_of(const data::DigitClips& set, int64_t first, int64_t n) {
  return {set.labels.begin() + first, set.labels.begin() + first + n};
}

VideoClassifierOptions model_options(Fusion fusion) {
  VideoClassifierOptions o;
  o.width = 8, o.feature_dim = 32, o.hidden_size = 32, o.num_layers = 1;
  o.num_classes = static_cast<int64_t>(data::digit_classes().size());
  o.fusion = fusion;
  return o;
}

// Trains a fresh model from `seed` for `steps` steps of `batch` clips (Adam), returning the
// loss of every step.
std::vector<float> train(VideoClassifier& model, const data::DigitClips& set, int steps,
                         int64_t batch) {
  Adam opt(model.parameters(), [] {
    AdamOptions o;
    o.lr = 3e-3;
    return o;
  }());
  model.train();
  std::vector<float> losses;
  const int64_t n = static_cast<int64_t>(set.labels.size());
  NonFiniteCheck finite;  // a NaN or Inf loss or gradient stops the test, naming the step
  const NamedTensors named = model.named_parameters();
  for (int s = 0; s < steps; ++s) {
    const int64_t first = (s * batch) % (n - batch + 1);
    opt.zero_grad();
    Tensor loss =
        cross_entropy(model.forward(batch_of(set, first, batch)), labels_of(set, first, batch));
    loss.backward();
    losses.push_back(loss.item());
    if (finite.ok(s, losses.back(), named)) opt.step();
  }
  return losses;
}

double accuracy(VideoClassifier& model, const data::DigitClips& set) {
  model.eval();
  NoGradGuard no_grad;
  const int64_t n = static_cast<int64_t>(set.labels.size());
  int64_t right = 0;
  for (int64_t first = 0; first < n; first += 32) {
    const int64_t m = std::min<int64_t>(32, n - first);
    const std::vector<float> logits = model.forward(batch_of(set, first, m)).to_vector();
    const int64_t C = static_cast<int64_t>(logits.size()) / m;
    for (int64_t i = 0; i < m; ++i) {
      int64_t best = 0;
      for (int64_t c = 1; c < C; ++c)
        if (logits[i * C + c] > logits[i * C + best]) best = c;
      right += best == set.labels[first + i];
    }
  }
  return static_cast<double>(right) / static_cast<double>(n);
}

}  // namespace

TEST_CASE("the CNN-LSTM learns the direction of moving digits; the order-blind pool cannot") {
  const data::DigitClips train_set = make_set(1024, false);
  const data::DigitClips test_set = make_set(256, true);  // 128 clips and their reversals
  for (Fusion f : {Fusion::last, Fusion::pool}) {
    manual_seed(1);
    VideoClassifier model(model_options(f));
    const auto t0 = std::chrono::steady_clock::now();
    const std::vector<float> losses = train(model, train_set, 400, 16);
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double acc = accuracy(model, test_set);
    MESSAGE(fusion_name(f) << ": loss " << losses.front() << " -> " << losses.back()
                           << ", held-out accuracy " << acc * 100 << "% (" << secs
                           << " s of training)");
    if (f == Fusion::last)
      CHECK(acc >= 0.90);
    else
      CHECK(acc <= 0.60);
  }
}

TEST_CASE("the same seed and thread count give a bit-identical loss sequence over 20 steps") {
  const data::DigitClips train_set = make_set(320, false);
  std::vector<float> runs[2];
  for (auto& losses : runs) {
    manual_seed(9);
    VideoClassifier model(model_options(Fusion::last));
    losses = train(model, train_set, 20, 16);
  }
  REQUIRE(runs[0].size() == 20);
  for (size_t i = 0; i < 20; ++i) {
    INFO("step " << i);
    CHECK(runs[0][i] == runs[1][i]);  // exact: bit for bit
  }
  CHECK(runs[0].back() < runs[0].front());  // and it does learn
}
