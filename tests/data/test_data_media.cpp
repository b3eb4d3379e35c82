// data/ on real media: videos nobody here wrote (opencv-doc, python3-imageio), files made with
// ffmpeg in several codecs and containers, broken files, and OpenCV's real handwritten digits.
// The CTest fixture `media` (scripts/fetch_test_media.sh) puts them in the media cache first.
// Decoders differ between FFmpeg versions: pixels are compared within tolerances only.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include <opencv2/imgproc.hpp>

#include "data_test_util.h"
#include "reel/core/random.h"
#include "reel/data/clip.h"
#include "reel/data/dataset.h"
#include "reel/data/digits.h"
#include "reel/data/loader.h"
#include "reel/data/store.h"
#include "reel/data/video.h"

namespace fs = std::filesystem;
using namespace reel;
using namespace reel::data;
using reel::test::error_of;
using reel::test::media;
using reel::test::ScratchDir;
using reel::test::write_text;

namespace {

double mean_abs_diff(const cv::Mat& a, const cv::Mat& b) {
  REQUIRE(a.size() == b.size());
  REQUIRE(a.type() == b.type());
  cv::Mat d;
  cv::absdiff(a, b, d);
  const cv::Scalar m = cv::mean(d);
  return (m[0] + m[1] + m[2]) / 3.0;
}

// frames_png/frame_001.png is frame 0 of every made_* file.
cv::Mat reference_frame(int t) {
  auto src = open_frame_folder(media("frames_png"));
  return src->read({t}).at(0);
}

}  // namespace

TEST_CASE("real videos: stated frame counts, fps and sizes; only the frames asked for") {
  struct Case {
    const char* file;
    int64_t frames;
    int w, h;
  };
  for (const Case& c : {Case{"realshort.mp4", 36, 320, 240}, Case{"cockatoo.mp4", 280, 1280, 720},
                        Case{"vtest.avi", 795, 768, 576}, Case{"Megamind.avi", 270, 720, 528},
                        Case{"tree.avi", 444, 320, 240}}) {
    INFO(std::string(c.file));
    auto v = open_video(media(c.file));
    CHECK(v->frame_count() == c.frames);
    CHECK(v->fps() > 5.0);
    CHECK(v->fps() < 40.0);
    const auto f = v->read({0, 1, 1, 4});
    REQUIRE(f.size() == 4);
    CHECK(f[0].cols == c.w);
    CHECK(f[0].rows == c.h);
    CHECK(f[0].type() == CV_8UC3);
    CHECK(cv::norm(f[1], f[2], cv::NORM_INF) == 0.0);  // a repeat is the same frame
    CHECK(cv::norm(f[0], f[3], cv::NORM_L1) > 0.0);    // frames differ over time
    // Asking again from the start re-opens and gives the same frame.
    const auto again = v->read({0});
    CHECK(cv::norm(again[0], f[0], cv::NORM_INF) == 0.0);
  }
  auto v = open_video(media("realshort.mp4"));
  CHECK(count_frames(*v) == 36);
  CHECK(v->fps() == doctest::Approx(45000.0 / 1499).epsilon(1e-3));
}

TEST_CASE("a real container that states the wrong frame count is decoded to its end") {
  // opencv-doc's tree.avi (Cinepak) states 444 frames, but FFmpeg decodes 68 from it (the other
  // packets are empty): sampling from the stated count would ask for frames that never come.
  auto v = open_video(media("tree.avi"));
  CHECK(v->frame_count() == 444);
  int64_t n = 0;
  std::vector<int64_t> asked_for;
  SamplerOptions so;
  so.frames = 8;
  Generator g(0);
  const auto frames = decode_frames(
      *v,
      [&](int64_t count) {
        asked_for.push_back(count);
        return sample_clip(count, so, false, 0, g).frames;
      },
      0, &n);
  CHECK(n < 444);
  CHECK(n > 8);
  CHECK(asked_for == std::vector<int64_t>{444, n});  // asked again with the true count
  REQUIRE(frames.size() == 8);
  for (const auto& f : frames) CHECK_FALSE(f.empty());
  CHECK(count_frames(*v) == n);
  // The last sampled frame (centre of the last segment) is near the true end.
  CHECK(sample_clip(n, so, false, 0, g).frames.back() >= n - n / 8);
}

