// `reel predict`: the top classes of each video with their probabilities, or, with --stream,
// the probabilities as one video plays, frame by frame, with the LSTM's state carried from
// frame to frame (VideoClassifier::stream_step) and the latency of each frame.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <numeric>
#include <string>
#include <vector>

#include "commands.h"
#include "config.h"
#include "evaluate.h"
#include "reel/core/random.h"
#include "reel/core/reel.h"
#include "reel/data/clip.h"
#include "reel/data/loader.h"
#include "reel/data/video.h"
#include "reel/kernels/cpu/parallel.h"
#include "trainer.h"

namespace reel::apps {

namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

struct PredictArgs {
  std::vector<std::string> videos;
  std::string run, checkpoint, which = "best";
  int64_t top = 5, clips = 1, every = 1, threads = 0;
  bool as_json = false, stream = false;
};

json top_json(const std::vector<float>& p, const std::vector<std::string>& classes, int64_t k) {
  json top = json::array();
  for (int64_t c : top_k(p.data(), static_cast<int64_t>(p.size()), k))
    top.push_back({{"class", classes[c]}, {"probability", p[c]}});
  return top;
}

}  // namespace

data::Batch read_video_clips(const CheckpointInfo& info, const std::string& path, int64_t clips) {
  data::Dataset ds;
  ds.classes = info.classes;
  ds.items.push_back({path, 0});
  data::LoaderOptions lo;
  lo.batch_size = static_cast<int>(clips);
  lo.workers = 1;
  lo.train = false;
  lo.shuffle = false;
  lo.on_bad = data::OnBadVideo::Fail;
  lo.sampler.frames = static_cast<int>(info.frames);
  lo.sampler.clips_per_video = static_cast<int>(clips);
  lo.transform.resize = static_cast<int>(info.resize);
  lo.transform.crop = static_cast<int>(info.size);
  data::Loader loader(ds, lo);
  loader.start_epoch(0);
  data::Batch b;
  try {
    REEL_CHECK(loader.next(b), path << ": no clip could be read");
  } catch (const Error& e) {
    // The loader's words for its fail policy mean nothing here: keep what is wrong with the file.
    std::string msg = e.what();
    const std::string policy = "(on-bad-video fail): ";
    const size_t at = msg.find(policy);
    throw Error(at == std::string::npos ? msg : msg.substr(at + policy.size()));
  }
  return b;
}

