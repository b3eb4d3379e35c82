// `reel eval`: a checkpoint on a dataset. Clip-level and video-level (K clips per video, their
// probabilities averaged) top-1 and top-5, per-class accuracy and the confusion matrix, printed
// as a table, written as JSON, and drawn as PNG with the learning curves of the run.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <numeric>
#include <string>

#include <toml++/toml.h>

#include "commands.h"
#include "config.h"
#include "evaluate.h"
#include "plot.h"
#include "reel/core/reel.h"
#include "reel/data/loader.h"
#include "reel/kernels/cpu/parallel.h"
#include "trainer.h"

namespace reel::apps {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

struct EvalArgs {
  std::string run, checkpoint, data, layout, list, out;
  std::string split;  // UCF101: 1 to 3; ActivityNet: training or validation
  int64_t clips = 1, batch = 8, workers = 0, threads = 0;
  std::string which = "best";
};

// Where the run's validation data is, from its config.toml.
void data_from_run(const Checkpoint& ck, EvalArgs& a) {
  toml::table t;
  try {
    t = toml::parse(ck.info.config);
  } catch (const toml::parse_error& e) {
    throw Error("the checkpoint's settings are not valid TOML: " + std::string(e.description()));
  }
  const std::string data = t["data"].value_or(std::string());
  const std::string val = t["val_data"].value_or(std::string());
  const std::string layout = t["layout"].value_or(std::string("folder"));
  if (a.layout.empty()) a.layout = layout;
  if (a.list.empty() && val.empty()) a.list = t["list"].value_or(std::string());
  if (a.split.empty() && layout == "ucf101")
    a.split = std::to_string(t["split"].value_or(int64_t{1}));
  if (!val.empty()) {
    a.data = val;
  } else if (layout == "ucf101" || layout == "kinetics" || layout == "activitynet") {
    a.data = data;
  } else {
    throw UsageError(
        "--data is needed: the run trained on a " + layout +
        " dataset without a validation set (--val-data), so there is no held-out set to use");
  }
}

}  // namespace

bool draw_run_curves(const std::string& metrics_path, const std::string& png) {
  std::ifstream in(metrics_path);
  Series step_loss{"loss per step", {}, {}}, epoch_loss{"training loss (epoch)", {}, {}},
      val_loss{"validation loss", {}, {}}, train_acc{"training", {}, {}},
      val_acc{"validation", {}, {}};
  std::string line;
  while (std::getline(in, line)) {
    const json j = json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object()) continue;
    const double step = j.value("step", 0.0);
    if (j.value("kind", "") == "step") {
      step_loss.x.push_back(step), step_loss.y.push_back(j.value("loss", NAN));
    } else if (j.value("kind", "") == "epoch") {
      epoch_loss.x.push_back(step), epoch_loss.y.push_back(j.value("loss", NAN));
      train_acc.x.push_back(step), train_acc.y.push_back(100.0 * j.value("accuracy", NAN));
      if (j.contains("val_accuracy")) {
        val_acc.x.push_back(step), val_acc.y.push_back(100.0 * j.value("val_accuracy", NAN));
        val_loss.x.push_back(step), val_loss.y.push_back(j.value("val_loss", NAN));
      }
    }
  }
  if (step_loss.x.empty() && epoch_loss.x.empty()) return false;
  Panel loss{"loss", {}}, acc{"accuracy (%)", {}};
  for (Series* s : {&step_loss, &epoch_loss, &val_loss})
    if (!s->x.empty()) loss.series.push_back(*s);
  for (Series* s : {&train_acc, &val_acc})
    if (!s->x.empty()) acc.series.push_back(*s);
  std::vector<Panel> panels = {loss};
  if (!acc.series.empty()) panels.push_back(acc);
  draw_curves(panels, "step", "learning curves: " + metrics_path, png);
  return true;
}

