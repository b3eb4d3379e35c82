// `reel detect`: finding actions in a long video with a model trained on short clips.
//
// Sliding windows, not the streaming LSTM: a model trained on short clips never learnt to reset
// its state between two actions, and carried over minutes of video its state mixes what came
// long before. Each window is instead a fresh clip, read as the trainer's evaluation reads a
// video:
//
// - A window is W consecutive frames of the video: by default T (the checkpoint's clip length)
//   at the video's own rate; `--window SECONDS` makes it round(SECONDS * fps) frames. Its T
//   frames are picked from the W as evaluation picks them from a video of W frames (the centres
//   of T equal segments, data::sample_clip), then resized, centre-cropped and normalised with
//   the checkpoint's settings (data::transform_clip). Every frame is decoded and transformed
//   once, and kept only while a window still needs it.
// - Windows start every `--hop` seconds (default: a quarter window, at least one frame), and one
//   more ends at the last frame, so the tail is read too. They go through the model `--batch`
//   at a time, in eval mode without the tape.
// - The probabilities of second s, [s, s + 1), are the mean softmax of the windows whose centre
//   falls in it; a second with no window centre (the first and last half window) takes the
//   window with the nearest centre.
// - A segment is a maximal run of seconds whose top class is the same and at least
//   `--threshold`; its score is that class's mean probability over the run. Runs shorter than
//   `--min-length` seconds are dropped.
//
// The segments are printed as a table (or the whole result as JSON with --json) and written to
// OUT/detect.json with the probabilities of every second, and drawn in OUT/timeline.png.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <iomanip>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "commands.h"
#include "config.h"
#include "plot.h"
#include "reel/core/random.h"
#include "reel/core/reel.h"
#include "reel/data/clip.h"
#include "reel/data/video.h"
#include "reel/kernels/cpu/parallel.h"
#include "trainer.h"

