// data/ without media files: sampling, transforms, dataset lists, the store, the loader on
// frame folders written here, and the in-memory moving-digits generator.
#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <sstream>
#include <thread>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "data_test_util.h"
#include "reel/core/ops.h"
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
using reel::test::ScratchDir;
using reel::test::write_text;

namespace {

// A frame whose pixel (y, x) is BGR (x + 10 t, y + 20 v, 7 v + t) mod 256: every frame of every
// video is different, so a frame read for another shows.
cv::Mat pattern_frame(int h, int w, int v, int t) {
  cv::Mat m(h, w, CV_8UC3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      auto* p = m.ptr<uint8_t>(y) + 3 * x;
      p[0] = static_cast<uint8_t>(x + 10 * t);
      p[1] = static_cast<uint8_t>(y + 20 * v);
      p[2] = static_cast<uint8_t>(7 * v + t);
    }
  return m;
}

// root/<class>/vid<i>/<frame>.png: frame folders of different lengths in two classes.
Dataset make_frame_folders(const ScratchDir& dir, const std::vector<int>& lengths) {
  for (size_t v = 0; v < lengths.size(); ++v) {
    const std::string folder = dir / ((v % 2 ? "b/vid" : "a/vid") + std::to_string(v));
    fs::create_directories(folder);
    for (int t = 0; t < lengths[v]; ++t)
      cv::imwrite(folder + "/f" + std::to_string(t) + ".png",
                  pattern_frame(24, 30, static_cast<int>(v), t));
  }
  return load_folder(dir.str());
}

}  // namespace

TEST_CASE("natural_less orders digit runs by value") {
  std::vector<std::string> v = {"f10.png", "f2.png", "f1.png", "f002.png", "g.png", "f.png"};
  std::sort(v.begin(), v.end(), natural_less);
  CHECK(v == std::vector<std::string>{"f.png", "f1.png", "f002.png", "f2.png", "f10.png", "g.png"});
}

TEST_CASE("segments: centres for evaluation, one random frame per segment for training") {
  SamplerOptions o;
  o.frames = 4;
  Generator g(1);
  CHECK(sample_clip(100, o, false, 0, g).frames == std::vector<int64_t>{12, 37, 62, 87});
  o.clips_per_video = 2;
  CHECK(sample_clip(100, o, false, 0, g).frames == std::vector<int64_t>{6, 31, 56, 81});
  CHECK(sample_clip(100, o, false, 1, g).frames == std::vector<int64_t>{18, 43, 68, 93});
  o.clips_per_video = 1;
  std::vector<int> seen(100, 0);
  for (int rep = 0; rep < 200; ++rep) {
    const ClipIndices c = sample_clip(100, o, true, 0, g);
    CHECK(c.length == 4);
    for (int k = 0; k < 4; ++k) {
      REQUIRE(c.frames[k] >= 25 * k);
      REQUIRE(c.frames[k] < 25 * (k + 1));
      seen[c.frames[k]]++;
    }
  }
  // Jitter really moves: most frames of the first segment came up.
  CHECK(std::count_if(seen.begin(), seen.begin() + 25, [](int s) { return s > 0; }) > 20);
  Generator a(5), b(5);
  CHECK(sample_clip(57, o, true, 0, a).frames == sample_clip(57, o, true, 0, b).frames);
}

TEST_CASE("consecutive: a stride from a random start; K evaluation clips spread evenly") {
  SamplerOptions o;
  o.frames = 4;
  o.mode = SampleMode::Consecutive;
  o.stride = 3;  // span 10
  Generator g(2);
  for (int rep = 0; rep < 50; ++rep) {
    const ClipIndices c = sample_clip(20, o, true, 0, g);
    REQUIRE(c.frames[0] >= 0);
    REQUIRE(c.frames[3] <= 19);
    for (int k = 1; k < 4; ++k) REQUIRE(c.frames[k] - c.frames[k - 1] == 3);
  }
  CHECK(sample_clip(20, o, false, 0, g).frames == std::vector<int64_t>{5, 8, 11, 14});
  o.clips_per_video = 3;
  CHECK(sample_clip(20, o, false, 0, g).frames[0] == 0);
  CHECK(sample_clip(20, o, false, 1, g).frames[0] == 5);
  CHECK(sample_clip(20, o, false, 2, g).frames[0] == 10);
}

TEST_CASE("short videos loop or pad and report their true length") {
  SamplerOptions o;
  o.frames = 8;
  Generator g(3);
  ClipIndices c = sample_clip(3, o, true, 0, g);
  CHECK(c.frames == std::vector<int64_t>{0, 1, 2, 0, 1, 2, 0, 1});
  CHECK(c.length == 3);
  o.short_policy = ShortPolicy::Pad;
  c = sample_clip(3, o, false, 0, g);
  CHECK(c.frames == std::vector<int64_t>{0, 1, 2, -1, -1, -1, -1, -1});
  CHECK(c.length == 3);
  o.frames = 4;
  o.mode = SampleMode::Consecutive;
  o.stride = 2;
  o.short_policy = ShortPolicy::Loop;
  c = sample_clip(5, o, true, 0, g);
  CHECK(c.frames == std::vector<int64_t>{0, 2, 4, 0});
  CHECK(c.length == 3);
  CHECK(error_of([&] { sample_clip(0, o, true, 0, g); }).find("no frame") != std::string::npos);
  CHECK_THROWS_AS(parse_sample_mode("random"), Error);
  CHECK_THROWS_AS(parse_short_policy("wrap"), Error);
}

