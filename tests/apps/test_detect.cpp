// `reel detect` end to end, through the binary: a small CNN-LSTM trained on moving digits finds
// the actions of a long video made by joining held-out moving-digits clips of known classes end
// to end. The segments found must cover the true ones (temporal IoU at least 0.5 for most of
// them), and the bad input of the issue (a video shorter than one window, a missing or
// undecodable video, a bad threshold or window) gives one clear line and the documented exit
// code.
//
// The long video joins, per true segment, several held-out clips of one class back to back (3 to
// 6 seconds), so a window that spans a join sees the digit jump back to its start. The model is
// trained on what windows of such a video show: each training clip whole, and 8 consecutive
// frames cut at every offset from chains of training clips of one class, joins included. (A
// model trained on whole clips only reads the jump as the opposite motion: with it, 3 of these
// 10 segments were found. One trained on the cut pieces only learnt the direction of motion
// late and unreliably; the whole clips teach it in two epochs.)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/videoio.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "../test_util.h"
#include "reel/data/digits.h"
#include "reel/data/video.h"

using namespace reel;
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

const std::string kTmp = REEL_TEST_TMP_DIR "/detect";
const std::string kCli = REEL_CLI;
// The videos run at kFps frames/s; the model reads clips of kFrames frames (one second, the
// default window), kSize pixels square: one clip of kFrames frames is one second.
constexpr int kFps = 8, kFrames = 8, kSize = 32;

using Result = reel::test::CommandResult;
using reel::test::read_text;

Result reel_run(const std::string& args) {
  return reel::test::run_program(kCli, args, kTmp + "/run");
}

// Writes frames (BGR, all of one size) as an MJPEG video at kFps frames/s.
void write_video(const std::string& path, const std::vector<cv::Mat>& frames) {
  REQUIRE(!frames.empty());
  cv::VideoWriter vw;
  vw.open(path, cv::CAP_FFMPEG, cv::VideoWriter::fourcc('M', 'J', 'P', 'G'), kFps, frames[0].size(),
          true);
  REQUIRE_MESSAGE(vw.isOpened(), path);
  vw.set(cv::VIDEOWRITER_PROP_QUALITY, 95);
  for (const cv::Mat& f : frames) vw.write(f);
  vw.release();
  REQUIRE(fs::file_size(path) > 0);
}

// `reel digits` clips (train: training digits; else held-out digits, each clip followed by its
// reversed twin), as frames by class index, in the order of their files.
std::map<int, std::vector<std::vector<cv::Mat>>> digit_clips(int count, bool train, int seed) {
  const std::string d = kTmp + (train ? "/clips_train" : "/clips_test");
  fs::remove_all(d);
  const std::string n = std::to_string(count);
  const Result r = reel_run("digits --out " + d +
                            (train ? " --train " + n + " --test 0" : " --train 0 --test " + n) +
                            " --frames " + std::to_string(kFrames) + " --size " +
                            std::to_string(kSize) + " --seed " + std::to_string(seed));
  REQUIRE_MESSAGE(r.rc == 0, r.err);
  const auto& classes = data::digit_classes();
  std::vector<std::string> paths;
  for (const auto& e : fs::recursive_directory_iterator(d))
    if (e.path().extension() == ".avi") paths.push_back(e.path().string());
  std::sort(paths.begin(), paths.end());
  std::vector<int64_t> all(kFrames);
  for (int k = 0; k < kFrames; ++k) all[k] = k;
  std::map<int, std::vector<std::vector<cv::Mat>>> by_class;
  for (const std::string& p : paths) {
    const std::string cls = fs::path(p).parent_path().filename().string();
    const int c =
        static_cast<int>(std::find(classes.begin(), classes.end(), cls) - classes.begin());
    REQUIRE(c < static_cast<int>(classes.size()));
    by_class[c].push_back(data::open_video(p)->read(all));
    REQUIRE(by_class[c].back().size() == static_cast<size_t>(kFrames));
  }
  fs::remove_all(d);
  return by_class;
}

