// `reel train` and `reel eval` end to end, through the binary, as a user runs them, on a small
// moving-digits set written by `reel digits` (real handwritten digits as MJPEG videos in
// UCF101's layout): the run folder's files, a resume that is bit-identical to a run never
// stopped, SIGINT, the TOML config, and the bad input of the issue (exit codes, one clear
// line, nothing lost).
#include <signal.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "../test_util.h"
#include "reel/layers/resnet.h"

using namespace reel;
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

const std::string kTmp = REEL_TEST_TMP_DIR "/train";
const std::string kCli = REEL_CLI;

using Result = reel::test::CommandResult;
using reel::test::read_text;

Result reel_run(const std::string& args) {
  return reel::test::run_program(kCli, args, kTmp + "/run");
}

// 48 training clips (6 steps of 8 per epoch) and 16 held-out ones, 4 frames of 32x32.
const std::string& digits() {
  static const std::string dir = [] {
    fs::create_directories(kTmp);
    const std::string d = kTmp + "/digits";
    fs::remove_all(d);
    const Result r =
        reel_run("digits --out " + d + " --train 48 --test 16 --frames 4 --size 32 --seed 1");
    REQUIRE_MESSAGE(r.rc == 0, r.err);
    return d;
  }();
  return dir;
}

std::string base_args(const std::string& data = digits(), int epochs = 2) {
  return "train --data " + data +
         " --layout ucf101 --frames 4 --size 32 --resize 32 --width 4 --feature-dim 8 "
         "--hidden 8 --layers 1 --batch 8 --threads 1 --workers 1 --optimizer sgd "
         "--lr 0.05 --log-every 1 --device cpu --epochs " +
         std::to_string(epochs);
}

std::string fresh(const std::string& name) {
  const std::string d = kTmp + "/" + name;
  fs::remove_all(d);
  return d;
}

std::vector<json> lines_of(const std::string& path) {
  std::vector<json> v;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    json j = json::parse(line, nullptr, false);  // a line being written may be torn
    if (!j.is_discarded()) v.push_back(std::move(j));
  }
  return v;
}

// Every tensor of two checkpoints equal bit for bit.
void check_same_tensors(const std::string& a, const std::string& b) {
  const TensorMap ta = load_safetensors(a), tb = load_safetensors(b);
  REQUIRE(ta.size() == tb.size());
  for (const auto& [k, v] : ta) {
    INFO(k);
    REQUIRE(tb.count(k) == 1);
    reel::test::check_close(tb.at(k), v, 0.0f);
  }
}

// The uninterrupted reference run, made once.
const std::string& reference_run() {
  static const std::string run = [] {
    const std::string r = fresh("ref");
    const Result res = reel_run(base_args() + " --out " + r);
    REQUIRE_MESSAGE(res.rc == 0, res.err);
    return r;
  }();
  return run;
}

}  // namespace