TEST_CASE("transform_clip: crop, flip, BGR to RGB, normalise, CHW; zero padding frames") {
  TransformOptions o;
  o.resize = 0;
  o.crop = 4;
  const cv::Mat f0 = pattern_frame(4, 6, 1, 0), f1 = pattern_frame(4, 6, 1, 1);
  std::vector<float> out(3 * 3 * 16, -99.0f);  // [3, 3, 4, 4]
  ClipAugment a;                               // centre crop: x0 = 1, no flip
  transform_clip({f0, f1, cv::Mat()}, o, a, out.data(), "clip");
  auto expect = [&](const cv::Mat& f, int c, int y, int x) {
    const int bgr = 2 - c;
    return (f.ptr<uint8_t>(y)[3 * x + bgr] / 255.0f - o.mean[c]) / o.std[c];
  };
  for (int t = 0; t < 2; ++t)
    for (int c = 0; c < 3; ++c)
      for (int y = 0; y < 4; ++y)
        for (int x = 0; x < 4; ++x) {
          INFO("t " << t << " c " << c << " y " << y << " x " << x);
          REQUIRE(out[((t * 3 + c) * 4 + y) * 4 + x] ==
                  doctest::Approx(expect(t ? f1 : f0, c, y, x + 1)).epsilon(1e-6));
        }
  for (int i = 2 * 48; i < 3 * 48; ++i) REQUIRE(out[i] == 0.0f);
  a.flip = true;
  a.crop_x = 1.0f;  // x0 = 2
  transform_clip({f0}, o, a, out.data(), "clip");
  for (int x = 0; x < 4; ++x) CHECK(out[x] == doctest::Approx(expect(f0, 0, 0, 2 + 3 - x)));
  o.crop = 5;
  CHECK(error_of([&] {
          transform_clip({f0}, o, a, out.data(), "clip 'x.avi'");
        }).find("clip 'x.avi'") != std::string::npos);
}

TEST_CASE("resize_shorter keeps the aspect ratio through OpenCV") {
  cv::Mat m(240, 320, CV_8UC3, cv::Scalar(10, 20, 30));
  const cv::Mat r = resize_shorter(m, 128);
  CHECK(r.rows == 128);
  CHECK(r.cols == 171);
  CHECK(r.at<cv::Vec3b>(64, 80) == cv::Vec3b(10, 20, 30));
  CHECK(resize_shorter(r, 128).data == r.data);  // already that size: no copy
  const cv::Mat tall = resize_shorter(cv::Mat(300, 100, CV_8UC3, cv::Scalar(0)), 50);
  CHECK(tall.cols == 50);
  CHECK(tall.rows == 150);
}

TEST_CASE("UCF101 lists: 1-based classes, case-insensitive folders, errors with file:line") {
  ScratchDir d("ucf");
  write_text(d / "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi", "x");
  write_text(d / "HandstandPushups/v_HandstandPushups_g01_c01.avi", "x");
  write_text(d / "lists/classInd.txt", "1 ApplyEyeMakeup\r\n2 HandstandPushups\r\n");
  write_text(d / "lists/trainlist01.txt",
             "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\n"
             "HandStandPushups/v_HandStandPushups_g01_c01.avi 2\n");
  write_text(d / "lists/testlist01.txt", "HandStandPushups/v_HandStandPushups_g01_c01.avi\n");
  const Dataset train = load_ucf101(d.str(), d / "lists", 1, true);
  REQUIRE(train.size() == 2);
  CHECK(train.classes == std::vector<std::string>{"ApplyEyeMakeup", "HandstandPushups"});
  CHECK(train.items[0].label == 0);
  CHECK(train.items[1].label == 1);
  CHECK(train.items[1].path == d / "HandstandPushups/v_HandstandPushups_g01_c01.avi");
  CHECK(fs::exists(train.items[1].path));
  const Dataset test = load_ucf101(d.str(), d / "lists", 1, false);
  REQUIRE(test.size() == 1);
  CHECK(test.items[0].label == 1);

  write_text(d / "lists/trainlist02.txt",
             "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\nJuggling/v_Juggling_g01_c01.avi 3\n");
  std::string e = error_of([&] { load_ucf101(d.str(), d / "lists", 2, true); });
  CHECK(e.find("trainlist02.txt:2") != std::string::npos);
  CHECK(e.find("unknown class 'Juggling'") != std::string::npos);
  write_text(d / "lists/trainlist03.txt", "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi one\n");
  e = error_of([&] { load_ucf101(d.str(), d / "lists", 3, true); });
  CHECK(e.find("trainlist03.txt:1") != std::string::npos);
  CHECK(e.find("not a number") != std::string::npos);
  write_text(d / "lists/testlist03.txt", "no_slash_here.avi\n");
  e = error_of([&] { load_ucf101(d.str(), d / "lists", 3, false); });
  CHECK(e.find("testlist03.txt:1") != std::string::npos);
  e = error_of([&] { load_ucf101(d.str(), d / "lists", 4, true); });
  CHECK(e.find("trainlist04.txt") != std::string::npos);
  write_text(d / "lists/trainlist05.txt", "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 2\n");
  CHECK(error_of([&] { load_ucf101(d.str(), d / "lists", 5, true); }).find("disagrees") !=
        std::string::npos);
  // The lists are found in ucfTrainTestlist/ beside the root too.
  fs::rename(d / "lists", d / "ucfTrainTestlist");
  CHECK(load_ucf101(d.str(), "", 1, true).size() == 2);
}

TEST_CASE("Kinetics CSV: clip names from id and times, quoted labels, split filter") {
  ScratchDir d("kinetics");
  write_text(d / "k.csv",
             "label,youtube_id,time_start,time_end,split\n"
             "abseiling,abc,10,20,train\n"
             "\"air drumming, loud\",xyz,0,10,val\n"
             "abseiling,def,5,15,val\n");
  fs::create_directories(d / "air_drumming,_loud");
  const Dataset val = load_kinetics(d.str(), d / "k.csv", "val");
  CHECK(val.classes == std::vector<std::string>{"abseiling", "air drumming, loud"});
  REQUIRE(val.size() == 2);
  CHECK(val.items[0].path == d / "air_drumming,_loud/xyz_000000_000010.mp4");
  CHECK(val.items[0].label == 1);
  CHECK(val.items[1].path == d / "abseiling/def_000005_000015.mp4");
  CHECK(load_kinetics(d.str(), d / "k.csv", "train").size() == 1);
  CHECK(load_kinetics(d.str(), d / "k.csv", "all").size() == 3);
  write_text(d / "bad.csv", "label,youtube_id,time_start,time_end,split\nx,y,ten,20,train\n");
  const std::string e = error_of([&] { load_kinetics(d.str(), d / "bad.csv", "all"); });
  CHECK(e.find("bad.csv:2") != std::string::npos);
  write_text(d / "nohead.csv", "abseiling,abc,10,20,train\n");
  CHECK(error_of([&] { load_kinetics(d.str(), d / "nohead.csv", "all"); }).find("nohead.csv:1") !=
        std::string::npos);
}

