#include "trainer.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <sstream>

#include "distributed.h"
#include "reel/core/allocator.h"
#include "reel/core/random.h"
#include "reel/core/reel.h"
#include "reel/data/loader.h"
#include "reel/data/store.h"
#include "reel/kernels/cpu/parallel.h"
#include "reel/optim/optim.h"

namespace reel::apps {

namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

constexpr const char* kFormat = "reel-checkpoint/1";

json model_json(const VideoClassifierOptions& o) {
  return {{"backbone", o.backbone},         {"width", o.width},
          {"feature_dim", o.feature_dim},   {"hidden_size", o.hidden_size},
          {"num_layers", o.num_layers},     {"num_classes", o.num_classes},
          {"fusion", fusion_name(o.fusion)}};
}

VideoClassifierOptions model_from_json(const json& j) {
  VideoClassifierOptions o;
  o.backbone = j.at("backbone").get<std::string>();
  o.width = j.at("width").get<int64_t>();
  o.feature_dim = j.at("feature_dim").get<int64_t>();
  o.hidden_size = j.at("hidden_size").get<int64_t>();
  o.num_layers = j.at("num_layers").get<int64_t>();
  o.num_classes = j.at("num_classes").get<int64_t>();
  o.fusion = parse_fusion(j.at("fusion").get<std::string>());
  return o;
}

TensorMap with_prefix(const std::string& prefix, const TensorMap& m) {
  TensorMap out;
  for (const auto& [k, v] : m) out[prefix + k] = v;
  return out;
}

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

std::string clock_text(double secs) {
  if (!std::isfinite(secs) || secs < 0) return "--:--";
  const auto s = static_cast<int64_t>(secs + 0.5);
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", static_cast<long long>(s / 3600),
                  static_cast<long long>(s / 60 % 60), static_cast<long long>(s % 60));
  else
    std::snprintf(buf, sizeof buf, "%02lld:%02lld", static_cast<long long>(s / 60),
                  static_cast<long long>(s % 60));
  return buf;
}

// SIGINT and SIGTERM: the first asks the loop to stop after the current step; a second one
// ends the process at once (the default action).
std::atomic<int> g_signal{0};

extern "C" void on_stop_signal(int sig) {
  if (g_signal.exchange(sig) != 0) {
    std::signal(sig, SIG_DFL);
    std::raise(sig);
  }
}

struct SignalScope {
  struct sigaction old_int {
  }, old_term{};
  SignalScope() {
    g_signal = 0;
    struct sigaction sa {};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
  }
  ~SignalScope() {
    sigaction(SIGINT, &old_int, nullptr);
    sigaction(SIGTERM, &old_term, nullptr);
  }
};

// metrics.jsonl: one JSON object per line, flushed line by line. A resumed run first drops
// the lines past its checkpoint's step (and a torn last line), so that the file reads as if
// the run had never stopped.
class MetricsLog {
 public:
  MetricsLog(const std::string& path, bool resume, int64_t keep_through_step) : path_(path) {
    if (resume && fs::exists(path)) {
      std::ifstream in(path);
      std::string line, kept;
      while (std::getline(in, line)) {
        const json j = json::parse(line, nullptr, false);
        if (j.is_discarded() || !j.is_object() || !j.contains("step")) continue;
        if (j["step"].get<int64_t>() > keep_through_step) continue;
        kept += line + "\n";
      }
      write_file_atomic(path, kept);
    }
    f_ = std::fopen(path.c_str(), resume ? "a" : "w");
    REEL_CHECK(f_, "cannot write " << path << ": " << std::strerror(errno));
  }
  ~MetricsLog() {
    if (f_) std::fclose(f_);
  }
  void write(const json& j) {
    const std::string line = j.dump() + "\n";
    if (std::fwrite(line.data(), 1, line.size(), f_) != line.size() || std::fflush(f_) != 0)
      throw Error("writing " + path_ + " failed: " + std::strerror(errno) +
                  " (the last checkpoint is kept)");
  }

 private:
  std::string path_;
  std::FILE* f_ = nullptr;
};