TEST_CASE("reel train writes config, metrics and checkpoints; reel eval reads them") {
  const std::string run = reference_run();
  for (const char* f : {"config.toml", "metrics.jsonl", "last.safetensors", "best.safetensors"})
    CHECK_MESSAGE(fs::exists(run + "/" + f), f);
  const std::vector<json> m = lines_of(run + "/metrics.jsonl");
  int steps = 0, epochs = 0;
  for (const json& j : m) {
    if (j["kind"] == "step") {
      ++steps;
      for (const char* k :
           {"loss", "accuracy", "lr", "grad_norm", "clips_per_s", "data_wait", "memory_mib"})
        CHECK_MESSAGE(j.contains(k), k);
      CHECK(j["step"].get<int>() == steps);
    } else {
      ++epochs;
      CHECK(j["kind"] == "epoch");
      CHECK(j.contains("val_accuracy"));  // UCF101 layout: validated on testlist01
    }
  }
  CHECK(steps == 12);
  CHECK(epochs == 2);
  // The resolved settings read back as a config file give the same settings.
  const std::string cfg = read_text(run + "/config.toml");
  CHECK(cfg.find("width = 4") != std::string::npos);
  CHECK(cfg.find("lr = 0.05") != std::string::npos);
  CHECK(cfg.find("resize = 32") != std::string::npos);
  // The checkpoint's weights carry PyTorch's names.
  const TensorMap ck = load_safetensors(run + "/last.safetensors");
  CHECK(ck.count("cnn.conv1.weight") == 1);
  CHECK(ck.count("lstm.weight_hh_l0") == 1);
  CHECK(ck.count("fc.bias") == 1);
  CHECK(ck.count("optimizer/optimizer.SGD") == 1);

  const std::string out = fresh("eval");
  const Result e = reel_run("eval --run " + run + " --which last --clips 2 --out " + out);
  REQUIRE_MESSAGE(e.rc == 0, e.err);
  CHECK(e.out.find("top-1") != std::string::npos);
  CHECK(e.out.find("MoveDown") != std::string::npos);
  const json r = json::parse(read_text(out + "/eval.json"));
  CHECK(r["videos"] == 16);
  CHECK(r["clips"] == 32);
  CHECK(r["video_top5"].get<double>() == 100.0);  // 4 classes: the true one is in the top 5
  int total = 0, diagonal = 0;
  for (size_t i = 0; i < r["confusion"].size(); ++i)
    for (size_t j = 0; j < r["confusion"][i].size(); ++j) {
      total += r["confusion"][i][j].get<int>();
      if (i == j) diagonal += r["confusion"][i][j].get<int>();
    }
  CHECK(total == 16);
  // The video-level top-1 and the confusion matrix's diagonal tell the same story.
  CHECK(r["video_top1"].get<double>() == doctest::Approx(100.0 * diagonal / 16));
  for (const char* png : {"/confusion.png", "/curves.png"}) {
    const cv::Mat img = cv::imread(out + png);
    CHECK_MESSAGE(img.cols >= 300, png);
    CHECK_MESSAGE(img.rows >= 300, png);
  }
}

TEST_CASE("reel predict: top classes per video, JSON, streaming frame by frame, bad videos") {
  const std::string run = reference_run();
  std::string video;
  for (const auto& e : fs::recursive_directory_iterator(digits()))
    if (e.path().extension() == ".avi") video = e.path().string();
  REQUIRE(!video.empty());
  const std::string junk = kTmp + "/junk.avi";
  std::ofstream(junk) << "not a video";
  Result r = reel_run("predict " + video + " " + junk + " --run " + run + " --top 2");
  CHECK(r.rc == 1);  // one video could not be read
  CHECK(r.out.find(video) != std::string::npos);
  CHECK(r.err.find(junk) != std::string::npos);
  CHECK(r.err.find("on-bad-video") == std::string::npos);
  r = reel_run("predict " + video + " --run " + run + " --json");
  REQUIRE_MESSAGE(r.rc == 0, r.err);
  const json j = json::parse(r.out);
  REQUIRE(j.size() == 1);
  REQUIRE(j[0]["top"].size() == 4);  // 4 classes, fewer than --top 5
  double total = 0;
  for (const auto& t : j[0]["top"]) total += t["probability"].get<double>();
  CHECK(total == doctest::Approx(1.0).epsilon(1e-5));
  // Streaming: one line per frame (4 frames) and a summary with the latency.
  r = reel_run("predict --stream " + video + " --run " + run + " --json");
  REQUIRE_MESSAGE(r.rc == 0, r.err);
  std::vector<json> lines;
  std::istringstream in(r.out);
  for (std::string line; std::getline(in, line);) lines.push_back(json::parse(line));
  REQUIRE(lines.size() == 5);
  for (int k = 0; k < 4; ++k) CHECK(lines[k]["frame"] == k);
  CHECK(lines[4]["frames"] == 4);
  CHECK(lines[4]["mean_latency_ms"].get<double>() > 0.0);
  // After the last frame the stream's answer is the whole clip's: the same as predict's.
  CHECK(lines[4]["top"][0]["class"] == j[0]["top"][0]["class"]);
  r = reel_run("predict --stream " + video + " " + video + " --run " + run);
  CHECK(r.rc == 2);
  CHECK(r.err.find("--stream reads one video") != std::string::npos);
}