TEST_CASE("folder and csv layouts; an empty class folder is an error naming it") {
  ScratchDir d("folder");
  write_text(d / "cat/b.mp4", "x");
  write_text(d / "cat/a.avi", "x");
  write_text(d / "cat/notes.txt", "x");
  fs::create_directories(d / "dog/frames1");
  const Dataset ds = load_folder(d.str());
  CHECK(ds.classes == std::vector<std::string>{"cat", "dog"});
  REQUIRE(ds.size() == 3);
  CHECK(ds.items[0].path == d / "cat/a.avi");
  CHECK(ds.items[2].label == 1);
  fs::create_directories(d / "emu");
  const std::string e = error_of([&] { load_folder(d.str()); });
  CHECK(e.find("emu") != std::string::npos);
  CHECK(e.find("empty") != std::string::npos);

  write_text(d / "list.csv", "path,label\ncat/a.avi,cat\n/abs/x.mp4,bird\n");
  const Dataset c = load_csv(d.str(), d / "list.csv");
  CHECK(c.classes == std::vector<std::string>{"bird", "cat"});
  REQUIRE(c.size() == 2);
  CHECK(c.items[0].path == d / "cat/a.avi");
  CHECK(c.items[1].path == "/abs/x.mp4");
  CHECK(c.items[1].label == 0);
  write_text(d / "bad.csv", "cat/a.avi,cat\ncat/b.mp4\n");
  CHECK(error_of([&] { load_csv(d.str(), d / "bad.csv"); }).find("bad.csv:2") != std::string::npos);
  CHECK(error_of([&] { parse_layout("imagenet"); }).find("imagenet") != std::string::npos);
}

TEST_CASE("frame folders read with stb_image in name order; bad frames name the file") {
  ScratchDir d("frames");
  for (int t : {10, 2, 1})
    cv::imwrite(d / ("f" + std::to_string(t) + ".png"), pattern_frame(6, 8, 0, t));
  auto src = open_frame_folder(d.str());
  CHECK(src->frame_count() == 3);
  const auto frames = src->read({0, 1, 1, 2});
  REQUIRE(frames.size() == 4);
  for (int k = 0; k < 4; ++k) {
    const int t = std::vector<int>{1, 2, 2, 10}[k];
    CHECK(cv::norm(frames[k], pattern_frame(6, 8, 0, t), cv::NORM_INF) == 0.0);
  }
  write_text(d / "f20.png", "not a png");
  auto bad = open_frame_folder(d.str());
  const std::string e = error_of([&] { bad->read({3}); });
  CHECK(e.find("f20.png") != std::string::npos);
  ScratchDir empty("frames_empty");
  CHECK(error_of([&] { open_frame_folder(empty.str()); }).find("no .jpg or .png") !=
        std::string::npos);
}

TEST_CASE("store: frames round-trip exactly, in dataset order; a damaged store is reported") {
  ScratchDir d("store");
  const std::string path = d / "s.store";
  {
    StoreWriter w(path, {"a", "b"});
    w.add(1, "v1.avi", 1, 40, {pattern_frame(10, 14, 1, 0), pattern_frame(10, 14, 1, 1)});
    w.add(0, "v0.avi", 0, 3,
          {pattern_frame(12, 9, 0, 0), pattern_frame(12, 9, 0, 1), pattern_frame(12, 9, 0, 2)});
    CHECK(fs::exists(path + ".part"));
    CHECK_FALSE(fs::exists(path));
    w.finish();
  }
  CHECK_FALSE(fs::exists(path + ".part"));
  auto s = Store::open(path);
  CHECK(s->classes() == std::vector<std::string>{"a", "b"});
  REQUIRE(s->size() == 2);
  CHECK(s->video(0).path == "v0.avi");
  CHECK(s->video(0).frames == 3);
  CHECK(s->video(1).source_frames == 40);
  CHECK(s->video(1).label == 1);
  CHECK(s->video(0).offset % 64 == 0);
  CHECK(s->video(1).offset % 64 == 0);
  for (int t = 0; t < 3; ++t)
    CHECK(cv::norm(s->frame(0, t), pattern_frame(12, 9, 0, t), cv::NORM_INF) == 0.0);
  CHECK(cv::norm(s->frame(1, 1), pattern_frame(10, 14, 1, 1), cv::NORM_INF) == 0.0);
  const Dataset ds = Store::dataset(s);
  CHECK(ds.items[1].label == 1);
  CHECK(ds.store != nullptr);
  CHECK_THROWS_AS(s->frame(0, 3), Error);

  // Index entries whose offset or sizes would wrap around 64 bits: reported, never mapped.
  {
    std::ifstream in(path, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), {});
    uint64_t index_offset = 0;
    std::memcpy(&index_offset, bytes.data() + 16, 8);  // magic[8], version, reserved, index
    const size_t entry = index_offset + 4 + (4 + 1) + (4 + 1);  // class count, "a", "b"
    auto patch = [&](const std::string& name, uint64_t offset, uint32_t frames, uint32_t h,
                     uint32_t w) {
      std::string b = bytes;
      std::memcpy(&b[entry], &offset, 8);
      std::memcpy(&b[entry + 8], &frames, 4);
      std::memcpy(&b[entry + 12], &h, 4);
      std::memcpy(&b[entry + 16], &w, 4);
      write_text(d / name, b);
      return error_of([&] { Store::open(d / name); });
    };
    CHECK(patch("ok.store", 64, 1, 10, 14).empty());  // the patching itself is right
    CHECK(patch("wrap_sum.store", ~uint64_t{1}, 1, 1, 1).find("bad index entry") !=
          std::string::npos);
    CHECK(patch("wrap_product.store", 64, 1u << 24, 1u << 20, 1u << 20).find("bad index entry") !=
          std::string::npos);
  }

  // Cut short: the index is gone.
  fs::copy_file(path, d / "cut.store");
  fs::resize_file(d / "cut.store", fs::file_size(path) - 10);
  CHECK(error_of([&] { Store::open(d / "cut.store"); }).find("cut.store") != std::string::npos);
  write_text(d / "text.store", std::string(100, 'x'));
  CHECK(error_of([&] { Store::open(d / "text.store"); }).find("not a reel store") !=
        std::string::npos);
  CHECK(error_of([&] { Store::open(d / "none.store"); }).find("none.store") != std::string::npos);
  // An interrupted writer leaves nothing behind.
  {
    StoreWriter w(d / "half.store", {"a"});
    w.add(0, "v.avi", 0, 1, {pattern_frame(4, 4, 0, 0)});
  }
  CHECK_FALSE(fs::exists(d / "half.store"));
  CHECK_FALSE(fs::exists(d / "half.store.part"));
}

