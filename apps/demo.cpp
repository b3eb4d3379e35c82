// `reel demo`: the main job on a machine with no dataset. It writes the moving-digits set
// (real handwritten digits moving down or up, growing or shrinking: the direction in time is
// the class) as videos in UCF101's layout, trains the CNN-LSTM on it with `reel train`'s
// trainer, trains the order-blind pool baseline the same way, evaluates both on held-out clips
// (each with its time-reversed twin, of the other class) and writes a short report.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "commands.h"
#include "config.h"
#include "evaluate.h"
#include "plot.h"
#include "reel/data/digits.h"
#include "reel/kernels/cpu/parallel.h"
#include "trainer.h"

namespace reel::apps {

namespace fs = std::filesystem;

namespace {

struct DemoArgs {
  std::string out = "reel-demo";
  int64_t train = 1024, test = 256, epochs = 6, threads = 0;
  uint64_t seed = 0;
  std::string digits_png;
};

struct Trained {
  TrainReport report;
  EvalResult eval;
};

Trained train_one(const DemoArgs& a, const std::string& data, const std::string& fusion) {
  TrainConfig c;
  c.data = data;
  c.layout = "ucf101";
  c.frames = 8;
  c.size = 32;
  c.resize = 32;
  c.width = 8;
  c.feature_dim = 32;
  c.hidden = 32;
  c.layers = 1;
  c.fusion = fusion;
  c.batch = 16;
  c.epochs = a.epochs;
  c.optimizer = "adam";
  c.lr = 3e-3;
  c.weight_decay = 0.0;
  c.schedule = "cosine";
  c.device = "cpu";
  c.threads = a.threads;
  c.seed = a.seed;
  c.val_every = a.epochs;  // validate once, at the end
  c.log_every = 16;
  c.out = (fs::path(a.out) / fusion).string();
  validate(c);
  std::error_code ec;
  fs::remove_all(c.out, ec);  // a demo starts afresh (run_demo checked the folder is a demo's)
  CLI::App scratch;
  TrainConfig copy = c;
  ConfigOptions options(scratch, copy);
  std::printf("\n== training %s (%s) ==\n", fusion.c_str(),
              fusion == "pool" ? "the baseline: mean CNN feature, blind to frame order"
                               : "the CNN-LSTM: the LSTM reads the frames in order");
  Trained t;
  t.report = train(c, options.to_toml(), false, stdout);
  const std::string best = run_checkpoint(c.out, "best");
  const Checkpoint ck = load_checkpoint(best);
  std::unique_ptr<VideoClassifier> model = model_from_checkpoint(ck, best);
  const data::Dataset test = open_dataset(data, "ucf101", 1, false);
  t.eval = evaluate(*model, ck.info, test, 1, 32, 0);
  const fs::path pics = fs::path(c.out);
  draw_confusion(
      t.eval.confusion, ck.info.classes,
      fusion + ": held-out clips, " + std::to_string(t.eval.video_top1).substr(0, 4) + "% right",
      (pics / "confusion.png").string());
  draw_run_curves((pics / "metrics.jsonl").string(), (pics / "curves.png").string());
  return t;
}

int run_demo(const DemoArgs& a) {
  REEL_CHECK(a.test % 2 == 0, "demo: --test must be even (each test clip has a reversed twin)");
  if (a.threads > 0) cpu::set_num_threads(static_cast<int>(a.threads));
  const auto t0 = std::chrono::steady_clock::now();
  const std::string png = a.digits_png.empty() ? data::find_digits_png() : a.digits_png;
  const data::DigitImages images = data::load_digits_png(png);
  data::DigitsOptions o;
  o.frames = 8;
  o.size = 32;
  o.seed = a.seed;
  const std::string data = (fs::path(a.out) / "data").string();
  std::error_code ec;
  // Only a demo's own folder is cleared: an existing folder must be empty or hold a report.
  if (fs::exists(a.out, ec)) {
    REEL_CHECK(fs::is_directory(a.out, ec), "--out " << a.out << " is a file, not a folder");
    REEL_CHECK(fs::is_empty(a.out, ec) || fs::exists(fs::path(a.out) / "report.md", ec),
               "--out " << a.out
                        << " exists and is not a reel demo folder (no report.md); choose "
                           "another --out");
  }
  fs::remove_all(data, ec);
  const data::DigitsWritten w = data::write_moving_digits(images, data, static_cast<int>(a.train),
                                                          static_cast<int>(a.test), o);
  std::printf(
      "reel demo: moving digits from %s\n%lld training and %lld held-out clips of 8 frames, "
      "32x32, in %s\nclasses: MoveDown MoveUp ZoomIn ZoomOut; every held-out clip comes with its "
      "time-reversed twin,\nwhich shows the same frames and carries the other class\n",
      png.c_str(), static_cast<long long>(w.train), static_cast<long long>(w.test), data.c_str());
  const Trained lstm = train_one(a, data, "last");
  const Trained pool = train_one(a, data, "pool");
  // A look inside the CNN-LSTM on the first held-out clip (testlist01's first line).
  std::string first_test;
  {
    std::ifstream list(fs::path(data) / "testlist01.txt");
    std::getline(list, first_test);
    first_test = (fs::path(data) / first_test.substr(0, first_test.find(' '))).string();
  }
  const std::string inspect_dir = (fs::path(a.out) / "inspect").string();
  std::printf("\n== inside the LSTM on one held-out clip ==\n%s\n",
              inspect_video(run_checkpoint((fs::path(a.out) / "last").string(), "best"), first_test,
                            inspect_dir)
                  .c_str());
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  std::ostringstream r;
  r << "# reel demo report\n\n"
    << "Moving digits: real handwritten digits (OpenCV's digits.png) moving down or up, growing "
       "or shrinking, 8 frames of 32x32. The class is the direction in time. Every held-out "
       "clip comes with its time-reversed twin, which holds the same frames in the opposite "
       "order and carries the other class.\n\n"
    << "| model | held-out accuracy | training steps | seconds |\n|---|---|---|---|\n";
  char line[256];
  std::snprintf(line, sizeof line, "| CNN-LSTM (fusion last) | %.1f%% | %lld | %.0f |\n",
                lstm.eval.video_top1, static_cast<long long>(lstm.report.steps),
                lstm.report.seconds);
  r << line;
  std::snprintf(line, sizeof line, "| pool baseline (order-blind) | %.1f%% | %lld | %.0f |\n\n",
                pool.eval.video_top1, static_cast<long long>(pool.report.steps),
                pool.report.seconds);
  r << line
    << "Why they differ: the pool baseline averages the per-frame CNN features, so a clip and "
       "its reversal give it the same input and the same answer; one of each pair is wrong, and "
       "it cannot beat 50% on these pairs. The LSTM reads the frames in order and tells "
       "the directions apart.\n\n"
    << "Inside the LSTM: `inspect/index.html` shows the first held-out clip (" << first_test
    << "): its frames, the class probabilities after each frame (how the decision forms as the "
       "clip plays) and heatmaps of the gates i, f, g, o and the states c and h, one row per "
       "unit and one column per frame.\n\n"
    << "Files: `last/` and `pool/` are run folders (config.toml, metrics.jsonl, last and best "
       "checkpoints, confusion.png, curves.png); `data/` is the dataset in UCF101's layout.\n"
    << "Evaluate again with `reel eval --run " << (fs::path(a.out) / "last").string()
    << "`; train on it yourself with `reel train --data " << data << " --layout ucf101 ...`.\n";
  const std::string report = (fs::path(a.out) / "report.md").string();
  write_file_atomic(report, r.str());
  std::printf(
      "\n== result on %lld held-out clips (chance 25%%, order-blind ceiling 50%%) ==\n"
      "CNN-LSTM (fusion last)  %5.1f%%\npool baseline           %5.1f%%\n"
      "The pool baseline sees a clip and its reversal as the same input; the LSTM reads the "
      "order.\nreport: %s; pictures: %s/{last,pool}/{confusion,curves}.png, %s/index.html "
      "(%.0f s in all)\n",
      static_cast<long long>(lstm.eval.videos), lstm.eval.video_top1, pool.eval.video_top1,
      report.c_str(), a.out.c_str(), inspect_dir.c_str(), secs);
  return 0;
}

}  // namespace

Command add_demo(CLI::App& app) {
  auto a = std::make_shared<DemoArgs>();
  CLI::App* sub = app.add_subcommand(
      "demo",
      "make the moving-digits set, train the CNN-LSTM and the order-blind baseline, compare");
  sub->add_option("--out", a->out, "folder for the data, the two runs and report.md")
      ->capture_default_str();
  sub->add_option("--train", a->train, "training clips")
      ->check(CLI::Range(int64_t{16}, int64_t{1000000}))
      ->capture_default_str();
  sub->add_option("--test", a->test, "held-out clips (even: clip + reversed twin)")
      ->check(CLI::Range(int64_t{2}, int64_t{1000000}))
      ->capture_default_str();
  sub->add_option("--epochs", a->epochs, "epochs for each model")
      ->check(CLI::Range(int64_t{1}, int64_t{10000}))
      ->capture_default_str();
  sub->add_option("--threads", a->threads, "compute threads (0: all cores)")
      ->check(CLI::Range(int64_t{0}, int64_t{4096}));
  sub->add_option("--seed", a->seed, "random seed");
  sub->add_option("--digits-png", a->digits_png,
                  "OpenCV's digits.png (default: searched, see scripts/fetch_test_media.sh)");
  return [a] { return run_demo(*a); };
}

}  // namespace reel::apps