TEST_CASE("made files: each codec and container decodes the reference frames") {
  struct Case {
    const char* file;
    double tolerance;  // mean absolute difference per channel, 0-255
  };
  const cv::Mat r0 = reference_frame(0), r15 = reference_frame(15), r31 = reference_frame(31);
  // Measured with Debian 12's FFmpeg 5.1: 2.0, 1.5, 1.3, 2.6, 2.6, 0.4 and 0 (lossless).
  for (const Case& c :
       {Case{"made_mjpeg.avi", 4}, Case{"made_mpeg4.avi", 4}, Case{"made_xvid.avi", 4},
        Case{"made_h264.mkv", 5}, Case{"made_h264.mp4", 5}, Case{"made_vp9.webm", 3},
        Case{"made_ffv1.mkv", 0.01}}) {
    INFO(std::string(c.file));
    auto v = open_video(media(c.file));
    CHECK(count_frames(*v) == 32);
    const auto f = v->read({0, 15, 31});
    REQUIRE(f.size() == 3);
    CHECK(mean_abs_diff(f[0], r0) <= c.tolerance);
    CHECK(mean_abs_diff(f[1], r15) <= c.tolerance);
    CHECK(mean_abs_diff(f[2], r31) <= c.tolerance);
    // The wrong frame is far off: the comparison can fail.
    CHECK(mean_abs_diff(f[1], r31) > 2 * c.tolerance);
  }
  // A JPEG frame folder, named 1.jpg ... 32.jpg: name order is numeric order.
  auto jpg = open_frame_folder(media("frames_jpg"));
  CHECK(jpg->frame_count() == 32);
  const auto f = jpg->read({0, 15, 31});
  CHECK(mean_abs_diff(f[0], r0) <= 8);  // measured 4.9: JPEG at q 2 with 4:2:0 chroma
  CHECK(mean_abs_diff(f[1], r15) <= 8);
  CHECK(mean_abs_diff(f[2], r31) <= 8);
  CHECK(mean_abs_diff(f[1], r31) > 16);
}

TEST_CASE("bad files: each reported with its name, never a crash") {
  CHECK(error_of([] {
          open_video(reel::test::media_dir() + "/no_such.mp4");
        }).find("no_such.mp4': no such file") != std::string::npos);
  for (const char* name : {"bad_random.mp4", "bad_empty.avi", "bad_zero_frames.mp4"}) {
    INFO(std::string(name));
    const std::string e = error_of([&] {
      auto v = open_source(media(name));
      decode_frames(*v, [](int64_t n) { return std::vector<int64_t>{0, n - 1}; });
    });
    CHECK(e.find(name) != std::string::npos);
  }
  // Opens and states 32 frames, but holds none.
  auto hdr = open_video(media("bad_headers_only.avi"));
  CHECK(hdr->frame_count() == 32);
  const std::string e0 =
      error_of([&] { decode_frames(*hdr, [](int64_t n) { return std::vector<int64_t>{n / 2}; }); });
  CHECK(e0.find("bad_headers_only.avi") != std::string::npos);
  CHECK(e0.find("has no frame") != std::string::npos);
  // Truncated: the container still states 32 frames; decoding to the end finds fewer, and the
  // clip is sampled again from those (or, if nothing decodes, an error names the file).
  for (const char* name : {"bad_truncated.mp4", "bad_truncated.avi"}) {
    INFO(std::string(name));
    auto v = open_video(media(name));
    const int64_t stated = v->frame_count();
    int64_t n = -1;
    std::vector<cv::Mat> frames;
    const std::string e = error_of([&] {
      frames = decode_frames(
          *v,
          [](int64_t count) {
            std::vector<int64_t> idx;
            for (int64_t k = 0; k < 4; ++k) idx.push_back(k * count / 4 + count / 8);
            return idx;
          },
          0, &n);
    });
    if (e.empty()) {
      CHECK(frames.size() == 4);
      CHECK(n > 0);
      CHECK(n <= 32);
      MESSAGE(std::string(name) << ": stated " << stated << " frames, decoded " << n);
    } else {
      CHECK(e.find(name) != std::string::npos);
    }
  }
  auto trunc = open_video(media("bad_truncated.mp4"));
  CHECK(trunc->frame_count() == 32);
  CHECK(count_frames(*trunc) < 32);  // really truncated: the stated count is wrong
}