TEST_CASE("loader: batches depend on seed and epoch only, not on the number of workers") {
  ScratchDir d("loader");
  const Dataset ds = make_frame_folders(d, {5, 9, 2, 12, 7, 3, 8});
  LoaderOptions o;
  o.batch_size = 3;
  o.seed = 11;
  o.sampler.frames = 4;
  o.transform.resize = 0;
  o.transform.crop = 16;
  auto run = [&](int workers, int64_t epoch, LoaderOptions opt) {
    opt.workers = workers;
    Loader l(ds, opt);
    l.start_epoch(epoch);
    std::vector<Batch> out;
    Batch b;
    while (l.next(b)) out.push_back(b);
    return out;
  };
  const auto one = run(1, 0, o), two = run(2, 0, o), three = run(3, 0, o);
  REQUIRE(one.size() == 3);
  CHECK(one[2].labels.size() == 1);  // 7 clips: 3 + 3 + 1
  for (const auto* other : {&two, &three}) {
    REQUIRE(other->size() == one.size());
    for (size_t i = 0; i < one.size(); ++i) {
      CHECK((*other)[i].videos == one[i].videos);
      CHECK((*other)[i].lengths == one[i].lengths);
      CHECK((*other)[i].labels == one[i].labels);
      CHECK((*other)[i].clips.to_vector() == one[i].clips.to_vector());
    }
  }
  CHECK(one[0].clips.shape() == Shape{3, 4, 3, 16, 16});
  // Every video once per epoch, labels from the dataset, true lengths for the short ones.
  std::vector<int64_t> seen;
  for (const auto& b : one)
    for (size_t k = 0; k < b.videos.size(); ++k) {
      seen.push_back(b.videos[k]);
      CHECK(b.labels[k] == ds.items[b.videos[k]].label);
      const int64_t n = open_frame_folder(ds.items[b.videos[k]].path)->frame_count();
      CHECK(b.lengths[k] == std::min<int64_t>(4, n));
    }
  std::sort(seen.begin(), seen.end());
  CHECK(seen == std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6});
  // Another epoch: another order (and other random crops).
  const auto next_epoch = run(2, 1, o);
  bool differs = false;
  for (size_t i = 0; i < one.size(); ++i) differs |= next_epoch[i].videos != one[i].videos;
  CHECK(differs);
  // drop_last, evaluation with K clips one after another.
  LoaderOptions e = o;
  e.drop_last = true;
  CHECK(run(2, 0, e).size() == 2);
  e.drop_last = false;
  e.train = false;
  e.shuffle = false;
  e.sampler.clips_per_video = 2;
  const auto ev = run(2, 0, e);
  REQUIRE(ev.size() == 5);  // 14 clips
  CHECK(ev[0].videos == std::vector<int64_t>{0, 0, 1});
  CHECK(ev[0].clip_indices == std::vector<int>{0, 1, 0});
  // Evaluation is deterministic across epochs.
  const auto ev2 = run(1, 5, e);
  CHECK(ev2[1].clips.to_vector() == ev[1].clips.to_vector());
}

TEST_CASE("loader: the prefetch queue is bounded") {
  ScratchDir d("loader_bounded");
  const Dataset ds = make_frame_folders(d, std::vector<int>(12, 2));
  LoaderOptions o;
  o.batch_size = 2;
  o.workers = 2;
  o.prefetch = 2;
  o.sampler.frames = 2;
  o.transform.resize = 0;
  o.transform.crop = 8;
  Loader l(ds, o);
  // Waits until the workers have taken up `n` clips (they prefetch), then gives them time to
  // run further ahead, which they must not.
  auto settle = [&](int64_t n) {
    for (int i = 0; i < 4000 && l.clips_started() < n; ++i)  // up to 20 s on a loaded machine
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    return l.clips_started();
  };
  cv::setNumThreads(2);
  l.start_epoch(0);
  CHECK(settle(4) == 4);            // 2 batches of 2
  CHECK(cv::getNumThreads() == 1);  // the workers run OpenCV on their own thread only
  Batch b;
  REQUIRE(l.next(b));
  CHECK(settle(6) == 6);
  int batches = 1;
  while (l.next(b)) ++batches;
  CHECK(batches == 6);
  CHECK(l.clips_started() == 12);
}