// What windows of a long video of joined clips show, as a folder of videos per class under
// `dir`: every clip whole, and the clips of each class joined end to end and cut into pieces of
// kFrames frames every 3 frames (so at every offset from the joins). Returns the videos written.
int write_windows(const std::string& dir,
                  const std::map<int, std::vector<std::vector<cv::Mat>>>& by_class) {
  fs::remove_all(dir);
  int written = 0;
  for (const auto& [c, clips] : by_class) {
    const std::string cls = dir + "/" + data::digit_classes()[c] + "/";
    fs::create_directories(cls);
    std::vector<cv::Mat> chain;
    for (const auto& clip : clips) {
      write_video(cls + "w" + std::to_string(written++) + ".avi", clip);
      chain.insert(chain.end(), clip.begin(), clip.end());
    }
    for (size_t start = 0; start + kFrames <= chain.size(); start += 3) {
      const std::vector<cv::Mat> piece(chain.begin() + start, chain.begin() + start + kFrames);
      write_video(cls + "w" + std::to_string(written++) + ".avi", piece);
    }
  }
  return written;
}

// A small CNN-LSTM trained, once for every case, on windows of training digits, validated on
// windows of held-out ones (best.safetensors is the epoch with the best validation accuracy).
const std::string& trained_run() {
  static const std::string run = [] {
    fs::create_directories(kTmp);
    const std::string data = kTmp + "/windows", val = kTmp + "/windows_val";
    const std::string run = kTmp + "/run_windows";
    fs::remove_all(run);
    const int written = write_windows(data, digit_clips(256, true, 3));
    write_windows(val, digit_clips(48, false, 12));
    const auto t0 = std::chrono::steady_clock::now();
    const std::string f = std::to_string(kFrames), s = std::to_string(kSize);
    const Result r =
        reel_run("train --data " + data + " --val-data " + val + " --layout folder --frames " + f +
                 " --size " + s + " --resize " + s +
                 " --width 4 --feature-dim 32 --hidden 32 --layers 1 --fusion concat --batch 16 "
                 "--epochs 4 --optimizer adam --lr 0.005 --schedule constant --threads 2 "
                 "--workers 1 --device cpu --seed 1 --out " +
                 run);
    REQUIRE_MESSAGE(r.rc == 0, r.err);
    std::string summary;  // the validation of each epoch and the last line
    std::istringstream lines(r.out);
    for (std::string line; std::getline(lines, line);)
      if (line.find("validation accuracy") != std::string::npos) summary += line + "\n";
    std::printf("test_detect: %d training videos; trained in %.1f s:\n%s", written,
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(),
                summary.c_str());
    return run;
  }();
  return run;
}

struct TrueSegment {
  int cls = 0;
  double start = 0, end = 0;  // seconds
};

// The long video: ten segments of 3 to 6 held-out clips of one class back to back, each class
// after every other one. Returns the true segments.
std::vector<TrueSegment> make_long_video(const std::string& path) {
  const std::vector<std::pair<int, int>> plan = {{0, 4}, {1, 5}, {2, 3}, {3, 6}, {0, 3},
                                                 {2, 5}, {1, 4}, {3, 3}, {0, 5}, {1, 3}};
  std::map<int, std::vector<std::vector<cv::Mat>>> clips = digit_clips(96, false, 11);
  std::map<int, size_t> used;
  std::vector<cv::Mat> frames;
  std::vector<TrueSegment> truth;
  for (const auto& [cls, n] : plan) {
    const double start = static_cast<double>(frames.size()) / kFps;
    for (int k = 0; k < n; ++k) {
      REQUIRE(used[cls] < clips[cls].size());
      const auto& clip = clips[cls][used[cls]++];
      frames.insert(frames.end(), clip.begin(), clip.end());
    }
    truth.push_back({cls, start, static_cast<double>(frames.size()) / kFps});
  }
  write_video(path, frames);
  return truth;
}

double iou(double a0, double a1, double b0, double b1) {
  const double inter = std::max(0.0, std::min(a1, b1) - std::max(a0, b0));
  const double uni = std::max(a1, b1) - std::min(a0, b0);
  return uni > 0 ? inter / uni : 0.0;
}

}  // namespace