TEST_CASE("loader on real files: same batches with 1 and 2 workers; bad files skipped") {
  ScratchDir d("media_loader");
  auto link = [&](const char* file, const std::string& as) {
    fs::create_directories(fs::path(d / as).parent_path());
    fs::create_symlink(media(file), d / as);
  };
  link("realshort.mp4", "real/realshort.mp4");
  link("tree.avi", "real/tree.avi");
  link("frames_png", "real/frames_png");
  link("made_h264.mkv", "made/h264.mkv");
  link("made_mjpeg.avi", "made/mjpeg.avi");
  link("made_mpeg4.avi", "made/mpeg4.avi");
  link("made_short3.avi", "made/short3.avi");
  link("bad_random.mp4", "made/random.mp4");
  link("bad_truncated.mp4", "made/truncated.mp4");
  const Dataset ds = load_folder(d.str());
  REQUIRE(ds.size() == 9);
  LoaderOptions o;
  o.batch_size = 4;
  o.seed = 3;
  o.sampler.frames = 6;
  o.transform.resize = 64;
  o.transform.crop = 56;
  std::ostringstream log;
  o.log = &log;
  auto run = [&](int workers) {
    LoaderOptions w = o;
    w.workers = workers;
    Loader l(ds, w);
    l.start_epoch(2);
    std::vector<Batch> out;
    Batch b;
    while (l.next(b)) out.push_back(b);
    return std::make_pair(out, l.summary());
  };
  const auto [one, s1] = run(1);
  const auto [two, s2] = run(2);
  REQUIRE(one.size() == two.size());
  int64_t clips = 0;
  for (size_t i = 0; i < one.size(); ++i) {
    CHECK(one[i].videos == two[i].videos);
    CHECK(one[i].lengths == two[i].lengths);
    CHECK(one[i].clips.to_vector() == two[i].clips.to_vector());
    clips += static_cast<int64_t>(one[i].videos.size());
    for (size_t k = 0; k < one[i].paths.size(); ++k) {
      if (one[i].paths[k].find("short3") != std::string::npos)
        CHECK(one[i].lengths[k] == 3);
      else if (one[i].paths[k].find("truncated") == std::string::npos)
        CHECK(one[i].lengths[k] == 6);
    }
  }
  // random.mp4 never decodes; truncated.mp4 decodes what is there (or is skipped, by name).
  CHECK(s1.bad.size() == s2.bad.size());
  CHECK(std::count_if(s1.bad.begin(), s1.bad.end(), [](const std::string& p) {
          return p.find("random.mp4") != std::string::npos;
        }) == 1);
  CHECK(clips == 9 - static_cast<int64_t>(s1.bad.size()));
  CHECK(log.str().find("random.mp4") != std::string::npos);
  CHECK(one[0].clips.shape() == Shape{4, 6, 3, 56, 56});
  // Normalised values: (x/255 - mean)/std stays within ImageNet's range.
  const auto v = one[0].clips.to_vector();
  const auto [lo, hi] = std::minmax_element(v.begin(), v.end());
  CHECK(*lo >= -2.2f);
  CHECK(*hi <= 2.7f);
  CHECK(*hi - *lo > 1.0f);
}