TEST_CASE("reel inspect: gate heatmaps, probabilities per step, raw values and index.html") {
  const std::string run = reference_run();
  std::string video;
  for (const auto& e : fs::recursive_directory_iterator(digits()))
    if (e.path().extension() == ".avi") video = e.path().string();
  const std::string out = fresh("inspect");
  const Result r = reel_run("inspect " + video + " --run " + run + " --out " + out);
  REQUIRE_MESSAGE(r.rc == 0, r.err);
  const std::string html = read_text(out + "/index.html");
  for (const char* f : {"frames.png", "probabilities.png", "layer0_i.png", "layer0_f.png",
                        "layer0_g.png", "layer0_o.png", "layer0_c.png", "layer0_h.png"}) {
    INFO(f);
    CHECK(html.find(f) != std::string::npos);
    CHECK(cv::imread(out + "/" + f).cols >= 200);
  }
  // The raw values: the gates of the whole clip, T = 4 steps of H = 8 units, and the
  // probabilities after each step, whose last row is what predict says of the whole clip.
  const TensorMap v = load_safetensors(out + "/values.safetensors");
  CHECK(v.at("layer0.f").shape() == Shape{4, 8});
  for (float f : v.at("layer0.f").to_vector()) CHECK((f > 0.0f && f < 1.0f));
  const std::vector<float> p = v.at("probabilities").to_vector();
  REQUIRE(p.size() == 16);
  for (int t = 0; t < 4; ++t)
    CHECK(p[t * 4] + p[t * 4 + 1] + p[t * 4 + 2] + p[t * 4 + 3] == doctest::Approx(1.0f));
  // h = o * tanh(c), recorded as computed.
  const std::vector<float> o = v.at("layer0.o").to_vector(), c = v.at("layer0.c").to_vector(),
                           h = v.at("layer0.h").to_vector();
  for (size_t k = 0; k < h.size(); ++k) CHECK(h[k] == doctest::Approx(o[k] * std::tanh(c[k])));
  // The pool baseline has no LSTM to look inside.
  const std::string pool = fresh("pool");
  REQUIRE(reel_run(base_args() + " --fusion pool --max-steps 1 --out " + pool).rc == 0);
  const Result bad = reel_run("inspect " + video + " --run " + pool + " --which last");
  CHECK(bad.rc == 1);
  CHECK(bad.err.find("no LSTM") != std::string::npos);
}