TEST_CASE("reel detect finds the segments of a long video of joined clips") {
  const std::string run = trained_run();
  const std::string video = kTmp + "/long.avi";
  const std::vector<TrueSegment> truth = make_long_video(video);
  const double duration = truth.back().end;
  const std::string out = kTmp + "/detect_out";
  fs::remove_all(out);
  const auto t0 = std::chrono::steady_clock::now();
  const Result r = reel_run("detect " + video + " --run " + run + " --out " + out);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  REQUIRE_MESSAGE(r.rc == 0, r.err);
  std::printf("%s(reel detect took %.1f s)\n", r.out.c_str(), secs);
  CHECK(r.out.find("segments where one class stays at or above 0.50") != std::string::npos);

  const json j = json::parse(read_text(out + "/detect.json"));
  const auto& classes = data::digit_classes();
  CHECK(j["classes"] == classes);
  CHECK(j["frames"] == static_cast<int>(duration * kFps));
  CHECK(j["fps"].get<double>() == doctest::Approx(kFps));
  CHECK(j["window"]["frames"] == kFrames);  // by default T frames at the video's rate
  // One row of probabilities per second, each summing to 1.
  const auto& per_second = j["probabilities_per_second"];
  REQUIRE(per_second.size() == static_cast<size_t>(duration));
  for (const auto& row : per_second) {
    REQUIRE(row.size() == classes.size());
    double sum = 0;
    for (const auto& p : row) sum += p.get<double>();
    CHECK(sum == doctest::Approx(1.0).epsilon(1e-4));
  }
  // Segments in order, not overlapping, inside the video, each above the threshold.
  const auto& found = j["segments"];
  double last_end = 0.0;
  for (const auto& s : found) {
    CHECK(s["start"].get<double>() >= last_end);
    CHECK(s["end"].get<double>() > s["start"].get<double>());
    CHECK(s["end"].get<double>() <= duration);
    CHECK(s["score"].get<double>() >= 0.5);
    CHECK(s["score"].get<double>() <= 1.0);
    last_end = s["end"].get<double>();
  }
  // Every true segment against the found segment of its class that overlaps it most.
  int matched = 0;
  for (const TrueSegment& t : truth) {
    double best = 0.0;
    for (const auto& s : found)
      if (s["class"] == classes[t.cls])
        best = std::max(best, iou(t.start, t.end, s["start"], s["end"]));
    std::printf("true %-8s %5.1f - %5.1f s: best IoU %.2f\n", classes[t.cls].c_str(), t.start,
                t.end, best);
    matched += best >= 0.5;
  }
  // And the other way: the found segments that match a true one (precision).
  int right = 0;
  for (const auto& s : found)
    for (const TrueSegment& t : truth)
      if (s["class"] == classes[t.cls] && iou(t.start, t.end, s["start"], s["end"]) >= 0.5) {
        ++right;
        break;
      }
  const double share = static_cast<double>(matched) / truth.size();
  std::printf(
      "test_detect: %d of %zu true segments found with temporal IoU >= 0.5 (%.0f%%); %d of %zu "
      "found segments match a true one\n",
      matched, truth.size(), 100.0 * share, right, found.size());
  CHECK(share >= 0.7);
  CHECK(2 * right >= static_cast<int>(found.size()));

  // --json prints the same result; the timeline is a picture with a strip per class.
  const std::string out2 = kTmp + "/detect_json";
  fs::remove_all(out2);
  const Result rj = reel_run("detect " + video + " --run " + run + " --json --out " + out2);
  REQUIRE_MESSAGE(rj.rc == 0, rj.err);
  const json printed = json::parse(rj.out);
  CHECK(printed["segments"] == found);
  CHECK(printed["probabilities_per_second"] == per_second);
  const cv::Mat png = cv::imread(out + "/timeline.png");
  CHECK(png.cols >= 600);
  CHECK(png.rows >= 150);
}

