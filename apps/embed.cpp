// `reel embed` and `reel search`: content retrieval with a trained classifier. A video's
// embedding is the fused vector the classifier's fc reads (VideoClassifier::fused), averaged
// over its evaluation clips and L2-normalised; an index is a safetensors file of them, and a
// search ranks the index by cosine similarity (the dot product of unit vectors) to a query.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "commands.h"
#include "config.h"
#include "evaluate.h"
#include "reel/core/reel.h"
#include "reel/data/video.h"
#include "reel/kernels/cpu/parallel.h"
#include "trainer.h"

namespace reel::apps {

namespace {

using json = nlohmann::json;

struct EmbedArgs {
  std::vector<std::string> videos;
  std::string run, checkpoint, which = "best", out, index;
  int64_t clips = 1, top = 5, threads = 0;
  bool leave_one_out = false;
};

// For every video of the index, its nearest other video: how often they share a class, taken
// as the name of the folder each video is in (UCF101's and the folder layout's class folders),
// beside the share a random other video would give.
int leave_one_out(const std::string& index, const std::vector<float>& e, int64_t n, int64_t d,
                  const json& paths) {
  std::vector<std::string> cls(static_cast<size_t>(n));
  std::map<std::string, int64_t> count;
  for (int64_t i = 0; i < n; ++i) {
    const std::string p = paths[i].get<std::string>();
    const size_t slash = p.find_last_of('/');
    const size_t prev = slash == std::string::npos || slash == 0 ? std::string::npos
                                                                 : p.find_last_of('/', slash - 1);
    cls[i] = slash == std::string::npos
                 ? std::string()
                 : p.substr(prev == std::string::npos ? 0 : prev + 1,
                            slash - (prev == std::string::npos ? 0 : prev + 1));
    count[cls[i]] += 1;
  }
  REEL_CHECK(n >= 2, index << ": leave-one-out needs two videos or more");
  int64_t same = 0;
  for (int64_t i = 0; i < n; ++i) {
    int64_t best = -1;
    double best_s = -2.0;
    for (int64_t j = 0; j < n; ++j) {
      if (j == i) continue;
      double s = 0.0;
      for (int64_t k = 0; k < d; ++k) s += static_cast<double>(e[i * d + k]) * e[j * d + k];
      if (s > best_s) best_s = s, best = j;
    }
    same += cls[best] == cls[i];
  }
  double chance = 0.0;
  for (const auto& [c, m] : count)
    chance += static_cast<double>(m) * (m - 1) / (static_cast<double>(n) * (n - 1));
  std::printf(
      "reel search --leave-one-out: %s, %lld videos in %zu classes (their folders)\nthe nearest "
      "other video shares the class for %lld of %lld (%.1f%%); a random other video would for "
      "%.1f%%\n",
      index.c_str(), static_cast<long long>(n), count.size(), static_cast<long long>(same),
      static_cast<long long>(n), 100.0 * same / n, 100.0 * chance);
  return 0;
}

// The unit-length embedding of one video and its predicted class.
std::vector<float> embed_video(VideoClassifier& model, const CheckpointInfo& info,
                               const std::string& path, int64_t clips, int64_t* predicted) {
  const data::Batch b = read_video_clips(info, path, clips);
  NoGradGuard no_grad;
  const Tensor f = model.fused(b.clips, b.lengths);  // [clips, D]
  const std::vector<float> p = mean(softmax(model.forward(b.clips, b.lengths), 1), {0}).to_vector();
  *predicted = top_k(p.data(), static_cast<int64_t>(p.size()), 1)[0];
  std::vector<float> v = mean(f, {0}).to_vector();
  double norm = 0.0;
  for (float x : v) norm += static_cast<double>(x) * x;
  norm = std::sqrt(norm);
  REEL_CHECK(norm > 0.0, path << ": its embedding is all zeros");
  for (float& x : v) x = static_cast<float>(x / norm);
  return v;
}

int run_embed(const EmbedArgs& a) {
  if (a.clips < 1 || a.clips > 64)
    throw UsageError("--clips must be between 1 and 64 (got " + std::to_string(a.clips) + ")");
  if (a.threads > 0) cpu::set_num_threads(static_cast<int>(a.threads));
  data::quiet_opencv();
  const std::string path = chosen_checkpoint(a.run, a.which, a.checkpoint);
  const Checkpoint ck = load_checkpoint(path);
  std::unique_ptr<VideoClassifier> model = model_from_checkpoint(ck, path);
  std::vector<float> all;
  json paths = json::array(), classes = json::array();
  int failed = 0;
  int64_t dim = 0;
  for (const std::string& v : a.videos) {
    try {
      int64_t c = 0;
      const std::vector<float> e = embed_video(*model, ck.info, v, a.clips, &c);
      dim = static_cast<int64_t>(e.size());
      all.insert(all.end(), e.begin(), e.end());
      paths.push_back(v);
      classes.push_back(ck.info.classes[c]);
    } catch (const Error& e) {
      ++failed;
      std::fprintf(stderr, "reel: error: %s (left out of the index)\n", e.what());
    }
  }
  REEL_CHECK(!paths.empty(), "none of the " << a.videos.size() << " videos could be read");
  const int64_t n = static_cast<int64_t>(paths.size());
  save_safetensors(a.out, {{"embeddings", Tensor::from_vector(all, {n, dim})}},
                   {{"reel.format", "reel-embeddings/1"},
                    {"reel.checkpoint", path},
                    {"reel.paths", paths.dump()},
                    {"reel.classes", classes.dump()}});
  std::printf("reel embed: %lld videos -> %s (embeddings [%lld, %lld], unit length; %s)\n",
              static_cast<long long>(n), a.out.c_str(), static_cast<long long>(n),
              static_cast<long long>(dim), path.c_str());
  if (failed) std::printf("%d videos could not be read and are not in the index\n", failed);
  return failed ? 1 : 0;
}

int run_search(EmbedArgs a) {
  if (a.top < 1) throw UsageError("--top must be at least 1");
  if (a.threads > 0) cpu::set_num_threads(static_cast<int>(a.threads));
  data::quiet_opencv();
  std::map<std::string, std::string> meta;
  const TensorMap index = load_safetensors(a.index, Device::cpu(), &meta);
  REEL_CHECK(meta["reel.format"] == "reel-embeddings/1" && index.count("embeddings") == 1,
             a.index << ": not an index written by `reel embed`");
  json paths, classes;
  try {
    paths = json::parse(meta.at("reel.paths"));
    classes = json::parse(meta.at("reel.classes"));
  } catch (const std::exception& e) {
    throw Error(a.index + ": malformed metadata (" + e.what() + ")");
  }
  const Tensor& emb = index.at("embeddings");
  REEL_CHECK(emb.dim() == 2 && emb.size(0) == static_cast<int64_t>(paths.size()) &&
                 classes.size() == paths.size(),
             a.index << ": " << paths.size() << " paths for embeddings of shape "
                     << shape_str(emb.shape()));
  if (a.leave_one_out)
    return leave_one_out(a.index, emb.to_vector(), emb.size(0), emb.size(1), paths);
  if (a.videos.size() != 1) throw UsageError("give a query video (or --leave-one-out)");
  // The model that made the index, unless another is named.
  if (a.run.empty() && a.checkpoint.empty()) a.checkpoint = meta["reel.checkpoint"];
  const std::string path = chosen_checkpoint(a.run, a.which, a.checkpoint);
  const Checkpoint ck = load_checkpoint(path);
  std::unique_ptr<VideoClassifier> model = model_from_checkpoint(ck, path);
  int64_t predicted = 0;
  const std::vector<float> q = embed_video(*model, ck.info, a.videos[0], a.clips, &predicted);
  REEL_CHECK(static_cast<int64_t>(q.size()) == emb.size(1),
             a.index << " holds embeddings of size " << emb.size(1) << ", but " << path
                     << " makes them of size " << q.size() << " (another model?)");
  const std::vector<float> e = emb.to_vector();
  const int64_t n = emb.size(0), d = emb.size(1);
  std::vector<float> score(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    double s = 0.0;
    for (int64_t k = 0; k < d; ++k) s += static_cast<double>(q[k]) * e[i * d + k];
    score[i] = static_cast<float>(s);
  }
  std::printf("reel search: %s (predicted %s) in %s, %lld videos\n", a.videos[0].c_str(),
              ck.info.classes[predicted].c_str(), a.index.c_str(), static_cast<long long>(n));
  for (int64_t i : top_k(score.data(), n, a.top))
    std::printf("  %.4f  %-12s %s\n", score[i], classes[i].get<std::string>().c_str(),
                paths[i].get<std::string>().c_str());
  return 0;
}

}  // namespace

Command add_embed(CLI::App& app) {
  auto a = std::make_shared<EmbedArgs>();
  CLI::App* sub = app.add_subcommand(
      "embed", "write one L2-normalised embedding per video (the classifier's fused vector)");
  sub->add_option("videos", a->videos, "video files or frame folders")->required();
  add_checkpoint_options(sub, a->run, a->which, a->checkpoint);
  sub->add_option("--out", a->out, "the index to write (safetensors)")->required();
  sub->add_option("--clips", a->clips, "clips per video, their vectors averaged")
      ->capture_default_str();
  sub->add_option("--threads", a->threads, "compute threads (0: all cores)")
      ->check(CLI::Range(int64_t{0}, int64_t{4096}));
  return [a] { return run_embed(*a); };
}

Command add_search(CLI::App& app) {
  auto a = std::make_shared<EmbedArgs>();
  CLI::App* sub = app.add_subcommand(
      "search", "the videos of an index nearest to a query video, by cosine similarity");
  sub->add_option("query", a->videos, "the query video or frame folder")->expected(0, 1);
  sub->add_flag("--leave-one-out", a->leave_one_out,
                "no query: how often each video's nearest other video shares its class (the "
                "name of its folder)");
  sub->add_option("--index", a->index, "an index written by `reel embed`")->required();
  sub->add_option("--top", a->top, "results to list")->capture_default_str();
  add_checkpoint_options(sub, a->run, a->which, a->checkpoint,
                         "run folder (default: the checkpoint that made the index)");
  sub->add_option("--clips", a->clips, "clips of the query, their vectors averaged");
  sub->add_option("--threads", a->threads, "compute threads (0: all cores)")
      ->check(CLI::Range(int64_t{0}, int64_t{4096}));
  return [a] { return run_search(*a); };
}

}  // namespace reel::apps