EvalResult evaluate(VideoClassifier& model, const CheckpointInfo& info, const data::Dataset& ds,
                    int64_t clips_per_video, int64_t batch, int64_t workers) {
  data::LoaderOptions lo;
  lo.batch_size = static_cast<int>(batch);
  lo.workers = static_cast<int>(workers);
  lo.train = false;
  lo.shuffle = false;
  lo.sampler.frames = static_cast<int>(info.frames);
  lo.sampler.clips_per_video = static_cast<int>(clips_per_video);
  lo.transform.resize = static_cast<int>(info.resize);
  lo.transform.crop = static_cast<int>(info.size);
  data::Loader loader(ds, lo);

  const int64_t C = static_cast<int64_t>(info.classes.size());
  // Items of one file are one video (ActivityNet's segments): its prediction averages the clips
  // of all its segments. A store's items (no path) are videos each.
  std::vector<int64_t> group(ds.size());
  std::map<std::string, int64_t> by_path;
  int64_t V = 0;
  for (size_t i = 0; i < ds.size(); ++i) {
    const std::string& path = ds.items[i].path;
    if (path.empty()) {
      group[i] = V++;
      continue;
    }
    auto it = by_path.emplace(path, V).first;
    if (it->second == V) ++V;
    group[i] = it->second;
  }
  std::vector<double> video_prob(static_cast<size_t>(V * C), 0.0);
  std::vector<int64_t> video_clips(static_cast<size_t>(V), 0), video_label(static_cast<size_t>(V));
  EvalResult r;
  int64_t clip_top1 = 0, clip_top5 = 0;
  model.eval();
  NoGradGuard no_grad;
  loader.start_epoch(0);
  data::Batch b;
  while (loader.next(b)) {
    const std::vector<float> p = softmax(model.forward(b.clips, b.lengths), 1).to_vector();
    for (size_t i = 0; i < b.labels.size(); ++i) {
      const float* pi = p.data() + i * static_cast<size_t>(C);
      const std::vector<int64_t> top = top_k(pi, C, 5);
      clip_top1 += top[0] == b.labels[i];
      clip_top5 += std::find(top.begin(), top.end(), b.labels[i]) != top.end();
      ++r.clips;
      const int64_t v = group[static_cast<size_t>(b.videos[i])];
      for (int64_t c = 0; c < C; ++c) video_prob[v * C + c] += pi[c];
      video_clips[v] += 1;
      video_label[v] = b.labels[i];
    }
  }
  REEL_CHECK(r.clips > 0, "evaluation: no video of the " << V << " could be read");
  r.confusion.assign(C, std::vector<int64_t>(C, 0));
  int64_t v_top1 = 0, v_top5 = 0;
  std::vector<float> avg(static_cast<size_t>(C));
  for (int64_t v = 0; v < V; ++v) {
    if (video_clips[v] == 0) continue;  // a bad video, skipped by the loader
    for (int64_t c = 0; c < C; ++c)
      avg[c] = static_cast<float>(video_prob[v * C + c] / video_clips[v]);
    const std::vector<int64_t> top = top_k(avg.data(), C, 5);
    v_top1 += top[0] == video_label[v];
    v_top5 += std::find(top.begin(), top.end(), video_label[v]) != top.end();
    r.confusion[video_label[v]][top[0]] += 1;
    ++r.videos;
  }
  auto pct = [](int64_t a, int64_t b) { return b ? 100.0 * a / b : 0.0; };
  r.clip_top1 = pct(clip_top1, r.clips);
  r.clip_top5 = pct(clip_top5, r.clips);
  r.video_top1 = pct(v_top1, r.videos);
  r.video_top5 = pct(v_top5, r.videos);
  return r;
}