// The progress of an epoch: one line rewritten in place on a terminal, plain lines every
// log_every steps otherwise.
class Progress {
 public:
  Progress(std::FILE* out, int64_t log_every)
      : out_(out), tty_(out && isatty(fileno(out))), every_(log_every) {}
  void update(int64_t epoch, int64_t epochs, int64_t done, int64_t total, double eta, double loss,
              double acc, double clips_per_s, double wait_share, bool last) {
    if (!out_) return;
    if (!tty_ && !last && done % every_ != 0) return;
    char bar[32] = {0};
    const int width = 20;
    const int filled = total > 0 ? static_cast<int>(width * done / total) : width;
    for (int i = 0; i < width; ++i) bar[i] = i < filled ? '#' : '.';
    std::fprintf(out_,
                 "%sepoch %lld/%lld [%s] %lld/%lld  ETA %s  loss %.4f  acc %5.1f%%  %.1f clips/s"
                 "  data wait %.0f%%%s",
                 tty_ ? "\r" : "", static_cast<long long>(epoch), static_cast<long long>(epochs),
                 bar, static_cast<long long>(done), static_cast<long long>(total),
                 clock_text(eta).c_str(), loss, 100.0 * acc, clips_per_s, 100.0 * wait_share,
                 tty_ ? (last ? "\n" : "\033[K") : "\n");
    std::fflush(out_);
  }
  void line(const std::string& text) {
    if (!out_) return;
    std::fprintf(out_, "%s\n", text.c_str());
    std::fflush(out_);
  }

 private:
  std::FILE* out_;
  bool tty_;
  int64_t every_;
};

Device choose_device(const std::string& name, Progress& progress) {
  if (name == "auto") {
    if (cuda::available()) return Device::cuda(0);
    progress.line("reel: no usable GPU found; training on the CPU");
    return Device::cpu();
  }
  Device d;
  try {
    d = Device::parse(name);
  } catch (const Error&) {
    throw UsageError("--device must be cpu, cuda, cuda:N or auto (got '" + name + "')");
  }
  if (d.is_cuda()) {
    try {
      check_device_usable(d);
    } catch (const Error& e) {
      throw Error("--device " + name + ": no usable GPU (" + e.what() +
                  "); use --device cpu, or auto to fall back to the CPU");
    }
  }
  return d;
}

// Drops the listed videos that do not exist, naming them in one summary (or stops, under
// --on-bad-video fail).
void drop_missing(data::Dataset& ds, const std::string& what, bool fail, Progress& progress) {
  if (ds.store) return;
  std::vector<data::VideoItem> kept;
  std::vector<std::string> missing;  // each file once (ActivityNet lists a video per segment)
  std::set<std::string> seen;
  for (auto& item : ds.items) {
    std::error_code ec;
    if (fs::exists(item.path, ec))
      kept.push_back(std::move(item));
    else if (seen.insert(item.path).second)
      missing.push_back(item.path);
  }
  ds.items = std::move(kept);
  if (missing.empty()) return;
  REEL_CHECK(!fail, what << ": " << missing.size() << " listed videos are missing, first "
                         << missing[0] << " (--on-bad-video fail)");
  REEL_CHECK(!ds.items.empty(), what << ": none of its " << missing.size()
                                     << " listed videos exists (first: " << missing[0] << ")");
  std::ostringstream m;
  m << "reel: " << what << ": " << missing.size() << " listed videos are missing and skipped ("
    << missing[0];
  if (missing.size() > 1) m << ", " << missing[1];
  if (missing.size() > 2) m << ", ...";
  m << ")";
  progress.line(m.str());
}

// Loads backbone weights with torchvision's names (or the classifier's "cnn." names): every key
// of the backbone except its head (fc, classifier.6) must be there with its shape.
void load_pretrained(VideoClassifier& model, const std::string& path) {
  TensorMap file = load_safetensors(path);
  TensorMap state;
  const std::string head = model.cnn().head_name() + ".";
  for (auto& [k, v] : file) {
    std::string key = k.rfind("cnn.", 0) == 0 ? k.substr(4) : k;
    if (key.rfind(head, 0) == 0) continue;  // the ImageNet head: replaced by the projection
    state[key] = v;
  }
  for (const auto& [k, v] : model.cnn().state_dict())
    if (k.rfind(head, 0) == 0) state[k] = v;
  try {
    model.cnn().load_state_dict(state);
  } catch (const Error& e) {
    throw Error("--pretrained " + path + ": not weights of this backbone (" +
                model.options().backbone + ", width " + std::to_string(model.options().width) +
                "): " + e.what());
  }
}

}  // namespace

std::vector<int64_t> top_k(const float* p, int64_t classes, int64_t k) {
  std::vector<int64_t> idx(static_cast<size_t>(classes));
  std::iota(idx.begin(), idx.end(), 0);
  k = std::min(k, classes);
  std::partial_sort(idx.begin(), idx.begin() + k, idx.end(),
                    [p](int64_t a, int64_t b) { return p[a] > p[b] || (p[a] == p[b] && a < b); });
  idx.resize(static_cast<size_t>(k));
  return idx;
}