TEST_CASE("prepare: the store holds exactly the frames the decoder produced") {
  ScratchDir d("media_store");
  write_text(d / "list.csv", "path,label\n" + media("realshort.mp4") + ",a\n" +
                                 media("made_ffv1.mkv") + ",b\n" + media("bad_random.mp4") +
                                 ",b\n" + media("made_short3.avi") + ",a\n");
  const Dataset ds = load_csv(d.str(), d / "list.csv");
  PrepareOptions po;
  po.frames = 8;
  po.size = 48;
  po.workers = 2;
  std::ostringstream log;
  const PrepareSummary s = prepare_store(ds, d / "s.store", po, &log);
  CHECK(s.videos == 4);
  CHECK(s.written == 3);
  REQUIRE(s.bad.size() == 1);
  CHECK(s.bad[0].first.find("bad_random.mp4") != std::string::npos);
  CHECK(log.str().find("bad_random.mp4") != std::string::npos);
  auto store = Store::open(d / "s.store");
  REQUIRE(store->size() == 3);
  CHECK(store->video(0).source_frames == 36);
  CHECK(store->video(0).height == 48);
  CHECK(store->video(0).width == 64);
  CHECK(store->video(2).frames == 3);
  // Segment centres of 36 frames in 8 segments, decoded and resized here the same way.
  auto v = open_video(media("realshort.mp4"));
  SamplerOptions so;
  so.frames = 8;
  Generator g(0);
  const auto idx = sample_clip(36, so, false, 0, g).frames;
  const auto frames = v->read(idx);
  for (int t = 0; t < 8; ++t)
    CHECK(cv::norm(resize_shorter(frames[t], 48), store->frame(0, t), cv::NORM_INF) == 0.0);

  po.on_bad = OnBadVideo::Fail;
  const std::string e = error_of([&] { prepare_store(ds, d / "f.store", po); });
  CHECK(e.find("bad_random.mp4") != std::string::npos);
  CHECK_FALSE(fs::exists(d / "f.store"));
  CHECK_FALSE(fs::exists(d / "f.store.part"));
}

TEST_CASE("Kinetics layout over real clips") {
  ScratchDir d("media_kinetics");
  fs::create_directories(d / "playing_cello");
  fs::create_symlink(media("realshort.mp4"), d / "playing_cello/abc_000010_000020.mp4");
  write_text(d / "k.csv",
             "label,youtube_id,time_start,time_end,split\n"
             "playing cello,abc,10,20,train\n");
  DatasetOptions o;
  o.layout = Layout::Kinetics;
  o.root = d.str();
  const Dataset ds = load_dataset(o);
  REQUIRE(ds.size() == 1);
  auto v = open_source(ds.items[0].path);
  CHECK(v->frame_count() == 36);
}

TEST_CASE("moving digits from OpenCV's real handwritten digits, written as UCF101 videos") {
  const DigitImages digits = load_digits_png(media("digits.png"));
  REQUIRE(digits.images.size() == 5000);
  CHECK(std::count(digits.digits.begin(), digits.digits.end(), 7) == 500);
  CHECK(cv::countNonZero(digits.images[0]) > 20);  // a real stroke, not a blank cell
  CHECK(error_of([] { load_digits_png(media("realshort.mp4")); }).find("realshort.mp4") !=
        std::string::npos);

  ScratchDir d("media_digits");
  DigitsOptions o;
  o.frames = 8;
  o.size = 48;
  o.seed = 5;
  const DigitsWritten w = write_moving_digits(digits, d.str(), 8, 4, o);
  CHECK(w.train == 8);
  const Dataset train = load_ucf101(d.str(), "", 1, true);
  const Dataset test = load_ucf101(d.str(), "", 1, false);
  CHECK(train.classes == digit_classes());
  REQUIRE(train.size() == 8);
  REQUIRE(test.size() == 4);
  const DigitClips mem = make_moving_digits(digits, 4, true, o);
  for (int i = 0; i < 4; ++i) CHECK(test.items[i].label == mem.labels[i]);
  // The twins on disk: frame t of one is frame T-1-t of the other (within MJPEG's loss), and
  // each video matches the in-memory clip it was written from.
  auto a = open_video(test.items[0].path);
  auto b = open_video(test.items[1].path);
  const std::vector<int64_t> all = {0, 1, 2, 3, 4, 5, 6, 7};
  const auto fa = a->read(all), fb = b->read(all);
  REQUIRE(fa.size() == 8);
  REQUIRE(fb.size() == 8);
  for (int t = 0; t < 8; ++t) {
    CHECK(mean_abs_diff(fa[t], fb[7 - t]) < 2.0);
    cv::Mat gray;
    cv::cvtColor(fa[t], gray, cv::COLOR_BGR2GRAY);
    cv::Mat expect(48, 48, CV_32F, mem.clips.data() + t * 48 * 48);
    cv::Mat expect8;
    expect.convertTo(expect8, CV_8U, 255.0);
    cv::Mat diff;
    cv::absdiff(gray, expect8, diff);
    CHECK(cv::mean(diff)[0] < 1.5);
  }
  CHECK(mean_abs_diff(fa[0], fa[7]) > 2.0);  // the digit moved
  // Through the whole pipeline: loader batches of the written set.
  LoaderOptions lo;
  lo.batch_size = 4;
  lo.workers = 2;
  lo.sampler.frames = 8;
  lo.transform.resize = 48;
  lo.transform.crop = 48;
  lo.transform.flip = false;
  Loader l(train, lo);
  l.start_epoch(0);
  Batch batch;
  int64_t n = 0;
  while (l.next(batch)) n += static_cast<int64_t>(batch.labels.size());
  CHECK(n == 8);
  CHECK(l.summary().bad.empty());
}

