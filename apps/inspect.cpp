// `reel inspect`: a look inside the LSTM while it reads one clip, for teaching. It records the
// gate activations i, f, g, o and the states c, h of every layer and direction at every step
// (LSTM::set_record_gates), the class probabilities after each step (the clip cut after step t,
// given as lengths: one forward of T prefixes), and draws them as PNG heatmaps under a strip of
// the frames, with an index.html that says how to read each, and the raw values as
// safetensors.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

#include "commands.h"
#include "config.h"
#include "evaluate.h"
#include "plot.h"
#include "reel/core/reel.h"
#include "reel/kernels/cpu/parallel.h"
#include "trainer.h"

namespace reel::apps {

namespace fs = std::filesystem;

namespace {

struct InspectArgs {
  std::string video, run, checkpoint, which = "best", out;
  int64_t threads = 0;
};

// What each picture shows, for index.html.
const char* explain(const std::string& what) {
  if (what == "i")
    return "input gate i = sigmoid(.): how much of the new candidate g enters the cell (0 to 1).";
  if (what == "f")
    return "forget gate f = sigmoid(.): how much of the cell state is kept from the step before "
           "(1 keeps everything).";
  if (what == "g") return "candidate g = tanh(.): the new content offered to the cell (-1 to 1).";
  if (what == "o")
    return "output gate o = sigmoid(.): how much of tanh(c) is shown as the output h.";
  if (what == "c")
    return "cell state c = f * c_prev + i * g: the memory carried along the clip. Units that "
           "build up steadily count or integrate something over time.";
  return "hidden state h = o * tanh(c): what the layer passes on (to the next layer, or to the "
         "classifier at the last step).";
}

// Column t of a [T, B, H] record for clip b, as a [H, T] row-major matrix (units down, steps
// across).
std::vector<float> units_by_step(const Tensor& rec, int64_t b) {
  const int64_t T = rec.size(0), B = rec.size(1), H = rec.size(2);
  const std::vector<float> v = rec.to_vector();
  std::vector<float> m(static_cast<size_t>(H * T));
  for (int64_t t = 0; t < T; ++t)
    for (int64_t h = 0; h < H; ++h) m[h * T + t] = v[(t * B + b) * H + h];
  return m;
}

}  // namespace

std::string inspect_video(const std::string& path, const std::string& video,
                          const std::string& out) {
  const Checkpoint ck = load_checkpoint(path);
  std::unique_ptr<VideoClassifier> model = model_from_checkpoint(ck, path);
  REEL_CHECK(model->lstm() != nullptr,
             path << " is the pool baseline (fusion pool): it has no LSTM to look inside");
  std::error_code ec;
  fs::create_directories(out, ec);
  REEL_CHECK(fs::is_directory(out), "--out " << out << ": cannot create the folder");
  const data::Batch clip = read_video_clips(ck.info, video, 1);
  const int64_t T = clip.clips.size(1), S = clip.clips.size(3);
  const int64_t C = ck.info.model.num_classes;
  // T prefixes of the clip in one batch: prefix t has length t + 1. The last is the whole clip.
  const Tensor batch = expand(clip.clips, {T, T, 3, S, S});
  std::vector<int64_t> lengths(static_cast<size_t>(T));
  for (int64_t t = 0; t < T; ++t) lengths[t] = std::min<int64_t>(t + 1, clip.lengths[0]);
  model->lstm()->set_record_gates(true);
  Tensor probs;
  {
    NoGradGuard no_grad;
    probs = softmax(model->forward(batch, lengths), 1);  // [T, C]
  }
  const std::vector<GateRecord>& recs = model->lstm()->gate_records();
  const int64_t dirs = model->lstm()->options().bidirectional ? 2 : 1;

  TensorMap raw;
  raw["probabilities"] = probs;
  raw["frames"] = reshape(slice(clip.clips, 0, 0, 1), {T, 3, S, S});
  std::string html =
      "<!doctype html><html><head><meta charset=\"utf-8\"><title>reel inspect</title>"
      "<style>body{font-family:sans-serif;max-width:900px;margin:2em auto}img{max-width:100%}"
      "h2{margin-top:2em}</style></head><body>\n<h1>Inside the LSTM: " +
      video + "</h1>\n<p>Model " + path + " (" + ck.info.model.backbone + " width " +
      std::to_string(ck.info.model.width) + ", LSTM " + std::to_string(ck.info.model.hidden_size) +
      " x " + std::to_string(ck.info.model.num_layers) + ", fusion " +
      fusion_name(ck.info.model.fusion) +
      "). Every picture has the clip's steps from left to right, one per frame.</p>\n";

  // The frames, as the model saw them (the normalisation undone).
  std::vector<cv::Mat> frames;
  const std::vector<float> px = raw["frames"].to_vector();
  const float mean_rgb[3] = {0.485f, 0.456f, 0.406f}, std_rgb[3] = {0.229f, 0.224f, 0.225f};
  for (int64_t t = 0; t < T; ++t) {
    cv::Mat m(static_cast<int>(S), static_cast<int>(S), CV_8UC3);
    for (int64_t y = 0; y < S; ++y)
      for (int64_t x = 0; x < S; ++x)
        for (int ch = 0; ch < 3; ++ch) {
          const float v = px[((t * 3 + ch) * S + y) * S + x] * std_rgb[ch] + mean_rgb[ch];
          m.at<cv::Vec3b>(static_cast<int>(y), static_cast<int>(x))[2 - ch] =
              static_cast<uchar>(std::clamp(v * 255.0f + 0.5f, 0.0f, 255.0f));
        }
    frames.push_back(m);
  }
  draw_strip(frames, 96, "the frames of the clip, in order",
             (fs::path(out) / "frames.png").string());
  html += "<h2>The frames</h2><img src=\"frames.png\">\n";

  // How the decision forms: the probabilities after each step.
  const std::vector<float> p = probs.to_vector();
  Panel panel{"probability", {}};
  for (int64_t c = 0; c < C; ++c) {
    Series s{ck.info.classes[c], {}, {}};
    for (int64_t t = 0; t < T; ++t) s.x.push_back(t + 1), s.y.push_back(p[t * C + c]);
    panel.series.push_back(s);
  }
  std::vector<Panel> panels = {panel};
  draw_curves(panels, "frames seen", "class probabilities after each frame",
              (fs::path(out) / "probabilities.png").string());
  int64_t best = 0;
  for (int64_t c = 1; c < C; ++c)
    if (p[(T - 1) * C + c] > p[(T - 1) * C + best]) best = c;
  char line[256];
  std::snprintf(line, sizeof line, "%s, %.1f%%", ck.info.classes[best].c_str(),
                100.0 * p[(T - 1) * C + best]);
  html +=
      "<h2>How the decision forms</h2><p>The classifier's probabilities if the clip ended "
      "after each frame (the same weights; the clip cut short). After all " +
      std::to_string(T) + " frames: <b>" + line + "</b>.</p><img src=\"probabilities.png\">\n";

  for (int64_t l = 0; l < ck.info.model.num_layers; ++l)
    for (int64_t d = 0; d < dirs; ++d) {
      const GateRecord& r = recs.at(static_cast<size_t>(l * dirs + d));
      const std::string name = "layer" + std::to_string(l) + (d ? "_reverse" : "");
      html += "<h2>LSTM " + name + "</h2>\n";
      const std::pair<std::string, const Tensor*> parts[] = {{"i", &r.i}, {"f", &r.f}, {"g", &r.g},
                                                             {"o", &r.o}, {"c", &r.c}, {"h", &r.h}};
      for (const auto& [what, rec] : parts) {
        const std::vector<float> m = units_by_step(*rec, T - 1);
        const int64_t H = rec->size(2);
        float lo = 0.0f, hi = 1.0f;  // the sigmoid gates
        if (what == "g" || what == "h") lo = -1.0f;
        if (what == "c") {
          float big = 1e-6f;
          for (float v : m) big = std::max(big, std::fabs(v));
          lo = -big, hi = big;
        }
        const std::string file = name + "_" + what + ".png";
        draw_heatmap(m, static_cast<int>(H), static_cast<int>(T), lo, hi, "step (frame)", "unit",
                     name + ": " + what, (fs::path(out) / file).string());
        raw[name + "." + what] = reshape(slice(*rec, 1, T - 1, T), {T, H});
        html += "<p><b>" + what + "</b>: " + explain(what) + "</p><img src=\"" + file + "\">\n";
      }
    }
  html +=
      "<h2>Raw values</h2><p><code>values.safetensors</code>: <code>frames</code> [T, 3, S, S] "
      "(normalised), <code>probabilities</code> [T, classes], and <code>layerN.i</code> ... "
      "<code>layerN.h</code> [T, H] for each layer (and <code>_reverse</code> direction).</p>"
      "</body></html>\n";
  save_safetensors((fs::path(out) / "values.safetensors").string(), raw);
  write_file_atomic((fs::path(out) / "index.html").string(), html);
  std::ostringstream m;
  m << video << ", " << T << " frames; after the last frame: " << line << "\nwritten to " << out
    << ": index.html, frames.png, probabilities.png, " << 6 * ck.info.model.num_layers * dirs
    << " heatmaps, values.safetensors";
  return m.str();
}

namespace {

int run_inspect(const InspectArgs& a) {
  if (a.threads > 0) cpu::set_num_threads(static_cast<int>(a.threads));
  const std::string path = chosen_checkpoint(a.run, a.which, a.checkpoint);
  const std::string out =
      a.out.empty() ? (fs::path(a.run.empty() ? "." : a.run) / "inspect").string() : a.out;
  std::printf("reel inspect: %s\n", inspect_video(path, a.video, out).c_str());
  return 0;
}

}  // namespace

Command add_inspect(CLI::App& app) {
  auto a = std::make_shared<InspectArgs>();
  CLI::App* sub = app.add_subcommand(
      "inspect", "draw the LSTM's gates and states over one clip, for teaching (index.html)");
  sub->add_option("video", a->video, "a video file or frame folder")->required();
  add_checkpoint_options(sub, a->run, a->which, a->checkpoint);
  sub->add_option("--out", a->out, "output folder (default: RUN/inspect)");
  sub->add_option("--threads", a->threads, "compute threads (0: all cores)")
      ->check(CLI::Range(int64_t{0}, int64_t{4096}));
  return [a] { return run_inspect(*a); };
}

}  // namespace reel::apps