TEST_CASE("loader: batches go to the device asked for") {
  ScratchDir d("loader_device");
  const Dataset ds = make_frame_folders(d, {3, 3});
  LoaderOptions o;
  o.batch_size = 2;
  o.workers = 1;
  o.sampler.frames = 2;
  o.transform.resize = 0;
  o.transform.crop = 8;
  o.device = Device::cuda(0);
  if (!cuda::available()) {
    CHECK(error_of([&] { Loader l(ds, o); }).find("cuda") != std::string::npos);
    return;
  }
  Loader l(ds, o);
  l.start_epoch(0);
  Batch b;
  REQUIRE(l.next(b));
  CHECK(b.clips.device() == Device::cuda(0));
  o.device = Device::cpu();
  Loader host(ds, o);
  host.start_epoch(0);
  Batch h;
  REQUIRE(host.next(h));
  CHECK(b.clips.to_vector() == h.clips.to_vector());
}

TEST_CASE("loader: the pixels of a clip are the sampled frames, transformed") {
  ScratchDir d("loader_pixels");
  const Dataset ds = make_frame_folders(d, {8});
  LoaderOptions o;
  o.batch_size = 1;
  o.workers = 1;
  o.train = false;
  o.shuffle = false;
  o.sampler.frames = 4;  // segment centres of 8 frames: 1, 3, 5, 7
  o.transform.resize = 0;
  o.transform.crop = 20;  // from 24 x 30, centred: y0 = 2, x0 = 5
  o.transform.mean = {0.0f, 0.0f, 0.0f};
  o.transform.std = {1.0f, 1.0f, 1.0f};
  Loader l(ds, o);
  l.start_epoch(0);
  Batch b;
  REQUIRE(l.next(b));
  const int ts[4] = {1, 3, 5, 7};
  for (int k = 0; k < 4; ++k) {
    const cv::Mat f = pattern_frame(24, 30, 0, ts[k]);
    for (int c = 0; c < 3; ++c) {
      const uint8_t v = f.at<cv::Vec3b>(2 + 7, 5 + 3)[2 - c];
      CHECK(b.clips.at({0, k, c, 7, 3}) == doctest::Approx(v / 255.0f));
    }
  }
  CHECK_FALSE(l.next(b));
}

TEST_CASE("loader: bad videos are skipped (logged once, counted) or fail with the name") {
  ScratchDir d("loader_bad");
  Dataset ds = make_frame_folders(d, {4, 4, 4, 4});
  ds.items.push_back({d / "a/missing.avi", 0});
  write_text(d / "b/garbage.mp4", "this is not a video at all");
  ds.items.push_back({d / "b/garbage.mp4", 1});
  LoaderOptions o;
  o.batch_size = 2;
  o.workers = 2;
  o.sampler.frames = 2;
  o.transform.resize = 0;
  o.transform.crop = 8;
  std::ostringstream log;
  o.log = &log;
  Loader l(ds, o);
  for (int epoch = 0; epoch < 2; ++epoch) {
    l.start_epoch(epoch);
    Batch b;
    int64_t clips = 0;
    while (l.next(b)) {
      clips += static_cast<int64_t>(b.labels.size());
      CHECK(b.clips.size(0) == static_cast<int64_t>(b.labels.size()));
      for (const auto& p : b.paths) CHECK(p.find("vid") != std::string::npos);
    }
    CHECK(clips == 4);
    const EpochSummary s = l.summary();
    CHECK(s.clips == 4);
    CHECK(s.bad.size() == 2);
  }
  const std::string text = log.str();
  CHECK(std::count(text.begin(), text.end(), '\n') == 2);  // each file once over two epochs
  CHECK(text.find("missing.avi") != std::string::npos);
  CHECK(text.find("garbage.mp4") != std::string::npos);

  o.on_bad = OnBadVideo::Fail;
  o.shuffle = false;
  Loader f(ds, o);
  f.start_epoch(0);
  Batch b;
  std::string e;
  try {
    while (f.next(b)) {
    }
  } catch (const Error& err) {
    e = err.what();
  }
  CHECK(e.find("missing.avi") != std::string::npos);
  CHECK_FALSE(f.next(b));
}

TEST_CASE("loader over a store reads the stored frames") {
  ScratchDir d("loader_store");
  const Dataset ds = make_frame_folders(d, {6, 3});
  PrepareOptions po;
  po.frames = 4;
  po.size = 24;
  po.workers = 2;
  const PrepareSummary sum = prepare_store(ds, d / "s.store", po);
  CHECK(sum.written == 2);
  CHECK(sum.frames == 4 + 3);
  auto store = Store::open(d / "s.store");
  CHECK(store->video(0).frames == 4);
  CHECK(store->video(1).frames == 3);
  CHECK(store->video(1).source_frames == 3);
  CHECK(store->video(0).width == 30);  // 24 x 30 stays: shorter side already 24
  // Segment centres of 6 frames: 0, 2, 3, 5.
  CHECK(cv::norm(store->frame(0, 1), pattern_frame(24, 30, 0, 2), cv::NORM_INF) == 0.0);
  CHECK(cv::norm(store->frame(0, 3), pattern_frame(24, 30, 0, 5), cv::NORM_INF) == 0.0);
  LoaderOptions o;
  o.batch_size = 2;
  o.workers = 2;
  o.train = false;
  o.shuffle = false;
  o.sampler.frames = 4;
  o.transform.resize = 0;
  o.transform.crop = 16;
  Loader from_store(Store::dataset(store), o);
  from_store.start_epoch(0);
  Batch b;
  REQUIRE(from_store.next(b));
  CHECK(b.lengths == std::vector<int64_t>{4, 3});
  CHECK(b.labels == std::vector<int64_t>{0, 1});
  // The short video is the same whether decoded or read from the store.
  Loader from_files(ds, o);
  from_files.start_epoch(0);
  Batch f;
  REQUIRE(from_files.next(f));
  CHECK(f.clips.slice(0, 1, 2).to_vector() == b.clips.slice(0, 1, 2).to_vector());
}