namespace reel::apps {

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

struct DetectArgs {
  std::string video, run, checkpoint, which = "best", out;
  double window = 0.0;  // seconds, when given; else T frames at the video's rate
  double hop = 0.0;     // seconds, when given; else a quarter window
  CLI::Option *window_given = nullptr, *hop_given = nullptr;
  double threshold = 0.5, min_length = 0.0;
  int64_t batch = 16, threads = 0;
  bool as_json = false;
};

struct Window {
  int64_t start = 0;     // first frame
  std::vector<float> p;  // [classes] softmax
};

// The windows of a video, classified. frames: the frames decoded (the true count).
struct Windows {
  std::vector<Window> all;
  int64_t frames = 0, size = 0;  // size: W, frames per window
  double fps = 0.0, hop = 0.0;   // hop in frames
};

// Reads `src` from the first frame to the last once and classifies every window of `size`
// frames, starting every `hop` frames (>= 1), plus one ending at the last frame. Throws
// reel::Error naming the video when it has fewer frames than one window.
Windows classify_windows(VideoClassifier& model, const CheckpointInfo& info, data::FrameSource& src,
                         double fps, int64_t size, double hop, int64_t batch) {
  const int64_t T = info.frames, S = info.size;
  const int64_t C = static_cast<int64_t>(info.classes.size());
  const int64_t frame_numel = 3 * S * S, clip_numel = T * frame_numel;
  const std::string& path = src.path();
  data::TransformOptions t;
  t.resize = static_cast<int>(info.resize);
  t.crop = static_cast<int>(info.size);
  Generator unused(0);
  const data::ClipAugment centred = data::draw_augment(t, false, unused);
  data::SamplerOptions so;
  so.frames = static_cast<int>(T);
  const data::ClipIndices pick = data::sample_clip(size, so, false, 0, unused);

  Windows w;
  w.size = size, w.fps = fps, w.hop = hop;
  std::deque<std::vector<float>> kept;  // kept[i]: frame first + i, [3, S, S] transformed
  int64_t first = 0;
  std::vector<float> buf;  // [pending, T, 3, S, S]: the windows waiting for a forward
  std::vector<int64_t> pending, lengths;
  auto flush = [&] {
    if (pending.empty()) return;
    const int64_t n = static_cast<int64_t>(pending.size());
    NoGradGuard no_grad;
    const Tensor x = Tensor::from_vector(buf, {n, T, 3, S, S});
    const std::vector<float> p = softmax(model.forward(x, lengths), 1).to_vector();
    for (int64_t i = 0; i < n; ++i)
      w.all.push_back({pending[i], std::vector<float>(p.begin() + i * C, p.begin() + (i + 1) * C)});
    buf.clear(), pending.clear(), lengths.clear();
  };
  auto add = [&](int64_t start) {  // frames [start, start + size) must be in `kept`
    buf.resize(buf.size() + clip_numel);
    float* clip = buf.data() + buf.size() - clip_numel;
    for (int64_t k = 0; k < T; ++k) {
      const std::vector<float>& f = kept[start + pick.frames[k] - first];
      std::copy(f.begin(), f.end(), clip + k * frame_numel);
    }
    pending.push_back(start);
    lengths.push_back(pick.length);
    if (static_cast<int64_t>(pending.size()) == batch) flush();
  };
  int64_t j = 0, next = 0;  // the next window: the j-th, starting at frame `next`
  int64_t last_added = -1;
  for (int64_t k = 0;; ++k) {
    const std::vector<cv::Mat> frame = src.read({k});
    if (frame.empty()) break;
    kept.emplace_back(static_cast<size_t>(frame_numel));
    data::transform_clip(frame, t, centred, kept.back().data(), path);
    while (next + size - 1 == k) {
      add(next);
      last_added = next;
      next = static_cast<int64_t>(std::llround(static_cast<double>(++j) * hop));
    }
    // Keep what the next window needs, and the last `size` frames for the window at the end.
    while (first < std::min(next, k + 1 - size)) kept.pop_front(), ++first;
  }
  w.frames = first + static_cast<int64_t>(kept.size());
  REEL_CHECK(w.frames > 0, path << ": no frame could be decoded");
  REEL_CHECK(w.frames >= size, path << " is shorter than one window: " << w.frames << " frames ("
                                    << std::fixed << std::setprecision(2) << w.frames / fps
                                    << " s) against " << size << " (" << size / fps
                                    << " s); nothing to detect (a shorter --window reads it)");
  if (last_added + size < w.frames) add(w.frames - size);
  flush();
  return w;
}

// The probabilities of each second (see the top of the file): [seconds, classes] row-major.
std::vector<float> per_second(const Windows& w, int64_t seconds, int64_t C) {
  // Window centres in seconds, ascending: the windows are in the order of their starts.
  std::vector<double> centre(w.all.size());
  for (size_t i = 0; i < w.all.size(); ++i) centre[i] = (w.all[i].start + w.size / 2.0) / w.fps;
  std::vector<float> out(static_cast<size_t>(seconds * C), 0.0f);
  for (int64_t s = 0; s < seconds; ++s) {
    // The windows whose centre is in [s, s + 1): [first, last).
    size_t first =
        std::lower_bound(centre.begin(), centre.end(), static_cast<double>(s)) - centre.begin();
    size_t last = std::lower_bound(centre.begin(), centre.end(), s + 1.0) - centre.begin();
    if (first == last) {  // none: the nearest centre, of the two around s + 0.5
      const size_t after = std::min(first, centre.size() - 1), before = first ? first - 1 : 0;
      first = std::fabs(centre[before] - (s + 0.5)) <= std::fabs(centre[after] - (s + 0.5)) ? before
                                                                                            : after;
      last = first + 1;
    }
    for (int64_t c = 0; c < C; ++c) {
      double sum = 0.0;
      for (size_t i = first; i < last; ++i) sum += w.all[i].p[c];
      out[s * C + c] = static_cast<float>(sum / static_cast<double>(last - first));
    }
  }
  return out;
}

// Maximal runs of seconds with the same top class at or above threshold, at least min_length
// seconds long; the last second ends at `duration`.
std::vector<Span> find_segments(const std::vector<float>& probs, int64_t seconds, int64_t C,
                                double threshold, double min_length, double duration) {
  std::vector<Span> found;
  for (int64_t s = 0; s < seconds;) {
    const float* p = probs.data() + s * C;
    const int64_t c = top_k(p, C, 1)[0];
    if (p[c] < threshold) {
      ++s;
      continue;
    }
    double sum = 0.0;
    int64_t e = s;
    for (; e < seconds; ++e) {
      const float* q = probs.data() + e * C;
      if (top_k(q, C, 1)[0] != c || q[c] < threshold) break;
      sum += q[c];
    }
    Span sp;
    sp.start = static_cast<double>(s);
    sp.end = std::min(static_cast<double>(e), duration);
    sp.cls = c;
    sp.score = sum / static_cast<double>(e - s);
    if (sp.end - sp.start >= min_length) found.push_back(sp);
    s = e;
  }
  return found;
}

std::string shortest(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

void check_seconds(const char* option, double v, bool zero_ok) {
  if (!(std::isfinite(v) && (v > 0.0 || (zero_ok && v == 0.0))))
    throw UsageError(std::string(option) + " must be a number of seconds " +
                     (zero_ok ? "(0 or more)" : "above 0") + " (got " + shortest(v) + ")");
}

int run_detect(const DetectArgs& a) {
  if (!(a.threshold >= 0.0 && a.threshold <= 1.0))
    throw UsageError("--threshold must be a probability between 0 and 1 (got " +
                     shortest(a.threshold) + ")");
  const bool has_window = a.window_given->count() > 0, has_hop = a.hop_given->count() > 0;
  if (has_window) check_seconds("--window", a.window, false);
  if (has_hop) check_seconds("--hop", a.hop, false);
  check_seconds("--min-length", a.min_length, true);
  if (a.batch < 1 || a.batch > 4096)
    throw UsageError("--batch must be between 1 and 4096 (got " + std::to_string(a.batch) + ")");
  if (a.threads > 0) cpu::set_num_threads(static_cast<int>(a.threads));
  data::quiet_opencv();
  const std::string path = chosen_checkpoint(a.run, a.which, a.checkpoint);
  const Checkpoint ck = load_checkpoint(path);
  std::unique_ptr<VideoClassifier> model = model_from_checkpoint(ck, path);
  const CheckpointInfo& info = ck.info;
  const int64_t C = static_cast<int64_t>(info.classes.size());

  std::unique_ptr<data::FrameSource> src = data::open_source(a.video);
  const bool fps_known = src->fps() > 0;
  const double fps = fps_known ? src->fps() : 25.0;
  // Capped, so that a huge value means "longer than the video", never an overflow.
  const int64_t size =
      has_window ? std::max<int64_t>(1, std::llround(std::min(a.window * fps, 1e12))) : info.frames;
  const double hop = std::clamp(has_hop ? a.hop * fps : size / 4.0, 1.0, 1e12);
  // The last `size` frames stay in memory, transformed (see classify_windows).
  const double gib = static_cast<double>(size) * 3 * info.size * info.size * sizeof(float) /
                     (1024.0 * 1024.0 * 1024.0);
  if (gib > 2.0)
    throw UsageError("--window " + shortest(a.window) + " is " + std::to_string(size) +
                     " frames, which would hold " + shortest(gib) +
                     " GiB of frames (at most 2): give a shorter --window");
  const auto t0 = std::chrono::steady_clock::now();
  const Windows w = classify_windows(*model, info, *src, fps, size, hop, a.batch);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double duration = w.frames / fps;
  const int64_t seconds = std::max<int64_t>(1, static_cast<int64_t>(std::ceil(duration - 1e-9)));
  const std::vector<float> probs = per_second(w, seconds, C);
  const std::vector<Span> found =
      find_segments(probs, seconds, C, a.threshold, a.min_length, duration);

  json segments = json::array();
  for (const Span& s : found)
    segments.push_back(
        {{"start", s.start}, {"end", s.end}, {"class", info.classes[s.cls]}, {"score", s.score}});
  json per_s = json::array();
  for (int64_t s = 0; s < seconds; ++s)
    per_s.push_back(std::vector<float>(probs.begin() + s * C, probs.begin() + (s + 1) * C));
  const json result = {
      {"video", a.video},
      {"checkpoint", path},
      {"frames", w.frames},
      {"fps", fps},
      {"duration_s", duration},
      {"window", {{"frames", w.size}, {"seconds", w.size / fps}, {"clip_frames", info.frames}}},
      {"hop", {{"frames", w.hop}, {"seconds", w.hop / fps}}},
      {"windows", w.all.size()},
      {"threshold", a.threshold},
      {"min_length_s", a.min_length},
      {"classes", info.classes},
      {"probabilities_per_second", per_s},
      {"segments", segments}};

  const std::string out =
      a.out.empty() ? (a.run.empty() ? fs::path("detect") : fs::path(a.run) / "detect").string()
                    : a.out;
  std::error_code ec;
  fs::create_directories(out, ec);
  REEL_CHECK(fs::is_directory(out), "--out " << out << ": cannot create the folder");
  const std::string json_path = (fs::path(out) / "detect.json").string();
  const std::string png_path = (fs::path(out) / "timeline.png").string();
  write_file_atomic(json_path, result.dump(2) + "\n");
  char title[160];
  std::snprintf(title, sizeof title, "class probability per second; segments at or above %.2f",
                a.threshold);
  draw_timeline(probs, static_cast<int>(seconds), info.classes, found, duration, title, png_path);

  if (a.as_json) {
    std::printf("%s\n", result.dump(2).c_str());
    return 0;
  }
  std::printf("reel detect: %s, %lld frames at %.1f frames/s%s (%.1f s); %s\n", a.video.c_str(),
              static_cast<long long>(w.frames), fps, fps_known ? "" : " (assumed)", duration,
              path.c_str());
  std::printf(
      "%zu windows of %lld frames (%.2f s, read as clips of %lld frames) every %.3g frames "
      "(%.2f s) in %.1f s\n",
      w.all.size(), static_cast<long long>(w.size), w.size / fps,
      static_cast<long long>(info.frames), w.hop, w.hop / fps, secs);
  std::printf("%zu segments where one class stays at or above %.2f:\n\n", found.size(),
              a.threshold);
  std::printf("%9s %9s  %-24s %6s\n", "start (s)", "end (s)", "class", "score");
  for (const Span& s : found)
    std::printf("%9.1f %9.1f  %-24s %6.3f\n", s.start, s.end,
                info.classes[s.cls].substr(0, 24).c_str(), s.score);
  std::printf("\nwritten: %s, %s\n", json_path.c_str(), png_path.c_str());
  return 0;
}

}  // namespace

Command add_detect(CLI::App& app) {
  auto a = std::make_shared<DetectArgs>();
  CLI::App* sub = app.add_subcommand(
      "detect", "find actions in a long video: class probabilities per second and segments");
  sub->add_option("video", a->video, "a video file or frame folder")->required();
  add_checkpoint_options(sub, a->run, a->which, a->checkpoint);
  a->window_given =
      sub->add_option("--window", a->window,
                      "seconds per window, its T frames spread over it (default: T frames at the "
                      "video's rate, as the clips the model trained on)");
  a->hop_given =
      sub->add_option("--hop", a->hop, "seconds between window starts (default: a quarter window)");
  sub->add_option("--threshold", a->threshold,
                  "a segment's class has at least this probability every second")
      ->capture_default_str();
  sub->add_option("--min-length", a->min_length, "drop segments shorter than this (seconds)")
      ->capture_default_str();
  sub->add_option("--batch", a->batch, "windows per forward")->capture_default_str();
  sub->add_option("--threads", a->threads, "compute threads (0: all cores)")
      ->check(CLI::Range(int64_t{0}, int64_t{4096}));
  sub->add_option("--out", a->out, "folder for detect.json and timeline.png (default: RUN/detect)");
  sub->add_flag("--json", a->as_json, "print the result as JSON instead of the table");
  sub->footer(
      "Exit codes: 0 done, 1 the video or the checkpoint could not be read or the video is "
      "shorter than one window, 2 bad usage.");
  return [a] { return run_detect(*a); };
}

}  // namespace reel::apps