void save_checkpoint(const std::string& path, const TensorMap& model, const TensorMap& optimizer,
                     const TensorMap& scheduler, const CheckpointInfo& info) {
  TensorMap all = model;
  for (auto& [k, v] : with_prefix("optimizer/", optimizer)) all[k] = v;
  for (auto& [k, v] : with_prefix("scheduler/", scheduler)) all[k] = v;
  const json position = {{"epoch", info.epoch},
                         {"batch", info.batch},
                         {"step", info.step},
                         {"best_accuracy", info.best_accuracy},
                         {"best_epoch", info.best_epoch},
                         {"loss_sum", info.loss_sum},
                         {"correct", info.correct},
                         {"clips", info.clips},
                         {"steps_in_epoch", info.steps_in_epoch},
                         {"skipped", info.skipped},
                         {"ranks", info.ranks}};
  const json clip = {{"frames", info.frames}, {"size", info.size}, {"resize", info.resize}};
  save_safetensors(path, all,
                   {{"format", "pt"},
                    {"reel.format", kFormat},
                    {"reel.model", model_json(info.model).dump()},
                    {"reel.classes", json(info.classes).dump()},
                    {"reel.clip", clip.dump()},
                    {"reel.position", position.dump()},
                    {"reel.rng", info.rng},
                    {"reel.config", info.config}});
}

Checkpoint load_checkpoint(const std::string& path) {
  std::map<std::string, std::string> meta;
  TensorMap all = load_safetensors(path, Device::cpu(), &meta);
  REEL_CHECK(meta["reel.format"] == kFormat,
             path << ": not a reel checkpoint (no reel.format '" << kFormat
                  << "' in its metadata); a bare weights file goes to --pretrained");
  Checkpoint c;
  try {
    c.info.model = model_from_json(json::parse(meta.at("reel.model")));
    c.info.classes = json::parse(meta.at("reel.classes")).get<std::vector<std::string>>();
    const json clip = json::parse(meta.at("reel.clip"));
    c.info.frames = clip.at("frames").get<int64_t>();
    c.info.size = clip.at("size").get<int64_t>();
    c.info.resize = clip.at("resize").get<int64_t>();
    const json p = json::parse(meta.at("reel.position"));
    c.info.epoch = p.at("epoch").get<int64_t>();
    c.info.batch = p.at("batch").get<int64_t>();
    c.info.step = p.at("step").get<int64_t>();
    c.info.best_accuracy = p.at("best_accuracy").get<double>();
    c.info.best_epoch = p.at("best_epoch").get<int64_t>();
    c.info.loss_sum = p.at("loss_sum").get<double>();
    c.info.correct = p.at("correct").get<int64_t>();
    c.info.clips = p.at("clips").get<int64_t>();
    c.info.steps_in_epoch = p.at("steps_in_epoch").get<int64_t>();
    c.info.skipped = p.at("skipped").get<int64_t>();
    c.info.ranks = p.value("ranks", int64_t{1});
    c.info.rng = meta.at("reel.rng");
    c.info.config = meta.at("reel.config");
  } catch (const std::exception& e) {
    throw Error(path + ": a reel checkpoint with malformed metadata (" + e.what() + ")");
  }
  REEL_CHECK(static_cast<int64_t>(c.info.classes.size()) == c.info.model.num_classes,
             path << ": names " << c.info.classes.size() << " classes for a model of "
                  << c.info.model.num_classes);
  for (auto& [k, v] : all) {
    if (k.rfind("optimizer/", 0) == 0)
      c.optimizer[k.substr(10)] = v;
    else if (k.rfind("scheduler/", 0) == 0)
      c.scheduler[k.substr(10)] = v;
    else
      c.model[k] = v;
  }
  return c;
}

std::unique_ptr<VideoClassifier> model_from_checkpoint(const Checkpoint& c,
                                                       const std::string& path) {
  auto model = std::make_unique<VideoClassifier>(c.info.model);
  try {
    model->load_state_dict(c.model);
  } catch (const Error& e) {
    throw Error(path + ": " + e.what());
  }
  model->eval();
  return model;
}

std::string run_checkpoint(const std::string& run_dir, const std::string& which) {
  REEL_CHECK(fs::is_directory(run_dir), "run folder " << run_dir << " does not exist");
  const std::string path = (fs::path(run_dir) / (which + ".safetensors")).string();
  REEL_CHECK(fs::exists(path),
             run_dir << " holds no " << which << ".safetensors (no checkpoint written yet?)");
  return path;
}