TEST_CASE("moving digits in memory: every test clip's time-reversed twin has another label") {
  DigitImages imgs;
  Generator g(4);
  for (int i = 0; i < 30; ++i) {
    cv::Mat m(20, 20, CV_8UC1, cv::Scalar(0));
    cv::circle(m, cv::Point(4 + i % 12, 10), 3 + i % 4, cv::Scalar(255), -1);
    imgs.images.push_back(m);
    imgs.digits.push_back(i % 10);
  }
  DigitsOptions o;
  o.frames = 6;
  o.size = 32;
  o.seed = 9;
  const DigitClips test = make_moving_digits(imgs, 16, true, o);
  REQUIRE(test.clips.shape() == Shape{16, 6, 1, 32, 32});
  // Made in pieces (as reel digits does, to bound memory): the same clips and labels.
  for (bool is_test : {true, false}) {
    const DigitClips whole = make_moving_digits(imgs, 12, is_test, o);
    const DigitClips a = make_moving_digits(imgs, 4, is_test, o, 0);
    const DigitClips b = make_moving_digits(imgs, 8, is_test, o, 4);
    CHECK(concat({a.clips, b.clips}, 0).to_vector() == whole.clips.to_vector());
    std::vector<int64_t> labels = a.labels;
    labels.insert(labels.end(), b.labels.begin(), b.labels.end());
    CHECK(labels == whole.labels);
  }
  CHECK_THROWS_AS(make_moving_digits(imgs, 4, true, o, 1), Error);  // twins start even
  const std::vector<float> v = test.clips.to_vector();
  const size_t frame = 32 * 32, clip = 6 * frame;
  for (int i = 0; i < 16; i += 2) {
    CHECK(test.labels[i] != test.labels[i + 1]);
    CHECK((test.labels[i] ^ 1) == test.labels[i + 1]);
    for (int t = 0; t < 6; ++t)
      REQUIRE(std::equal(v.begin() + i * clip + t * frame, v.begin() + i * clip + (t + 1) * frame,
                         v.begin() + (i + 1) * clip + (5 - t) * frame));
    // The digit really moves: first and last frames differ.
    CHECK_FALSE(std::equal(v.begin() + i * clip, v.begin() + i * clip + frame,
                           v.begin() + i * clip + 5 * frame));
  }
  // The classes mean what they say: MoveDown's centre of mass goes down, ZoomIn's ink grows.
  auto frame_at = [&](const DigitClips& c, int i, int t) {
    return cv::Mat(32, 32, CV_32F, c.clips.data() + (i * 6 + t) * 32 * 32);
  };
  for (int i = 0; i < 16; ++i) {
    const cv::Moments first = cv::moments(frame_at(test, i, 0));
    const cv::Moments last = cv::moments(frame_at(test, i, 5));
    const double y_first = first.m01 / first.m00, y_last = last.m01 / last.m00;
    INFO("clip " << i << " label " << test.labels[i]);
    switch (test.labels[i]) {
      case 0:
        CHECK(y_last > y_first + 4);
        break;  // MoveDown
      case 1:
        CHECK(y_last < y_first - 4);
        break;  // MoveUp
      case 2:
        CHECK(last.m00 > 1.5 * first.m00);
        break;  // ZoomIn
      case 3:
        CHECK(last.m00 < first.m00 / 1.5);
        break;  // ZoomOut
      default:
        FAIL("label " << test.labels[i]);
    }
  }
  CHECK(digit_classes() == std::vector<std::string>{"MoveDown", "MoveUp", "ZoomIn", "ZoomOut"});
  std::vector<int> per_class(4, 0);
  for (int64_t l : test.labels) per_class[l]++;
  for (int c = 0; c < 4; ++c) CHECK(per_class[c] == 4);
  // Seeded: same seed, same clips; another seed, other clips.
  CHECK(make_moving_digits(imgs, 16, true, o).clips.to_vector() == v);
  o.seed = 10;
  CHECK(make_moving_digits(imgs, 16, true, o).clips.to_vector() != v);
  const DigitClips train = make_moving_digits(imgs, 8, false, o);
  CHECK(train.labels == std::vector<int64_t>{0, 1, 2, 3, 0, 1, 2, 3});
  CHECK_THROWS_AS(make_moving_digits(imgs, 3, true, o), Error);
}

namespace {
// A source whose container states `stated` frames but holds `real`; frame i is a 1x1 image of
// value i. Counts the passes over the stream.
class WrongCountSource : public FrameSource {
 public:
  WrongCountSource(int64_t stated, int64_t real) : stated_(stated), real_(real) {}
  int64_t frame_count() const override { return stated_; }
  double fps() const override { return 25.0; }
  const std::string& path() const override { return path_; }
  std::vector<cv::Mat> read(const std::vector<int64_t>& indices, int64_t* true_count) override {
    ++reads;
    std::vector<cv::Mat> out;
    for (int64_t i : indices) {
      if (i >= real_) {
        if (true_count) *true_count = real_;
        break;
      }
      out.emplace_back(1, 1, CV_8UC3, cv::Scalar::all(static_cast<double>(i)));
    }
    return out;
  }
  int reads = 0;

 private:
  int64_t stated_, real_;
  std::string path_ = "wrong_count.avi";
};
}  // namespace

TEST_CASE("decode_frames: the frames chosen do not depend on a count learnt earlier") {
  // 200 frames stated, 190 real: some training draws of the last segment fall past the end.
  SamplerOptions so;
  so.frames = 8;
  int retried = 0;
  for (uint64_t seed = 0; seed < 60; ++seed) {
    const Generator base(seed);
    auto pick = [&](int64_t n) {
      Generator g = base;
      return sample_clip(n, so, true, 0, g).frames;
    };
    WrongCountSource fresh(200, 190), hinted(200, 190);
    int64_t n_fresh = 0, true_fresh = 0, n_hinted = 0;
    const auto a = decode_frames(fresh, pick, 0, &n_fresh, &true_fresh);
    const auto b = decode_frames(hinted, pick, 190, &n_hinted);
    INFO("seed " << seed);
    CHECK(n_fresh == n_hinted);
    REQUIRE(a.size() == b.size());
    for (size_t k = 0; k < a.size(); ++k)
      CHECK(a[k].at<cv::Vec3b>(0, 0) == b[k].at<cv::Vec3b>(0, 0));
    CHECK(hinted.reads == 1);  // the hint spares the second pass
    if (fresh.reads == 2) {
      ++retried;
      CHECK(true_fresh == 190);
      CHECK(n_fresh == 190);
    } else {
      CHECK(n_fresh == 200);  // every drawn frame existed: the stated count stands
    }
  }
  CHECK(retried > 0);
  CHECK(retried < 60);
}