TEST_CASE("reel embed and reel search: unit embeddings, the query finds itself first") {
  const std::string run = reference_run();
  std::vector<std::string> videos;
  for (const auto& e : fs::recursive_directory_iterator(digits()))
    if (e.path().extension() == ".avi") videos.push_back(e.path().string());
  std::sort(videos.begin(), videos.end());
  videos.resize(10);
  std::string list;
  for (const auto& v : videos) list += " " + v;
  const std::string junk = kTmp + "/junk2.avi";
  std::ofstream(junk) << "not a video";
  const std::string index = kTmp + "/index.safetensors";
  fs::remove(index);
  Result r = reel_run("embed" + list + " " + junk + " --run " + run + " --out " + index);
  CHECK(r.rc == 1);  // the junk file is named and left out; the others are indexed
  CHECK(r.err.find(junk) != std::string::npos);
  std::map<std::string, std::string> meta;
  const TensorMap m = load_safetensors(index, Device::cpu(), &meta);
  const Tensor& e = m.at("embeddings");
  REQUIRE(e.shape() == Shape{10, 8});  // the LSTM's H = 8 (fusion last)
  const std::vector<float> v = e.to_vector();
  for (int i = 0; i < 10; ++i) {
    float n2 = 0;
    for (int k = 0; k < 8; ++k) n2 += v[i * 8 + k] * v[i * 8 + k];
    CHECK(n2 == doctest::Approx(1.0f).epsilon(1e-5));
  }
  CHECK(json::parse(meta.at("reel.paths")).size() == 10);
  r = reel_run("search " + videos[3] + " --index " + index + " --top 3");
  REQUIRE_MESSAGE(r.rc == 0, r.err);
  const size_t first = r.out.find("\n  ");  // the first result line
  REQUIRE(first != std::string::npos);
  const std::string top = r.out.substr(first + 1, r.out.find('\n', first + 1) - first - 1);
  CHECK(top.find(videos[3]) != std::string::npos);
  CHECK(top.find("1.0000") != std::string::npos);
  r = reel_run("search --index " + index + " --leave-one-out");
  REQUIRE_MESSAGE(r.rc == 0, r.err);
  CHECK(r.out.find("10 videos in") != std::string::npos);
  // An index made by a model with another embedding size (H = 6) is refused with both sizes.
  const std::string small = fresh("h6");
  REQUIRE(reel_run(base_args() + " --hidden 6 --max-steps 1 --out " + small).rc == 0);
  r = reel_run("search " + videos[3] + " --index " + index + " --run " + small + " --which last");
  CHECK(r.rc == 1);
  CHECK(r.err.find("holds embeddings of size 8") != std::string::npos);
  CHECK(r.err.find("makes them of size 6") != std::string::npos);
  r = reel_run("search " + videos[3] + " --index " + run + "/last.safetensors");
  CHECK(r.rc == 1);
  CHECK(r.err.find("not an index written by `reel embed`") != std::string::npos);
}

TEST_CASE("a run stopped by --max-steps and resumed equals the uninterrupted run bit for bit") {
  const std::string ref = reference_run();
  const std::string run = fresh("resumed");
  const Result a = reel_run(base_args() + " --out " + run + " --max-steps 4");  // mid-epoch 1
  REQUIRE_MESSAGE(a.rc == 0, a.err);
  CHECK(a.out.find("--resume " + run) != std::string::npos);
  const Result b = reel_run("train --resume " + run + " --max-steps 0");
  REQUIRE_MESSAGE(b.rc == 0, b.err);
  CHECK(b.out.find("resuming") != std::string::npos);
  check_same_tensors(ref + "/last.safetensors", run + "/last.safetensors");
  // The metrics read as one run: the same steps with the same losses.
  const std::vector<json> m1 = lines_of(ref + "/metrics.jsonl"),
                          m2 = lines_of(run + "/metrics.jsonl");
  REQUIRE(m1.size() == m2.size());
  for (size_t i = 0; i < m1.size(); ++i) {
    INFO("line " << i);
    CHECK(m1[i]["step"] == m2[i]["step"]);
    CHECK(m1[i]["loss"] == m2[i]["loss"]);
    CHECK(m1[i]["accuracy"] == m2[i]["accuracy"]);
  }
}