namespace {

// The video's class probabilities: its `clips` evaluation clips, averaged.
std::vector<float> predict_video(VideoClassifier& model, const CheckpointInfo& info,
                                 const std::string& path, int64_t clips) {
  const data::Batch b = read_video_clips(info, path, clips);
  NoGradGuard no_grad;
  const Tensor p = mean(softmax(model.forward(b.clips, b.lengths), 1), {0});
  return p.to_vector();
}

int stream_video(VideoClassifier& model, const CheckpointInfo& info, const PredictArgs& a) {
  const std::string& path = a.videos[0];
  std::unique_ptr<data::FrameSource> src = data::open_source(path);
  data::TransformOptions t;
  t.resize = static_cast<int>(info.resize);
  t.crop = static_cast<int>(info.size);
  Generator unused(0);
  const data::ClipAugment centred = data::draw_augment(t, false, unused);
  const double fps = src->fps() > 0 ? src->fps() : 25.0;
  VideoStreamState state;
  std::vector<double> latency;
  std::vector<float> p;
  if (!a.as_json)
    std::printf("reel predict --stream: %s (%.1f frames/s), %s\n", path.c_str(), fps,
                "probabilities after each frame, the LSTM's state carried over");
  for (int64_t k = 0;; ++k) {
    const std::vector<cv::Mat> frames = src->read({k});
    if (frames.empty()) break;
    const auto t0 = Clock::now();
    Tensor x = Tensor::zeros({1, 3, info.size, info.size});
    data::transform_clip(frames, t, centred, x.data(), path);
    p = softmax(model.stream_step(x, state), 1).to_vector();
    latency.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    if (k % a.every != 0) continue;
    if (a.as_json) {
      const json line = {{"frame", k},
                         {"time_s", k / fps},
                         {"latency_ms", latency.back()},
                         {"top", top_json(p, info.classes, a.top)}};
      std::printf("%s\n", line.dump().c_str());
    } else {
      std::printf("frame %5lld  %7.2f s ", static_cast<long long>(k), k / fps);
      for (int64_t c : top_k(p.data(), static_cast<int64_t>(p.size()), std::min<int64_t>(a.top, 3)))
        std::printf("  %s %.3f", info.classes[c].c_str(), p[c]);
      std::printf("   %.1f ms\n", latency.back());
    }
    std::fflush(stdout);
  }
  REEL_CHECK(!latency.empty(), path << ": no frame could be decoded");
  std::vector<double> sorted = latency;
  std::sort(sorted.begin(), sorted.end());
  const double total = std::accumulate(latency.begin(), latency.end(), 0.0);
  const double p95 = sorted[std::min(sorted.size() - 1, sorted.size() * 95 / 100)];
  if (a.as_json) {
    const json end = {{"frames", latency.size()},
                      {"mean_latency_ms", total / latency.size()},
                      {"p95_latency_ms", p95},
                      {"top", top_json(p, info.classes, a.top)}};
    std::printf("%s\n", end.dump().c_str());
  } else {
    std::printf("%zu frames; latency per frame %.1f ms mean, %.1f ms p95 (%.0f frames/s)\n",
                latency.size(), total / latency.size(), p95, 1000.0 * latency.size() / total);
  }
  return 0;
}

int run_predict(const PredictArgs& a) {
  if (a.stream && a.videos.size() != 1)
    throw UsageError("--stream reads one video (or frame folder); " +
                     std::to_string(a.videos.size()) + " given");
  if (a.threads > 0) cpu::set_num_threads(static_cast<int>(a.threads));
  data::quiet_opencv();
  const std::string path = chosen_checkpoint(a.run, a.which, a.checkpoint);
  const Checkpoint ck = load_checkpoint(path);
  std::unique_ptr<VideoClassifier> model = model_from_checkpoint(ck, path);
  if (a.stream) return stream_video(*model, ck.info, a);
  int failed = 0;
  json all = json::array();
  for (const std::string& v : a.videos) {
    try {
      const std::vector<float> p = predict_video(*model, ck.info, v, a.clips);
      if (a.as_json) {
        all.push_back({{"path", v}, {"top", top_json(p, ck.info.classes, a.top)}});
      } else {
        std::printf("%s\n", v.c_str());
        for (int64_t c : top_k(p.data(), static_cast<int64_t>(p.size()), a.top))
          std::printf("  %-24s %.3f\n", ck.info.classes[c].c_str(), p[c]);
      }
    } catch (const Error& e) {
      ++failed;
      std::fprintf(stderr, "reel: error: %s\n", e.what());
      if (a.as_json) all.push_back({{"path", v}, {"error", e.what()}});
    }
  }
  if (a.as_json) std::printf("%s\n", all.dump(2).c_str());
  return failed ? 1 : 0;
}

}  // namespace

Command add_predict(CLI::App& app) {
  auto a = std::make_shared<PredictArgs>();
  CLI::App* sub = app.add_subcommand(
      "predict", "the top classes of each video, or (--stream) as one video plays");
  sub->add_option("videos", a->videos, "video files or frame folders")->required();
  add_checkpoint_options(sub, a->run, a->which, a->checkpoint);
  sub->add_option("--top", a->top, "classes to list")
      ->check(CLI::Range(int64_t{1}, int64_t{1000}))
      ->capture_default_str();
  sub->add_option("--clips", a->clips, "clips per video, their probabilities averaged")
      ->check(CLI::Range(int64_t{1}, int64_t{64}))
      ->capture_default_str();
  sub->add_flag("--json", a->as_json, "JSON for scripts (--stream: one line per frame)");
  sub->add_flag("--stream", a->stream,
                "read one video frame by frame, printing the probabilities as it plays");
  sub->add_option("--every", a->every, "--stream: print every N-th frame")
      ->check(CLI::Range(int64_t{1}, int64_t{1000000}))
      ->capture_default_str();
  sub->add_option("--threads", a->threads, "compute threads (0: all cores)")
      ->check(CLI::Range(int64_t{0}, int64_t{4096}));
  sub->footer("Exit codes: 0 done, 1 a video or the checkpoint could not be read, 2 bad usage.");
  return [a] { return run_predict(*a); };
}

}  // namespace reel::apps