TEST_CASE("bad loader options and a Kinetics header with a repeated column are named") {
  ScratchDir d("bad_options");
  const Dataset ds = make_frame_folders(d, {3});
  LoaderOptions o;
  o.transform.resize = 16;
  o.transform.crop = 32;
  const std::string msg = error_of([&] { Loader l(ds, o); });
  CHECK(msg.find("crop 32") != std::string::npos);
  CHECK(msg.find("resize 16") != std::string::npos);
  write_text(d / "k.csv",
             "label,youtube_id,time_start,time_end,split,split\nabseiling,abc,0,10,train\n");
  const std::string k = error_of([&] { load_kinetics(d.str(), d / "k.csv", "train"); });
  CHECK(k.find(":1:") != std::string::npos);
  CHECK(k.find("'split' appears twice") != std::string::npos);
}

namespace {

// An ActivityNet 1.3-style annotation file over frame folders (25 fps) in d: v_a (100 frames,
// 4 s), b (50 frames, found without the v_ prefix) and v_short (20 frames, although the file
// says 10 s); "gone" has no video; "t" is a testing video (no annotations).
void write_activitynet(const ScratchDir& d, const std::string& extra_validation = "") {
  const std::pair<std::string, int> videos[] = {{"v_a", 100}, {"b", 50}, {"v_short", 20}};
  for (const auto& [name, n] : videos) {
    fs::create_directories(d / name);
    for (int t = 0; t < n; ++t)
      cv::imwrite(d / name + "/f" + std::to_string(t) + ".png", pattern_frame(24, 30, 0, t));
  }
  write_text(d / "anet.json", R"({"version": "VERSION 1.3", "database": {
    "a": {"subset": "training", "duration": 4.0, "annotations": [
      {"segment": [1.0, 1.4], "label": "Long jump"},
      {"segment": [3.0, 4.5], "label": "Surfing"},
      {"segment": [4.0, 5.0], "label": "Surfing"}]},
    "b": {"subset": "validation", "duration": 2.0, "annotations": [
      {"segment": [0.2, 1.8], "label": "Surfing"}]},
    "short": {"subset": "validation", "duration": 10.0, "annotations": [
      {"segment": [0.0, 0.4], "label": "Long jump"},
      {"segment": [2.0, 3.0], "label": "Long jump"}]},
    "gone": {"subset": "training", "duration": 30.0, "annotations": [
      {"segment": [5, 9], "label": "Long jump"}]},
    "t": {"subset": "testing", "duration": 12.0, "annotations": []})" +
                                  extra_validation + R"(}})");
}

}  // namespace

TEST_CASE("ActivityNet: one item per segment, classes from training, videos found or named") {
  ScratchDir d("activitynet");
  write_activitynet(d);
  const Dataset train = load_activitynet(d.str(), d / "anet.json", "training");
  CHECK(train.classes == std::vector<std::string>{"Long jump", "Surfing"});
  REQUIRE(train.size() == 3);  // a's [4, 5] starts at its duration: left out
  CHECK(train.items[0].path == d / "v_a");
  CHECK(train.items[0].label == 0);
  CHECK(train.items[0].start == 1.0);
  CHECK(train.items[0].end == doctest::Approx(1.4));
  CHECK(train.items[1].end == 4.0);              // [3, 4.5] cut at the duration
  CHECK(train.items[2].path == d / "v_gone.*");  // missing: the trainer names it
  REQUIRE(train.notes.size() == 2);
  CHECK(train.notes[0].find("cut at the video's duration: 1 segment (a)") != std::string::npos);
  CHECK(train.notes[1].find("left out, starting at or past the video's duration: 1 segment (a)") !=
        std::string::npos);
  DatasetOptions o;
  o.layout = parse_layout("activitynet");
  o.root = d.str();
  o.train = false;  // the only .json in the root, its validation subset
  const Dataset val = load_dataset(o);
  CHECK(val.classes == train.classes);
  REQUIRE(val.size() == 3);
  CHECK(val.items[0].path == d / "b");
  CHECK(val.items[0].label == 1);
  CHECK(val.items[2].path == d / "v_short");

  // Evaluation clips lie inside their segment: frame t's red value is t. a's [1.0, 1.4] at 25
  // fps is frames 25..34; four segment centres of those ten frames.
  LoaderOptions lo;
  lo.batch_size = 4;
  lo.workers = 1;
  lo.train = false;
  lo.shuffle = false;
  lo.sampler.frames = 4;
  lo.transform.resize = 0;
  lo.transform.crop = 20;
  lo.transform.mean = {0.0f, 0.0f, 0.0f};
  lo.transform.std = {1.0f, 1.0f, 1.0f};
  std::ostringstream log;
  lo.log = &log;
  Dataset found = train;
  found.items.pop_back();  // the missing video
  auto frame_of = [](const Batch& b, int64_t i, int64_t k) {
    return static_cast<int>(std::lround(b.clips.at({i, k, 0, 0, 0}) * 255.0f));
  };
  {
    Loader l(found, lo);
    l.start_epoch(0);
    Batch b;
    REQUIRE(l.next(b));
    REQUIRE(b.labels.size() == 2);
    CHECK(std::vector<int>{frame_of(b, 0, 0), frame_of(b, 0, 1), frame_of(b, 0, 2),
                           frame_of(b, 0, 3)} == std::vector<int>{26, 28, 31, 33});
    CHECK(b.lengths[0] == 4);
    for (int k = 0; k < 4; ++k) CHECK(frame_of(b, 1, k) >= 75);  // [3, 4] s: frames 75..99
  }
  // Training clips too: random frames, every one inside the segment, over several epochs.
  lo.train = true;
  lo.shuffle = true;
  lo.transform.flip = false;
  Loader l(found, lo);
  for (int epoch = 0; epoch < 5; ++epoch) {
    l.start_epoch(epoch);
    Batch b;
    while (l.next(b))
      for (size_t i = 0; i < b.labels.size(); ++i)
        for (int k = 0; k < 4; ++k) {
          const int t = frame_of(b, static_cast<int64_t>(i), k);
          if (b.labels[i] == 0)
            CHECK((t >= 25 && t < 35));
          else
            CHECK(t >= 75);
        }
  }
  // A segment past the real end of its video (short: 20 frames, 0.8 s): named, skipped.
  lo.train = false;
  Loader v(val, lo);
  v.start_epoch(0);
  Batch b;
  int64_t clips = 0;
  while (v.next(b)) clips += static_cast<int64_t>(b.labels.size());
  CHECK(clips == 2);
  REQUIRE(v.summary().bad.size() == 1);
  CHECK(log.str().find("v_short") != std::string::npos);
  CHECK(log.str().find("starts past the video's end (20 frames at 25 fps)") != std::string::npos);
}