#ifdef REEL_CLI
namespace {
// Runs a command line; returns its exit code and fills `out` with stdout and stderr.
int run_command(const std::string& cmd, std::string& out) {
  out.clear();
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  REQUIRE(p != nullptr);
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int status = pclose(p);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}
}  // namespace

TEST_CASE("reel digits and reel prepare from the command line, with a bad video") {
  ScratchDir d("media_cli");
  const std::string cli = REEL_CLI;
  std::string out;
  REQUIRE(run_command(cli + " digits --out " + d / "digits" + " --train 8 --test 4 --frames 8 " +
                          "--size 32 --digits-png " + media("digits.png"),
                      out) == 0);
  CHECK(out.find("8 training and 4 test clips") != std::string::npos);
  // Replace one listed video by garbage: skip names it and counts it; fail stops with its name.
  const Dataset ds = load_ucf101(d / "digits", "", 1, true);
  const std::string victim = ds.items[3].path;
  write_text(victim, "garbage, not a video");
  const std::string prep = cli + " prepare --data " + d / "digits" +
                           " --layout ucf101 --split 1 --frames 8 --size 32 --workers 2 --out ";
  REQUIRE(run_command(prep + d / "s.store", out) == 0);
  INFO(out);
  CHECK(out.find("videos read: 8, clips written: 7") != std::string::npos);
  CHECK(out.find("bad files skipped: 1") != std::string::npos);
  CHECK(out.find(victim) != std::string::npos);
  auto store = Store::open(d / "s.store");
  CHECK(store->size() == 7);
  CHECK(run_command(prep + d / "f.store" + " --on-bad-video fail", out) == 1);
  CHECK(out.find(victim) != std::string::npos);
  CHECK_FALSE(fs::exists(d / "f.store"));
  CHECK(run_command(prep + d / "g.store" + " --on-bad-video sometimes", out) == 2);
  CHECK(run_command(cli + " prepare --data " + d / "nowhere" + " --out " + d / "h.store", out) ==
        1);
  CHECK(out.find("nowhere") != std::string::npos);
}