namespace {

int run_eval(EvalArgs a) {
  if (a.clips < 1 || a.clips > 64)
    throw UsageError("--clips must be between 1 and 64 (got " + std::to_string(a.clips) + ")");
  if (a.batch < 1 || a.batch > 65536)
    throw UsageError("--batch must be between 1 and 65536 (got " + std::to_string(a.batch) + ")");
  const std::string path = chosen_checkpoint(a.run, a.which, a.checkpoint);
  const Checkpoint ck = load_checkpoint(path);
  if (a.data.empty()) {
    if (a.run.empty()) throw UsageError("--data is needed with --checkpoint");
    data_from_run(ck, a);
  }
  if (a.layout.empty()) a.layout = "folder";
  if (a.out.empty())
    a.out = a.run.empty() ? std::string("eval") : (fs::path(a.run) / "eval").string();
  if (a.threads > 0) cpu::set_num_threads(static_cast<int>(a.threads));
  std::unique_ptr<VideoClassifier> model = model_from_checkpoint(ck, path);

  // The held-out part: UCF101's testlist of the split, Kinetics' "val" rows, ActivityNet's
  // validation subset (or, with --split training, its training subset).
  int64_t split = 1;
  bool train_part = false;
  if (a.layout == "activitynet") {
    if (a.split != "" && a.split != "validation" && a.split != "training")
      throw UsageError("--split must be training or validation for ActivityNet (got " + a.split +
                       ")");
    train_part = a.split == "training";
  } else if (!a.split.empty()) {
    if (a.split != "1" && a.split != "2" && a.split != "3")
      throw UsageError("--split must be 1, 2 or 3 for UCF101 (got " + a.split + ")");
    split = std::stoi(a.split);
  }
  data::Dataset ds = open_dataset(a.data, a.layout, split, train_part, a.list);
  for (const std::string& note : ds.notes) std::fprintf(stderr, "reel: %s\n", note.c_str());
  REEL_CHECK(ds.classes == ck.info.classes, a.data << " has other classes (" << ds.classes.size()
                                                   << ") than the checkpoint " << path << " ("
                                                   << ck.info.classes.size() << ")");
  const EvalResult r = evaluate(*model, ck.info, ds, a.clips, a.batch, a.workers);
  const int64_t C = static_cast<int64_t>(ck.info.classes.size());
  const auto& confusion = r.confusion;
  auto pct = [](int64_t a, int64_t b) { return b ? 100.0 * a / b : 0.0; };
  json result = {{"checkpoint", path},         {"data", a.data},
                 {"clips_per_video", a.clips}, {"clips", r.clips},
                 {"videos", r.videos},         {"clip_top1", r.clip_top1},
                 {"clip_top5", r.clip_top5},   {"video_top1", r.video_top1},
                 {"video_top5", r.video_top5}, {"classes", ck.info.classes},
                 {"confusion", confusion}};
  json per_class = json::object();
  std::printf("reel eval: %s on %s (%lld videos, %lld clips, %lld per video)\n\n", path.c_str(),
              a.data.c_str(), static_cast<long long>(r.videos), static_cast<long long>(r.clips),
              static_cast<long long>(a.clips));
  std::printf("%-28s %8s %8s\n", "", "top-1", "top-5");
  std::printf("%-28s %7.1f%% %7.1f%%\n", "clip", r.clip_top1, r.clip_top5);
  std::printf("%-28s %7.1f%% %7.1f%%\n\n", "video", r.video_top1, r.video_top5);
  std::printf("%-28s %8s %8s\n", "class", "videos", "top-1");
  for (int64_t c = 0; c < C; ++c) {
    const int64_t n = std::accumulate(confusion[c].begin(), confusion[c].end(), int64_t{0});
    per_class[ck.info.classes[c]] = {{"videos", n}, {"top1", pct(confusion[c][c], n)}};
    std::printf("%-28s %8lld %7.1f%%\n", ck.info.classes[c].substr(0, 28).c_str(),
                static_cast<long long>(n), pct(confusion[c][c], n));
  }
  result["per_class"] = per_class;
  std::error_code ec;
  fs::create_directories(a.out, ec);
  REEL_CHECK(fs::is_directory(a.out), "--out " << a.out << ": cannot create the folder");
  const std::string json_path = (fs::path(a.out) / "eval.json").string();
  write_file_atomic(json_path, result.dump(2) + "\n");
  const std::string conf_png = (fs::path(a.out) / "confusion.png").string();
  draw_confusion(
      confusion, ck.info.classes,
      "confusion matrix (videos): top-1 " + std::to_string(r.video_top1).substr(0, 5) + "%",
      conf_png);
  std::printf("\nwritten: %s, %s", json_path.c_str(), conf_png.c_str());
  if (!a.run.empty() && fs::exists(fs::path(a.run) / "metrics.jsonl")) {
    const std::string curves = (fs::path(a.out) / "curves.png").string();
    if (draw_run_curves((fs::path(a.run) / "metrics.jsonl").string(), curves))
      std::printf(", %s", curves.c_str());
  }
  std::printf("\n");
  return 0;
}

}  // namespace

Command add_eval(CLI::App& app) {
  auto a = std::make_shared<EvalArgs>();
  CLI::App* sub = app.add_subcommand(
      "eval", "accuracy, per-class accuracy and confusion matrix of a trained model");
  add_checkpoint_options(sub, a->run, a->which, a->checkpoint);
  sub->add_option("--data", a->data, "dataset folder or store (default: the run's validation set)");
  sub->add_option("--layout", a->layout,
                  "ucf101, kinetics, folder, csv or activitynet (default: the run's)");
  sub->add_option("--list", a->list,
                  "the index (UCF101's list folder, a CSV, ActivityNet's JSON; default: the run's, "
                  "or found in --data)");
  sub->add_option("--split", a->split,
                  "UCF101: split 1 to 3 (default: the run's); ActivityNet: validation (default) or "
                  "training");
  sub->add_option("--clips", a->clips, "clips per video, averaged for the video's prediction")
      ->capture_default_str();
  sub->add_option("--batch", a->batch, "clips per forward")->capture_default_str();
  sub->add_option("--workers", a->workers, "decoding threads (0: one per core)");
  sub->add_option("--threads", a->threads, "compute threads (0: all cores)");
  sub->add_option("--out", a->out, "folder for eval.json and the PNGs (default: RUN/eval)");
  return [a] { return run_eval(*a); };
}

}  // namespace reel::apps