TEST_CASE("SIGINT and SIGTERM finish the step, write a checkpoint and say how to resume") {
  for (const int sig : {SIGINT, SIGTERM}) {
    const std::string name = sig == SIGINT ? "SIGINT" : "SIGTERM";
    INFO(name);
    const std::string run = fresh(name);
    const std::string log = kTmp + "/" + name + ".out";
    const std::string cmd =
        kCli + " " + base_args(digits(), 500) + " --out " + run + " > " + log + " 2>&1";
    const pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      execl("/bin/sh", "sh", "-c", ("exec " + cmd).c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    // Wait for the first steps in metrics.jsonl (at most 60 s), then interrupt.
    const auto t0 = std::chrono::steady_clock::now();
    while (lines_of(run + "/metrics.jsonl").size() < 3 &&
           std::chrono::steady_clock::now() - t0 < std::chrono::seconds(60))
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    kill(pid, sig);
    int status = 0;
    waitpid(pid, &status, 0);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 130);
    const std::string out = read_text(log);
    CHECK(out.find("stopped by " + name) != std::string::npos);
    CHECK(out.find("resume with: reel train --resume " + run) != std::string::npos);
    const std::vector<json> before = lines_of(run + "/metrics.jsonl");
    REQUIRE(!before.empty());
    const int64_t last_step = before.back()["step"].get<int64_t>();
    // The checkpoint holds the step the metrics reached; a resume goes on from there.
    const Result r =
        reel_run("train --resume " + run + " --max-steps " + std::to_string(last_step + 2));
    REQUIRE_MESSAGE(r.rc == 0, r.err);
    const std::vector<json> after = lines_of(run + "/metrics.jsonl");
    CHECK(after.back()["step"].get<int64_t>() >= last_step + 1);
    for (size_t i = 1; i < after.size(); ++i)
      CHECK(after[i]["step"].get<int64_t>() >= after[i - 1]["step"].get<int64_t>());
  }
}

TEST_CASE("the TOML config: the command line wins; unknown keys and wrong types are refused") {
  const std::string cfg = kTmp + "/run.toml";
  std::ofstream(cfg) << "lr = 0.5\nhidden = 8\nfusion = \"mean\"\nmax_steps = 2\n";
  const std::string run = fresh("config");
  const Result r = reel_run(base_args() + " --lr 0.05 --config " + cfg + " --out " + run);
  REQUIRE_MESSAGE(r.rc == 0, r.err);
  const std::string resolved = read_text(run + "/config.toml");
  CHECK(resolved.find("lr = 0.05") != std::string::npos);          // the command line's
  CHECK(resolved.find("fusion = \"mean\"") != std::string::npos);  // the file's

  std::ofstream(cfg) << "lr = 0.1\nframez = 8\n";
  Result bad = reel_run(base_args() + " --config " + cfg + " --out " + fresh("bad"));
  CHECK(bad.rc == 2);
  CHECK(bad.err.find("unknown key 'framez'") != std::string::npos);
  CHECK(bad.err.find(cfg) != std::string::npos);
  std::ofstream(cfg) << "frames = \"eight\"\n";
  bad = reel_run(base_args() + " --config " + cfg + " --out " + fresh("bad"));
  CHECK(bad.rc == 2);
  CHECK(bad.err.find("key 'frames' must be an integer, not a string") != std::string::npos);
  std::ofstream(cfg) << "frames = [\n";
  bad = reel_run(base_args() + " --config " + cfg + " --out " + fresh("bad"));
  CHECK(bad.rc == 2);
  CHECK(bad.err.find("not valid TOML") != std::string::npos);
  CHECK_FALSE(fs::exists(kTmp + "/bad/config.toml"));
}