void add_checkpoint_options(CLI::App* sub, std::string& run, std::string& which,
                            std::string& checkpoint, const std::string& run_help) {
  sub->add_option("--run", run, run_help);
  sub->add_option("--which", which, "with --run: the best or the last checkpoint")
      ->check(CLI::IsMember({"best", "last"}))
      ->capture_default_str();
  sub->add_option("--checkpoint", checkpoint, "a checkpoint file instead of --run");
}

std::string chosen_checkpoint(const std::string& run, const std::string& which,
                              const std::string& checkpoint) {
  if (run.empty() == checkpoint.empty())
    throw UsageError("give one of --run RUN_DIR or --checkpoint FILE");
  return checkpoint.empty() ? run_checkpoint(run, which) : checkpoint;
}

data::Dataset open_dataset(const std::string& path, const std::string& layout, int64_t split,
                           bool train, const std::string& list) {
  std::error_code ec;
  REEL_CHECK(fs::exists(path, ec), "--data " << path << ": no such file or folder");
  data::Dataset ds;
  if (fs::is_regular_file(path, ec)) {
    ds = data::Store::dataset(data::Store::open(path));
  } else {
    data::DatasetOptions o;
    o.layout = data::parse_layout(layout);
    o.root = path;
    o.split = static_cast<int>(split);
    o.train = train;
    o.list = list;
    std::error_code ec;
    REEL_CHECK(list.empty() || fs::exists(list, ec),
               "--list " << list << ": no such file or folder");
    ds = data::load_dataset(o);
  }
  REEL_CHECK(ds.size() > 0, path << ": holds no video (layout " << layout << ")");
  return ds;
}