TEST_CASE("reel detect: --threshold, --min-length, --window and --hop") {
  const std::string run = trained_run();
  const std::string video = kTmp + "/long.avi";
  if (!fs::exists(video)) make_long_video(video);
  const std::string out = kTmp + "/detect_options";
  fs::remove_all(out);
  auto detect = [&](const std::string& options) {
    const Result r =
        reel_run("detect " + video + " --run " + run + " --json --out " + out + " " + options);
    REQUIRE_MESSAGE(r.rc == 0, r.err);
    return json::parse(r.out);
  };
  // A stricter threshold: the same probabilities, and each segment inside one of the lenient
  // threshold's, of the same class, with a score at least the strict threshold.
  const json lenient = detect("--threshold 0.5"), strict = detect("--threshold 0.95");
  CHECK(strict["probabilities_per_second"] == lenient["probabilities_per_second"]);
  CHECK(strict["segments"].size() <= lenient["segments"].size() + 1);
  for (const auto& s : strict["segments"]) {
    CHECK(s["score"].get<double>() >= 0.95);
    bool inside = false;
    for (const auto& l : lenient["segments"])
      inside |= l["class"] == s["class"] && l["start"] <= s["start"] && s["end"] <= l["end"];
    CHECK_MESSAGE(inside, s.dump());
  }
  // --min-length longer than the video drops every segment.
  CHECK(!lenient["segments"].empty());
  CHECK(detect("--min-length 100")["segments"].empty());
  // Wider windows: 2 s (16 frames, the model's 8 spread over them), every half second.
  const json wide = detect("--window 2 --hop 0.5");
  CHECK(wide["window"]["frames"] == 2 * kFps);
  CHECK(wide["hop"]["frames"].get<double>() == doctest::Approx(kFps / 2));
  // 16-frame windows every 4 frames over 328 frames: starts 0, 4, ..., 312.
  CHECK(wide["windows"] == 79);
}

TEST_CASE("reel detect: bad input is one clear line and the documented exit code") {
  const std::string run = trained_run();
  // A video shorter than one window (a frame less): exit code 1, the video named, no output.
  const std::string short_video = kTmp + "/short.avi";
  write_video(short_video,
              std::vector<cv::Mat>(kFrames - 1, cv::Mat(kSize, kSize, CV_8UC3, cv::Scalar(0))));
  const std::string out = kTmp + "/detect_bad";
  fs::remove_all(out);
  Result r = reel_run("detect " + short_video + " --run " + run + " --out " + out);
  CHECK(r.rc == 1);
  CHECK(r.err.find(short_video) != std::string::npos);
  CHECK(r.err.find("shorter than one window") != std::string::npos);
  CHECK(r.err.find('\n') == r.err.size() - 1);  // one line
  CHECK(!fs::exists(out));
  // A missing video and a file that is no video: exit code 1, named.
  const std::string missing = kTmp + "/no_such_video.avi";
  r = reel_run("detect " + missing + " --run " + run + " --out " + out);
  CHECK(r.rc == 1);
  CHECK(r.err.find(missing) != std::string::npos);
  CHECK(r.err.find("no such file") != std::string::npos);
  const std::string junk = kTmp + "/junk.avi";
  std::ofstream(junk) << "not a video";
  r = reel_run("detect " + junk + " --run " + run + " --out " + out);
  CHECK(r.rc == 1);
  CHECK(r.err.find(junk) != std::string::npos);
  CHECK(!fs::exists(out));
  // Bad options: exit code 2, the option named, before any video is read.
  for (const char* bad : {"--threshold 1.5", "--threshold -0.1", "--threshold nan"}) {
    INFO(bad);
    r = reel_run("detect " + short_video + " --run " + run + " " + bad + " --out " + out);
    CHECK(r.rc == 2);
    CHECK(r.err.find("--threshold") != std::string::npos);
  }
  for (const char* bad : {"--window 0", "--window -2", "--hop inf", "--window 1e300"}) {
    INFO(bad);
    r = reel_run("detect " + short_video + " --run " + run + " " + bad + " --out " + out);
    CHECK(r.rc == 2);
    const std::string option(bad);
    CHECK(r.err.find(option.substr(0, option.find(' '))) != std::string::npos);
  }
  r = reel_run("detect " + short_video + " --out " + out);  // no model named
  CHECK(r.rc == 2);
  CHECK(r.err.find("--run") != std::string::npos);
  CHECK(!fs::exists(out));
}