TEST_CASE("bad input: a clear line, the right exit code, no run data lost") {
  // Ranges a person can read, refused before any work.
  Result r = reel_run(base_args() + " --frames 0 --out " + fresh("bad"));
  CHECK(r.rc == 2);
  CHECK(r.err.find("--frames must be between 1 and 1024 (got 0)") != std::string::npos);
  r = reel_run(base_args() + " --size 100000 --out " + fresh("bad"));
  CHECK(r.rc == 2);
  CHECK(r.err.find("--size must be between 32 and 1024 pixels (got 100000)") != std::string::npos);
  r = reel_run(base_args() + " --fusion lstm --out " + fresh("bad"));
  CHECK(r.rc == 2);
  CHECK(r.err.find("--fusion must be one of last, mean, concat, attention, pool") !=
        std::string::npos);
  CHECK_FALSE(fs::exists(kTmp + "/bad"));
  // An empty dataset folder.
  const std::string empty = fresh("empty_data");
  fs::create_directories(empty);
  r = reel_run("train --data " + empty + " --out " + fresh("bad"));
  CHECK(r.rc == 1);
  CHECK(r.err.find(empty) != std::string::npos);
  // An existing run is not overwritten.
  const std::string ref = reference_run();
  const std::string before = read_text(ref + "/last.safetensors");
  r = reel_run(base_args() + " --out " + ref);
  CHECK(r.rc == 1);
  CHECK(r.err.find("already holds a run; continue it with --resume") != std::string::npos);
  CHECK(read_text(ref + "/last.safetensors") == before);
  // Resuming with another model shape names what differs.
  const std::string run = fresh("shape");
  REQUIRE(reel_run(base_args() + " --out " + run + " --max-steps 2").rc == 0);
  r = reel_run("train --resume " + run + " --width 8");
  CHECK(r.rc == 1);
  CHECK(r.err.find("width 4 there, 8 here") != std::string::npos);
  // A truncated checkpoint.
  const std::string cut = read_text(run + "/last.safetensors");
  std::ofstream(run + "/last.safetensors", std::ios::binary) << cut.substr(0, cut.size() / 2);
  r = reel_run("train --resume " + run);
  CHECK(r.rc == 1);
  CHECK(r.err.find(run + "/last.safetensors") != std::string::npos);
  r = reel_run("eval --checkpoint " + run + "/last.safetensors --data " + digits() +
               " --layout ucf101");
  CHECK(r.rc == 1);
  CHECK(r.err.find("last.safetensors") != std::string::npos);
  // A split file naming videos that are missing: named in one line, the rest trains.
  const std::string holes = fresh("holes_data");
  fs::copy(digits(), holes, fs::copy_options::recursive);
  int removed = 0;
  for (const auto& e : fs::recursive_directory_iterator(holes))
    if (e.path().extension() == ".avi" && removed < 2 &&
        read_text(holes + "/trainlist01.txt").find(e.path().filename().string()) !=
            std::string::npos) {
      fs::remove(e.path());
      ++removed;
    }
  REQUIRE(removed == 2);
  r = reel_run(base_args(holes) + " --max-steps 1 --out " + fresh("holes"));
  CHECK(r.rc == 0);
  CHECK(r.out.find("2 listed videos are missing and skipped") != std::string::npos);
  // --device cuda without a GPU.
  if (!cuda::available()) {
    r = reel_run(base_args() + " --device cuda --out " + fresh("bad"));
    CHECK(r.rc == 1);
    CHECK(r.err.find("no usable GPU") != std::string::npos);
  }
}