TEST_CASE("ActivityNet: malformed annotations name the video and the key") {
  ScratchDir d("activitynet_bad");
  write_activitynet(d, R"(, "new": {"subset": "validation", "duration": 5.0, "annotations": [
      {"segment": [1, 2], "label": "Ballet"}]})");
  std::string e = error_of([&] { load_activitynet(d.str(), d / "anet.json", "validation"); });
  CHECK_MESSAGE(e.find("validation video \"new\" has the label \"Ballet\", which no training "
                       "video has") != std::string::npos,
                e);
  CHECK(load_activitynet(d.str(), d / "anet.json", "training").size() == 3);  // still fine
  const std::pair<std::string, std::vector<std::string>> cases[] = {
      {R"({"database": {"x": {"subset": "training", "duration": 5, "annotations": [
          {"segment": [3, 2], "label": "Surfing"}]}}})",
       {"video \"x\"", "\"annotations\"[0]", "[3, 2] ends before it starts"}},
      {R"({"database": {"x": {"subset": "training", "duration": 5, "annotations": [
          {"segment": [1, 2], "label": "Surfing"}, {"segment": "1-2", "label": "Surfing"}]}}})",
       {"video \"x\"", "\"annotations\"[1]", "\"segment\" must be [start, end]", "\"1-2\""}},
      {R"({"database": {"x": {"subset": "training", "annotations": []}}})",
       {"video \"x\"", "\"duration\""}},
      {R"({"database": {"x": {"subset": "training", "duration": 5, "annotations": [
          {"segment": [1, 2]}]}}})",
       {"video \"x\"", "\"label\" must be a non-empty string"}},
      {R"({"taxonomy": []})", {"\"database\""}},
      {R"({"database": {"x": )", {"not valid JSON"}},
  };
  for (const auto& [text, says] : cases) {
    write_text(d / "bad.json", text);
    e = error_of([&] { load_activitynet(d.str(), d / "bad.json", "training"); });
    INFO(e);
    CHECK(e.find("bad.json") != std::string::npos);
    for (const auto& s : says) CHECK(e.find(s) != std::string::npos);
  }
  e = error_of([&] { load_activitynet(d.str(), d / "anet.json", "testing"); });
  CHECK(e.find("unknown subset 'testing'") != std::string::npos);
}

TEST_CASE("loader shards: N ranks with batch b together see one loader's batches of N * b") {
  ScratchDir d("loader_shards");
  const Dataset ds = make_frame_folders(d, {5, 9, 2, 12, 7, 3, 8, 4, 6, 10, 11});
  LoaderOptions o;
  o.seed = 5;
  o.workers = 1;
  o.sampler.frames = 3;
  o.transform.resize = 0;
  o.transform.crop = 16;
  auto run = [&](LoaderOptions opt, int64_t epoch) {
    Loader l(ds, opt);
    l.start_epoch(epoch);
    std::vector<Batch> out;
    Batch b;
    while (l.next(b)) out.push_back(b);
    return out;
  };
  for (int64_t epoch : {0, 1}) {
    o.batch_size = 4;
    const auto whole = run(o, epoch);  // 11 clips: 4 + 4 + 3
    REQUIRE(whole.size() == 3);
    o.batch_size = 2;
    o.shards = 2;
    o.shard = 0;
    const auto r0 = run(o, epoch);
    o.shard = 1;
    const auto r1 = run(o, epoch);
    o.shards = 1;
    o.shard = 0;
    REQUIRE(r0.size() == 3);
    REQUIRE(r1.size() == 3);
    CHECK(r0[2].videos.size() == 1);  // the last global batch of 3: 1 + 2
    CHECK(r1[2].videos.size() == 2);
    for (size_t k = 0; k < 3; ++k) {
      std::vector<int64_t> both = r0[k].videos;
      both.insert(both.end(), r1[k].videos.begin(), r1[k].videos.end());
      CHECK(both == whole[k].videos);
      // The same random frames and crops per sample as the single loader's.
      std::vector<float> pixels = r0[k].clips.to_vector(), p1 = r1[k].clips.to_vector();
      pixels.insert(pixels.end(), p1.begin(), p1.end());
      CHECK(pixels == whole[k].clips.to_vector());
    }
  }
  // 3 ranks of batch 2 on 11 clips: one global batch of 6, then 5 clips split 1 + 2 + 2.
  o.batch_size = 2;
  o.shards = 3;
  o.shard = 0;
  const auto s0 = run(o, 0);
  REQUIRE(s0.size() == 2);
  CHECK(s0[1].videos.size() == 1);
  // 12 ranks of batch 1 on 11 clips: one rank would get nothing, so the 11 are left out.
  o.shards = 12;
  o.batch_size = 1;
  o.shard = 11;
  CHECK(run(o, 0).empty());
  o.shard = 12;
  CHECK(error_of([&] { Loader bad(ds, o); }).find("shard 12 of 12 does not exist") !=
        std::string::npos);
}