TEST_CASE("ActivityNet layout over real videos: reel train and reel eval on segments") {
  ScratchDir d("media_activitynet");
  const std::string cli = REEL_CLI;
  // Real videos under ActivityNet's names (v_<id> or <id>), and their true durations.
  const std::pair<const char*, const char*> files[] = {{"vtest.avi", "v_walk.avi"},
                                                       {"Megamind.avi", "talk.avi"},
                                                       {"tree.avi", "v_tree.avi"},
                                                       {"cockatoo.mp4", "v_bird.mp4"},
                                                       {"realshort.mp4", "v_short.mp4"}};
  std::map<std::string, double> duration;
  for (const auto& [from, to] : files) {
    fs::create_symlink(media(from), d / to);
    auto v = open_video(media(from));
    duration[to] = static_cast<double>(v->frame_count()) / v->fps();
  }
  REQUIRE(duration["v_bird.mp4"] < 20.0);
  REQUIRE(duration["v_short.mp4"] < 2.0);
  auto dur = [&](const char* f) { return std::to_string(duration[f]); };
  // Training: two segments of walk, one of talk and of tree, a video that is gone. Validation:
  // bird's segment runs past its duration (cut); short's second segment starts past the end of
  // the real file, although the annotation says 10 s (the loader names and skips it).
  const std::string db =
      R"({"version": "VERSION 1.3", "database": {
    "walk": {"subset": "training", "duration": )" +
      dur("v_walk.avi") + R"(, "annotations": [
      {"segment": [2.0, 6.0], "label": "Walking"}, {"segment": [20.0, 26.0], "label": "Walking"}]},
    "talk": {"subset": "training", "duration": )" +
      dur("talk.avi") + R"(, "annotations": [{"segment": [1.0, 5.0], "label": "Talking"}]},
    "tree": {"subset": "training", "duration": )" +
      dur("v_tree.avi") + R"(, "annotations": [{"segment": [1.0, 5.0], "label": "Swaying"}]},
    "gone": {"subset": "training", "duration": 30.0, "annotations": [
      {"segment": [3.0, 9.0], "label": "Walking"}]},
    "bird": {"subset": "validation", "duration": )" +
      dur("v_bird.mp4") + R"(, "annotations": [{"segment": [1.0, 25.0], "label": "Swaying"}]},
    "short": {"subset": "validation", "duration": 10.0, "annotations": [
      {"segment": [0.0, 0.5], "label": "Talking"}, {"segment": [2.0, 3.0], "label": "Talking"}]}
  }})";
  // The annotation file outside the videos' folder, named with --list (eval takes the run's).
  fs::create_directories(d / "annotations");
  const std::string annotations = d / "annotations/activity_net.v1-3.min.json";
  write_text(annotations, db);
  const std::string run = d / "run";
  std::string all, out;
  const int rc =
      run_command(cli + " train --data " + d.str() + " --layout activitynet --list " + annotations +
                      " --frames 4 --size 32 --resize 32 --width 4 "
                      "--feature-dim 8 --hidden 8 --layers 1 --batch 2 --epochs 1 "
                      "--workers 1 --threads 1 --log-every 1 --out " +
                      run,
                  all);
  INFO(all);
  REQUIRE(rc == 0);
  CHECK(all.find("1 listed videos are missing and skipped (" + d / "v_gone.*)") !=
        std::string::npos);
  CHECK(all.find("cut at the video's duration: 1 segment (bird)") != std::string::npos);
  CHECK(all.find("v_short.mp4") != std::string::npos);
  CHECK(all.find("starts past the video's end") != std::string::npos);
  CHECK(all.find("4 segments of 3 videos in 3 classes, 3 segments of 2 videos for validation") !=
        std::string::npos);                         // the segment of the missing video left out
  CHECK(all.find("2 steps") != std::string::npos);  // 4 segments, batch 2
  // Evaluation: the validation subset by default; a video's prediction averages its segments.
  REQUIRE(run_command(cli + " eval --run " + run + " --which last", out) == 0);
  INFO(out);
  const std::string ej = reel::test::read_text(run + "/eval/eval.json");
  CHECK(ej.find("\"videos\": 2") != std::string::npos);  // bird and short
  CHECK(ej.find("\"clips\": 2") != std::string::npos);   // short's second segment is skipped
  REQUIRE(run_command(cli + " eval --run " + run + " --which last --split training --out " +
                          d / "eval_train",
                      out) == 0);
  CHECK(reel::test::read_text(d / "eval_train/eval.json").find("\"videos\": 3") !=
        std::string::npos);
  CHECK(run_command(cli + " eval --run " + run + " --split testing", out) == 2);
  CHECK(out.find("--split must be training or validation") != std::string::npos);

  // A validation label that training never saw; a malformed segment: exit 1, named.
  // Without --list: the only .json in the data folder.
  std::string unseen = db;
  unseen.replace(unseen.find("\"Talking\"}, {\"segment\": [2.0"), 9, "\"Ballet\"");
  write_text(d / "unseen.json", unseen);
  CHECK(run_command(cli + " train --data " + d.str() + " --layout activitynet --out " + d / "r2",
                    out) == 1);
  CHECK_MESSAGE(out.find("validation video \"short\" has the label \"Ballet\", which no "
                         "training video has") != std::string::npos,
                out);
  CHECK(out.find("unseen.json") != std::string::npos);
  fs::remove(d / "unseen.json");
  std::string reversed = db;
  reversed.replace(reversed.find("[1.0, 5.0], \"label\": \"Swaying\""), 10, "[5.0, 1.0]");
  write_text(d / "reversed.json", reversed);
  CHECK(run_command(cli + " train --data " + d.str() + " --layout activitynet --out " + d / "r3",
                    out) == 1);
  CHECK_MESSAGE(out.find("video \"tree\": \"annotations\"[0]: the segment [5, 1] ends before it "
                         "starts") != std::string::npos,
                out);
  CHECK_FALSE(fs::exists(d / "r3/last.safetensors"));
}
#endif