TEST_CASE("reel train from a store, with pretrained frozen weights; checkpoints that do not fit") {
  // A store made by reel prepare trains like the folder it came from.
  const std::string store = kTmp + "/digits.store";
  fs::remove(store);
  Result r = reel_run("prepare --data " + digits() +
                      " --layout ucf101 --frames 4 --size 32 --out " + store);
  REQUIRE_MESSAGE(r.rc == 0, r.err);
  // Backbone weights with torchvision's names (a ResNet-18 of width 4, its fc of 1000 classes
  // left out as the trainer drops it), and a frozen backbone: they stay as they were.
  manual_seed(3);
  ResNetOptions ro;
  ro.width = 4;
  ro.num_classes = 1000;
  ResNet resnet(ro);
  TensorMap weights = resnet.state_dict();
  const std::string pre = kTmp + "/resnet18_w4.safetensors";
  save_safetensors(pre, weights);
  const std::string run = fresh("store_run");
  r = reel_run("train --data " + store +
               " --frames 4 --size 32 --resize 32 --width 4 "
               "--feature-dim 8 --hidden 8 --layers 1 --batch 8 --threads 1 --max-steps 2 "
               "--device cpu --pretrained " +
               pre + " --freeze-backbone --out " + run);
  REQUIRE_MESSAGE(r.rc == 0, r.err);
  CHECK(r.out.find("48 videos in 4 classes") != std::string::npos);
  const TensorMap ck = load_safetensors(run + "/last.safetensors");
  for (const char* k : {"conv1.weight", "layer4.1.bn2.weight", "layer2.0.downsample.0.weight",
                        "bn1.running_mean"}) {
    INFO(k);
    reel::test::check_close(ck.at(std::string("cnn.") + k), weights.at(k), 0.0f);
  }
  // Weights of another width are refused, naming the file and what differs.
  ro.width = 8;
  ResNet wide(ro);
  save_safetensors(pre, wide.state_dict());
  r = reel_run("train --data " + store + " --width 4 --size 32 --pretrained " + pre + " --out " +
               fresh("bad"));
  CHECK(r.rc == 1);
  CHECK(r.err.find("--pretrained " + pre) != std::string::npos);
  CHECK(r.err.find("conv1.weight (checkpoint [8, 3, 7, 7], module [4, 3, 7, 7])") !=
        std::string::npos);
  // A bare weights file is not a checkpoint for eval or predict.
  std::string video;
  for (const auto& e : fs::recursive_directory_iterator(digits()))
    if (e.path().extension() == ".avi") video = e.path().string();
  r = reel_run("predict " + video + " --checkpoint " + pre);
  CHECK(r.rc == 1);
  CHECK(r.err.find("not a reel checkpoint") != std::string::npos);
  // A checkpoint whose classes are not the dataset's.
  const std::string other = fresh("other_classes");
  fs::create_directories(other + "/a/v1");
  fs::create_directories(other + "/b/v2");
  for (const char* v : {"/a/v1", "/b/v2"})
    for (int f = 0; f < 4; ++f)
      cv::imwrite(other + v + "/" + std::to_string(f) + ".png",
                  cv::Mat(32, 32, CV_8UC3, cv::Scalar(f * 40)));
  r = reel_run("eval --checkpoint " + run + "/last.safetensors --data " + other);
  CHECK(r.rc == 1);
  CHECK(r.err.find("has other classes") != std::string::npos);
}

TEST_CASE("a full disk while writing a checkpoint keeps the previous one") {
  // A 1.5 MiB tmpfs holds the run; a filler file takes what the next checkpoint needs.
  const std::string mnt = fresh("tmpfs");
  fs::create_directories(mnt);
  if (mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=1536k") != 0) {
    WARN_MESSAGE(false, "cannot mount a tmpfs here (needs root): the full-disk case is skipped");
    return;
  }
  const std::string run = mnt + "/run";
  const Result a = reel_run(base_args() + " --out " + run + " --max-steps 6");  // epoch 1 ends
  REQUIRE_MESSAGE(a.rc == 0, a.err);
  const std::string last = read_text(run + "/last.safetensors");
  REQUIRE(last.size() > 100000);
  {
    std::ofstream filler(mnt + "/filler", std::ios::binary);
    const std::string block(4096, 'x');
    const auto free_now = fs::space(mnt).available;
    for (size_t w = 0; w + 4096 + last.size() / 2 < free_now; w += 4096) filler << block;
  }
  const Result b = reel_run("train --resume " + run + " --max-steps 0");
  CHECK(b.rc == 1);
  CHECK(b.err.find("disk full") != std::string::npos);
  CHECK(read_text(run + "/last.safetensors") == last);  // the previous checkpoint survives
  CHECK_FALSE(fs::exists(run + "/last.safetensors.tmp"));
  // With room again, the run resumes from it and finishes.
  fs::remove(mnt + "/filler");
  const Result c = reel_run("train --resume " + run + " --max-steps 0");
  CHECK_MESSAGE(c.rc == 0, c.err);
  umount(mnt.c_str());
}