TrainReport train(const TrainConfig& c, const std::string& config_text, bool resume,
                  std::FILE* out) {
  const auto t_start = Clock::now();
  // Data-parallel under mpirun: rank 0 alone prints and writes (distributed.h).
  Ranks& ranks = Ranks::world();
  ranks.set_timeout(c.rank_timeout);
  const bool lead = ranks.rank() == 0;
  Progress progress(lead ? out : nullptr, c.log_every);
  TrainReport report;
  report.run_dir = c.out;
  const fs::path run(c.out);
  const std::string last_path = (run / "last.safetensors").string();
  const std::string best_path = (run / "best.safetensors").string();

  // The position to start from, checked before anything is written.
  Checkpoint ckpt;
  if (resume) {
    REEL_CHECK(fs::is_directory(run), "--resume " << c.out << ": no such run folder");
    REEL_CHECK(fs::exists(last_path),
               "--resume " << c.out << ": it holds no last.safetensors to resume");
    ckpt = load_checkpoint(last_path);
  } else {
    std::error_code ec;
    REEL_CHECK(!fs::exists(last_path, ec),
               "--out " << c.out << " already holds a run; continue it with --resume " << c.out
                        << " or choose another --out");
    if (lead) fs::create_directories(run, ec);
    REEL_CHECK(!lead || (!ec && fs::is_directory(run)),
               "--out " << c.out << ": cannot create the folder (" << ec.message() << ")");
  }
  // Every rank must run the same settings with the same code: one line on rank 0 otherwise.
  ranks.check_same(checksum(config_text + "\n" + REEL_SOURCE_VERSION),
                   "the settings (config.toml) or the reel build");
  if (resume && ckpt.info.ranks != ranks.size())
    throw Error("--resume " + c.out + ": the run was trained on " +
                std::to_string(ckpt.info.ranks) + " ranks; resume it with mpirun -np " +
                std::to_string(ckpt.info.ranks) + " (" + std::to_string(ranks.size()) +
                " here): the data order and the global batch depend on it");

  if (c.threads > 0) cpu::set_num_threads(static_cast<int>(c.threads));
  Device device = choose_device(c.device, progress);
  if (device.is_cuda() && ranks.distributed() && (c.device == "auto" || c.device == "cuda")) {
    // One GPU per rank of a machine: cuda:<the rank's place there>, or cuda:0 when the machine
    // has fewer GPUs than ranks.
    if (const char* local = std::getenv("OMPI_COMM_WORLD_LOCAL_RANK")) {
      const Device mine = Device::cuda(std::atoi(local));
      try {
        check_device_usable(mine);
        device = mine;
      } catch (const Error&) {
      }
    }
  }

  // Data.
  data::Dataset train_set = open_dataset(c.data, c.layout, c.split, true, c.list);
  for (const std::string& note : train_set.notes) progress.line("reel: " + note);
  const bool fail_bad = c.on_bad_video == "fail";
  drop_missing(train_set, c.data, fail_bad, progress);
  data::Dataset val_set;
  bool have_val = false;
  if (!c.val_data.empty()) {
    val_set = open_dataset(c.val_data, c.layout, c.split, false);
    have_val = true;
  } else if (!train_set.store &&
             (c.layout == "ucf101" || c.layout == "kinetics" || c.layout == "activitynet")) {
    val_set = open_dataset(c.data, c.layout, c.split, false, c.list);
    for (const std::string& note : val_set.notes) progress.line("reel: " + note);
    have_val = true;
  }
  if (have_val) {
    drop_missing(val_set, c.val_data.empty() ? c.data : c.val_data, fail_bad, progress);
    REEL_CHECK(val_set.classes == train_set.classes,
               "the validation set's classes differ from the training set's ("
                   << val_set.classes.size() << " and " << train_set.classes.size() << ")");
  }
  data::LoaderOptions lo;
  lo.batch_size = static_cast<int>(c.batch);
  lo.workers = static_cast<int>(c.workers);
  lo.seed = c.seed;
  lo.shard = ranks.rank();  // this rank's part of every global batch of N * --batch clips
  lo.shards = ranks.size();
  lo.sampler.frames = static_cast<int>(c.frames);
  lo.transform.resize = static_cast<int>(c.resize);
  lo.transform.crop = static_cast<int>(c.size);
  lo.on_bad = fail_bad ? data::OnBadVideo::Fail : data::OnBadVideo::Skip;
  lo.device = device;
  data::Loader loader(train_set, lo);
  std::unique_ptr<data::Loader> val_loader;
  if (have_val) {
    data::LoaderOptions vo = lo;
    vo.train = false;
    vo.shuffle = false;
    val_loader = std::make_unique<data::Loader>(val_set, vo);
  }

  // Model, optimizer, schedule.
  manual_seed(c.seed);
  VideoClassifierOptions mo;
  mo.backbone = c.backbone;
  mo.width = c.width;
  mo.feature_dim = c.feature_dim;
  mo.hidden_size = c.hidden;
  mo.num_layers = c.layers;
  mo.num_classes = static_cast<int64_t>(train_set.classes.size());
  mo.fusion = parse_fusion(c.fusion);
  mo.freeze_backbone = c.freeze_backbone;
  mo.recompute = c.recompute;
  VideoClassifier model(mo);
  if (!c.pretrained.empty() && !resume) load_pretrained(model, c.pretrained);
  model.to(device);

  NamedTensors trainable;
  for (const auto& [name, p] : model.named_parameters())
    if (p.requires_grad()) trainable.emplace_back(name, p);
  std::unique_ptr<Optimizer> opt;
  if (c.optimizer == "sgd") {
    SGDOptions o;
    o.lr = c.lr, o.momentum = c.momentum, o.weight_decay = c.weight_decay;
    opt = std::make_unique<SGD>(weight_decay_groups(trainable, o), o);
  } else {
    AdamOptions o;
    o.lr = c.lr, o.beta1 = c.momentum, o.weight_decay = c.weight_decay;
    if (c.optimizer == "adam")
      opt = std::make_unique<Adam>(weight_decay_groups(trainable, o), o);
    else
      opt = std::make_unique<AdamW>(weight_decay_groups(trainable, o), o);
  }
  const int64_t steps_per_epoch = loader.batches_per_epoch();
  const int64_t total_steps = steps_per_epoch * c.epochs;
  std::unique_ptr<LRScheduler> sched;
  if (c.schedule == "step") {
    sched = std::make_unique<StepLR>(*opt, std::max<int64_t>(1, total_steps / 3), 0.1);
  } else if (c.schedule == "cosine") {
    const auto warm = static_cast<int64_t>(std::llround(c.warmup * steps_per_epoch));
    sched = std::make_unique<WarmupCosineLR>(*opt, std::min(warm, total_steps - 1), total_steps);
  } else if (c.schedule == "onecycle") {
    OneCycleOptions o;
    o.max_lr = {c.lr};
    o.total_steps = total_steps;
    sched = std::make_unique<OneCycleLR>(*opt, o);
  }

  CheckpointInfo info;
  info.model = mo;
  info.classes = train_set.classes;
  info.frames = c.frames, info.size = c.size, info.resize = c.resize;
  info.config = config_text;
  if (resume) {
    const json want = model_json(mo), have = model_json(ckpt.info.model);
    if (want != have) {
      std::string diff;
      for (auto it = want.begin(); it != want.end(); ++it)
        if (have[it.key()] != it.value())
          diff += (diff.empty() ? "" : ", ") + it.key() + " " + have[it.key()].dump() + " there, " +
                  it.value().dump() + " here";
      throw Error(last_path + " holds another model than this run asks for (" + diff + ")");
    }
    REEL_CHECK(ckpt.info.classes == train_set.classes,
               last_path << " was trained on other classes than " << c.data << "'s");
    try {
      model.load_state_dict(ckpt.model);
      opt->load_state_dict(ckpt.optimizer);
      if (sched) sched->load_state_dict(ckpt.scheduler);
      default_generator().set_state(ckpt.info.rng);
    } catch (const Error& e) {
      throw Error(last_path + ": cannot resume from it: " + e.what());
    }
    REEL_CHECK(ckpt.info.epoch <= c.epochs && ckpt.info.batch <= steps_per_epoch,
               last_path << " stopped at epoch " << ckpt.info.epoch + 1 << " batch "
                         << ckpt.info.batch << ", past this run's " << c.epochs << " epochs of "
                         << steps_per_epoch << " batches");
    const std::string keep_config = info.config;
    info = ckpt.info;
    info.config = keep_config;
    info.model = mo;
  }
  info.ranks = ranks.size();
  std::unique_ptr<MetricsLog> metrics;
  if (lead) {
    write_file_atomic((run / "config.toml").string(), config_text);
    metrics = std::make_unique<MetricsLog>((run / "metrics.jsonl").string(), resume, info.step);
  }
  // The same initial weights on every rank (the same seed, or the same checkpoint).
  ranks.check_same(checksum(model.named_parameters()), "the initial parameters");
  GradientAverager averager(ranks, trainable, c.bucket_mib);
  // --sync-bn: every training-mode BatchNorm sums its statistics over the ranks.
  struct SyncBn {
    explicit SyncBn(const Ranks* r) {
      if (r) set_batch_norm_reducer([r](std::vector<double>& s) { r->sum(s, "--sync-bn"); });
    }
    ~SyncBn() { set_batch_norm_reducer(nullptr); }
  } sync_bn(c.sync_bn && ranks.distributed() ? &ranks : nullptr);
  const NamedTensors buffers = model.named_buffers();

  {
    std::ostringstream m;
    // ActivityNet's items are segments: "4 segments of 3 videos".
    auto count = [](const data::Dataset& ds) {
      std::set<std::string> files;
      bool segments = false;
      for (const auto& item : ds.items) {
        files.insert(item.path);
        segments = segments || item.end >= 0.0;
      }
      return segments ? std::to_string(ds.size()) + " segments of " + std::to_string(files.size()) +
                            " videos"
                      : std::to_string(ds.size()) + " videos";
    };
    m << "reel train: " << count(train_set) << " in " << train_set.classes.size() << " classes";
    if (have_val) m << ", " << count(val_set) << " for validation";
    m << "; " << c.backbone << " width " << c.width;
    if (c.fusion == "pool")
      m << ", fusion pool (no LSTM)";
    else
      m << " -> LSTM " << c.hidden << " x " << c.layers << ", fusion " << c.fusion;
    m << "; " << model.parameters().size() << " tensors; " << device.str() << ", "
      << cpu::num_threads() << " threads";
    progress.line(m.str());
    if (resume)
      progress.line("resuming " + c.out + " at epoch " + std::to_string(info.epoch + 1) +
                    ", batch " + std::to_string(info.batch) + " (step " +
                    std::to_string(info.step) + ")");
  }

  SignalScope signals;
  NonFiniteCheck finite;
  finite.skip = c.skip_nonfinite;
  finite.skipped = info.skipped;

  auto make_checkpoint = [&](const std::string& path) {
    // The parameters must not have drifted apart between the ranks.
    ranks.check_same(checksum(model.named_parameters()),
                     "the parameters at step " + std::to_string(info.step));
    if (!lead) return;
    info.rng = default_generator().state();
    info.skipped = finite.skipped;
    save_checkpoint(path, model.state_dict(), opt->state_dict(),
                    sched ? sched->state_dict() : TensorMap{}, info);
  };
  auto current_lr = [&] { return opt->lr(0); };

  for (int64_t epoch = info.epoch; epoch < c.epochs; ++epoch) {
    model.train();
    const auto t_epoch = Clock::now();
    double wait = 0.0;
    int64_t clips_this_run = 0;
    loader.start_epoch(epoch, info.batch);
    data::Batch batch;
    for (;;) {
      const auto t_wait = Clock::now();
      if (!loader.next(batch)) break;
      wait += seconds_since(t_wait);
      opt->zero_grad();
      const int64_t n = static_cast<int64_t>(batch.labels.size());
      // Over the ranks: the global batch's clips (bad videos may make the parts unequal) and
      // whether a signal came, so that every rank stops at the same step.
      std::vector<double> agreed = {static_cast<double>(n), g_signal != 0 ? 1.0 : 0.0,
                                    n == 0 ? 1.0 : 0.0};
      ranks.sum(agreed, "the batch size");
      const double global_n = agreed[0];
      if (ranks.distributed()) {
        if (agreed[1] > 0.0 && g_signal == 0) g_signal = SIGTERM;
        if (agreed[2] > 0.0) {
          // A rank's part held no readable clip: every rank skips this global batch together
          // (a rank without data cannot take part in the forward's collectives).
          progress.line("reel: global batch " + std::to_string(batch.index + 1) +
                        " skipped: a rank's part of it held no readable video");
          info.batch = batch.index + 1;
          continue;
        }
        // BatchNorm's running statistics: rank 0's on every rank before each forward, as
        // PyTorch's DistributedDataParallel does.
        for (const auto& [name, b] : buffers) {
          Tensor host = b.device().is_cuda() ? b.to(Device::cpu()) : b;
          ranks.broadcast(host.data(), host.numel(), "the BatchNorm buffers");
          if (b.device().is_cuda()) Tensor(b).copy_(host);
        }
      }
      Tensor logits = model.forward(batch.clips, batch.lengths);
      Tensor loss = cross_entropy(logits, batch.labels);
      // Each rank's mean, weighted by its share of the global batch: the average over the ranks
      // that the averager takes is then the mean over the whole global batch.
      const double weight = static_cast<double>(n) * ranks.size() / std::max(1.0, global_n);
      (ranks.distributed() ? loss * static_cast<float>(weight) : loss).backward();
      averager.finish();
      const std::vector<float> l = logits.to_vector();
      int64_t right = 0;
      for (int64_t i = 0; i < n; ++i)
        right += top_k(l.data() + i * mo.num_classes, mo.num_classes, 1)[0] == batch.labels[i];
      std::vector<double> stats = {loss.item() * static_cast<double>(n),
                                   static_cast<double>(right)};
      ranks.sum(stats, "the step's loss");
      const float lv = static_cast<float>(stats[0] / std::max(1.0, global_n));
      right = static_cast<int64_t>(stats[1]);
      double norm = 0.0;
      bool stepped = finite.ok(info.step, lv, trainable);
      if (stepped) {
        norm = clip_grad_norm(trainable, c.clip_grad > 0.0 ? c.clip_grad : kInfNorm);
        opt->step();
      }
      const double lr = current_lr();
      if (sched) sched->step();
      info.step += 1;
      info.batch = batch.index + 1;
      info.steps_in_epoch += 1;
      info.loss_sum += lv;
      info.correct += right;
      info.clips += static_cast<int64_t>(global_n);
      clips_this_run += static_cast<int64_t>(global_n);
      const double secs = seconds_since(t_epoch);
      const double clips_per_s = clips_this_run / std::max(secs, 1e-9);
      const double share = wait / std::max(secs, 1e-9);
      const double eta = secs / std::max<int64_t>(1, clips_this_run) * c.batch * ranks.size() *
                         (steps_per_epoch - info.batch);
      const double mean_loss = info.loss_sum / static_cast<double>(info.steps_in_epoch);
      const double acc = static_cast<double>(info.correct) / static_cast<double>(info.clips);
      if (info.step % c.log_every == 0) {
        if (metrics)
          metrics->write(
              {{"kind", "step"},
               {"epoch", epoch + 1},
               {"step", info.step},
               {"loss", lv},
               {"accuracy", static_cast<double>(right) / std::max(1.0, global_n)},
               {"lr", lr},
               {"grad_norm", norm},
               {"clips_per_s", clips_per_s},
               {"data_wait", share},
               {"memory_mib", static_cast<double>(memory_stats(device).in_use_bytes) / 1048576.0},
               {"skipped", finite.skipped}});
      }
      progress.update(epoch + 1, c.epochs, info.batch, steps_per_epoch, eta, mean_loss, acc,
                      clips_per_s, share, info.batch == steps_per_epoch);
      report.steps += 1;
      report.last_loss = lv;
      const bool stop_steps = c.max_steps > 0 && info.step >= c.max_steps;
      if (g_signal != 0 || stop_steps) {
        if (info.batch == steps_per_epoch) break;  // the epoch ends anyway: finish it
        make_checkpoint(last_path);
        if (g_signal != 0) {
          report.interrupted = true;
          progress.line(std::string("\nreel: stopped by ") +
                        (g_signal == SIGINT ? "SIGINT" : "SIGTERM") + " at step " +
                        std::to_string(info.step) + " (epoch " + std::to_string(epoch + 1) +
                        ", batch " + std::to_string(info.batch) + "); checkpoint " + last_path +
                        "\nresume with: reel train --resume " + c.out);
        } else {
          report.stopped = true;
          progress.line("reel: stopped after --max-steps " + std::to_string(c.max_steps) +
                        "; checkpoint " + last_path + "; continue with: reel train --resume " +
                        c.out + " --max-steps 0");
        }
        report.seconds = seconds_since(t_start);
        return report;
      }
    }
    // The end of an epoch: validate, log, checkpoint.
    const double epoch_loss = info.loss_sum / std::max<int64_t>(1, info.steps_in_epoch);
    const double epoch_acc =
        static_cast<double>(info.correct) / std::max<double>(1.0, static_cast<double>(info.clips));
    json line = {{"kind", "epoch"},           {"epoch", epoch + 1},
                 {"step", info.step},         {"loss", epoch_loss},
                 {"accuracy", epoch_acc},     {"lr", current_lr()},
                 {"skipped", finite.skipped}, {"seconds", seconds_since(t_epoch)}};
    const bool validate_now = have_val && ((epoch + 1) % c.val_every == 0 || epoch + 1 == c.epochs);
    double score = -epoch_loss;  // without validation, the best epoch is the lowest loss
    if (validate_now) {
      model.eval();
      NoGradGuard no_grad;
      val_loader->start_epoch(0);
      data::Batch vb;
      int64_t right = 0, seen = 0;
      double vloss = 0.0;
      while (val_loader->next(vb)) {
        const int64_t n = static_cast<int64_t>(vb.labels.size());
        if (n == 0) continue;  // a shard's batch of bad videos only
        Tensor logits = model.forward(vb.clips, vb.lengths);
        vloss += cross_entropy(logits, vb.labels).item() * static_cast<double>(n);
        const std::vector<float> l = logits.to_vector();
        for (int64_t i = 0; i < n; ++i)
          right += top_k(l.data() + i * mo.num_classes, mo.num_classes, 1)[0] == vb.labels[i];
        seen += n;
      }
      std::vector<double> val = {static_cast<double>(right), static_cast<double>(seen), vloss};
      ranks.sum(val, "the validation counts");  // each rank validated its shard
      right = static_cast<int64_t>(val[0]);
      seen = static_cast<int64_t>(val[1]);
      vloss = val[2];
      const double vacc = seen ? static_cast<double>(right) / static_cast<double>(seen) : 0.0;
      line["val_accuracy"] = vacc;
      line["val_loss"] = seen ? vloss / static_cast<double>(seen) : 0.0;
      report.last_val_accuracy = vacc;
      score = vacc;
      char msg[128];
      std::snprintf(msg, sizeof msg, "epoch %lld: validation accuracy %.1f%% on %lld clips",
                    static_cast<long long>(epoch + 1), 100.0 * vacc, static_cast<long long>(seen));
      progress.line(msg);
      model.train();
    }
    if (metrics) metrics->write(line);
    report.last_train_accuracy = epoch_acc;
    report.epochs_done = epoch + 1;
    info.epoch = epoch + 1;
    info.batch = 0;
    info.loss_sum = 0.0;
    info.correct = info.clips = info.steps_in_epoch = 0;
    const bool is_best =
        (validate_now || !have_val) && (info.best_epoch < 0 || score > info.best_accuracy);
    if (is_best) {
      info.best_accuracy = score;
      info.best_epoch = epoch + 1;
    }
    make_checkpoint(last_path);
    if (is_best) make_checkpoint(best_path);
    if (g_signal != 0 || (c.max_steps > 0 && info.step >= c.max_steps)) {
      if (epoch + 1 < c.epochs) {
        report.interrupted = g_signal != 0;
        report.stopped = g_signal == 0;
        progress.line(
            std::string("reel: stopped by ") +
            (report.stopped ? "--max-steps" : (g_signal == SIGINT ? "SIGINT" : "SIGTERM")) +
            " at the end of epoch " + std::to_string(epoch + 1) + " (step " +
            std::to_string(info.step) + "); checkpoint " + last_path +
            "\nresume with: reel train --resume " + c.out +
            (report.stopped ? " --max-steps 0" : ""));
        report.seconds = seconds_since(t_start);
        return report;
      }
    }
  }
  report.best_accuracy = have_val ? info.best_accuracy : -1.0;
  report.seconds = seconds_since(t_start);
  return report;
}

}  // namespace reel::apps
