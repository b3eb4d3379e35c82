// `reel demo`: a two-layer network learns three interleaved spirals with reel's autograd,
// matmul, tanh and softmax cross-entropy, trained by plain SGD. Until the video trainer
// lands, this is the main job that shows the library working end to end.
#include <chrono>
#include <cmath>
#include <cstdio>

#include "commands.h"
#include "reel/core/reel.h"
#include "reel/kernels/gemm.h"

namespace reel::apps {

namespace {

struct DemoOptions {
  int epochs = 300;
  int points = 200;  // per class
  int hidden = 64;
  float lr = 0.5f;
  uint64_t seed = 0;
  int threads = 0;
};

// Three spirals in the plane, one class each: x [3 * points, 2], labels [3 * points].
void make_spirals(int points, Generator& gen, Tensor& x, std::vector<int64_t>& labels) {
  std::vector<float> xy;
  labels.clear();
  for (int c = 0; c < 3; ++c) {
    for (int i = 0; i < points; ++i) {
      const float r = static_cast<float>(i) / points;
      const float theta = 4.0f * r + 2.0944f * c + 0.2f * gen.normal();
      xy.push_back(r * std::sin(theta));
      xy.push_back(r * std::cos(theta));
      labels.push_back(c);
    }
  }
  x = Tensor::from_vector(xy, {3 * points, 2});
}

int run_demo(const DemoOptions& o) {
  REEL_CHECK(o.epochs > 0 && o.points > 0 && o.hidden > 0 && o.lr > 0.0f,
             "demo: --epochs, --points, --hidden and --lr must be positive");
  if (o.threads > 0) cpu::set_num_threads(o.threads);
  Generator gen(o.seed);
  Tensor x;
  std::vector<int64_t> y;
  make_spirals(o.points, gen, x, y);
  const float s1 = 1.0f / std::sqrt(2.0f), s2 = 1.0f / std::sqrt(static_cast<float>(o.hidden));
  std::vector<Tensor> params = {Tensor::normal({2, o.hidden}, 0.0f, 2.0f * s1, gen),
                                Tensor::zeros({o.hidden}),
                                Tensor::normal({o.hidden, 3}, 0.0f, s2, gen), Tensor::zeros({3})};
  for (Tensor& p : params) p.requires_grad_();
  std::printf("reel demo: %d points in 3 spirals, MLP 2-%d-3, SGD lr %.2f, %d threads, GEMM %s\n",
              3 * o.points, o.hidden, o.lr, cpu::num_threads(), cpu::gemm_isa());
  const auto t0 = std::chrono::steady_clock::now();
  float loss_value = 0.0f, first_loss = 0.0f;
  for (int epoch = 1; epoch <= o.epochs; ++epoch) {
    Tensor h = tanh(matmul(x, params[0]) + params[1]);
    Tensor loss = cross_entropy(matmul(h, params[2]) + params[3], y);
    for (Tensor& p : params) p.zero_grad();
    loss.backward();
    {
      NoGradGuard no_grad;
      for (Tensor& p : params) p.add_(p.grad(), -o.lr);
    }
    loss_value = loss.item();
    if (epoch == 1) first_loss = loss_value;
    if (epoch == 1 || epoch % (o.epochs / 10 > 0 ? o.epochs / 10 : 1) == 0)
      std::printf("epoch %4d  loss %.4f\n", epoch, loss_value);
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  NoGradGuard no_grad;
  Tensor logits = matmul(tanh(matmul(x, params[0]) + params[1]), params[2]) + params[3];
  const std::vector<float> l = logits.to_vector();
  int correct = 0;
  for (size_t i = 0; i < y.size(); ++i) {
    int best = 0;
    for (int c = 1; c < 3; ++c)
      if (l[i * 3 + c] > l[i * 3 + best]) best = c;
    correct += best == y[i];
  }
  std::printf(
      "trained %d epochs in %.2f s (%.2f ms/step); loss %.4f -> %.4f; training accuracy "
      "%.1f%% (chance 33.3%%)\n",
      o.epochs, secs, 1e3 * secs / o.epochs, first_loss, loss_value,
      100.0 * correct / static_cast<double>(y.size()));
  return 0;
}

}  // namespace

Command add_demo(CLI::App& app) {
  auto opts = std::make_shared<DemoOptions>();
  CLI::App* sub = app.add_subcommand("demo",
                                     "train a small classifier on spirals to show the "
                                     "library working");
  sub->add_option("--epochs", opts->epochs, "training steps (full batch)")
      ->check(CLI::Range(1, 1000000));
  sub->add_option("--points", opts->points, "points per class")->check(CLI::Range(1, 1000000));
  sub->add_option("--hidden", opts->hidden, "hidden units")->check(CLI::Range(1, 100000));
  sub->add_option("--lr", opts->lr, "learning rate")->check(CLI::Range(1e-9, 1e3));
  sub->add_option("--seed", opts->seed, "random seed");
  sub->add_option("--threads", opts->threads, "CPU threads (default: REEL_NUM_THREADS or all)")
      ->check(CLI::Range(0, 4096));
  return [opts] { return run_demo(*opts); };
}

}  // namespace reel::apps
