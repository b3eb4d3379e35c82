#include "reel/data/video.h"

#include <stb_image.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <limits>
#include <mutex>

#include <opencv2/core/utils/logger.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/videoio.hpp>

#include "reel/core/error.h"

namespace fs = std::filesystem;

namespace reel::data {

void quiet_opencv() {
  static std::once_flag once;
  std::call_once(once, [] {
    cv::utils::logging::setLogLevel(cv::utils::logging::LOG_LEVEL_SILENT);
    // OpenCV reads these when a back end first loads: keep FFmpeg quiet and GStreamer out.
    setenv("OPENCV_FFMPEG_LOGLEVEL", "-8", 0);
    setenv("OPENCV_VIDEOIO_PRIORITY_GSTREAMER", "0", 0);
    // One decoding thread per video: the loader decodes several videos at once, one per
    // worker, and FFmpeg's own threads on top made 2 workers slower on 2 cores (measured with
    // bench_data: 50 clips/s with FFmpeg's threads, 65 without). Set the variable to override.
    setenv("OPENCV_FFMPEG_CAPTURE_OPTIONS", "threads;1", 0);
  });
}

bool natural_less(const std::string& a, const std::string& b) {
  size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    const bool da = std::isdigit(static_cast<unsigned char>(a[i]));
    const bool db = std::isdigit(static_cast<unsigned char>(b[j]));
    if (da && db) {
      size_t ie = i, je = j;
      while (ie < a.size() && std::isdigit(static_cast<unsigned char>(a[ie]))) ++ie;
      while (je < b.size() && std::isdigit(static_cast<unsigned char>(b[je]))) ++je;
      // Compare the runs as numbers without overflow: strip leading zeros, then length, then text.
      size_t is = i, js = j;
      while (is + 1 < ie && a[is] == '0') ++is;
      while (js + 1 < je && b[js] == '0') ++js;
      if (ie - is != je - js) return ie - is < je - js;
      const int c = a.compare(is, ie - is, b, js, je - js);
      if (c != 0) return c < 0;
      i = ie;
      j = je;
    } else {
      if (a[i] != b[j]) return a[i] < b[j];
      ++i;
      ++j;
    }
  }
  if (a.size() - i != b.size() - j) return a.size() - i < b.size() - j;
  return a < b;
}

namespace {

class VideoSource : public FrameSource {
 public:
  explicit VideoSource(std::string path) : path_(std::move(path)) {
    quiet_opencv();
    std::error_code ec;
    REEL_CHECK(fs::exists(path_, ec), "video '" << path_ << "': no such file");
    REEL_CHECK(!fs::is_directory(path_, ec), "video '" << path_ << "': is a folder");
    open();
    const double n = cap_.get(cv::CAP_PROP_FRAME_COUNT);
    count_ = n > 0 && n < 1e12 ? static_cast<int64_t>(n + 0.5) : 0;
    fps_ = cap_.get(cv::CAP_PROP_FPS);
    if (!(fps_ > 0 && fps_ < 1e4)) fps_ = 0.0;
  }

  int64_t frame_count() const override { return count_; }
  double fps() const override { return fps_; }
  const std::string& path() const override { return path_; }

  std::vector<cv::Mat> read(const std::vector<int64_t>& indices, int64_t* true_count) override {
    std::vector<cv::Mat> frames;
    if (indices.empty()) return frames;
    REEL_CHECK(std::is_sorted(indices.begin(), indices.end()) && indices.front() >= 0,
               "video '" << path_ << "': frame indices must be sorted and non-negative");
    // Sequential decoding from the start is exact; seeking is not, in several codecs.
    if (indices.front() < pos_) open();
    frames.reserve(indices.size());
    size_t k = 0;
    cv::Mat frame;
    while (k < indices.size()) {
      if (!cap_.grab()) {
        if (true_count) *true_count = pos_;
        break;
      }
      if (indices[k] == pos_) {
        REEL_CHECK(cap_.retrieve(frame) && !frame.empty(),
                   "video '" << path_ << "': frame " << pos_ << " could not be decoded");
        REEL_CHECK(frame.type() == CV_8UC3, "video '" << path_ << "': unexpected pixel format");
        frames.push_back(frame.clone());
        for (++k; k < indices.size() && indices[k] == pos_; ++k) frames.push_back(frames.back());
      }
      ++pos_;
    }
    return frames;
  }

 private:
  void open() {
    cap_.release();
    pos_ = 0;
    // Any exception inside OpenCV (a corrupt header) becomes our error naming the file.
    bool ok = false;
    try {
      ok = cap_.open(path_, cv::CAP_FFMPEG);
    } catch (const cv::Exception& e) {
      throw Error("video '" + path_ + "': " + e.what());
    }
    REEL_CHECK(ok && cap_.isOpened(), "video '"
                                          << path_
                                          << "': not a video that FFmpeg can open (unknown format, "
                                             "truncated or damaged)");
  }

  std::string path_;
  cv::VideoCapture cap_;
  int64_t count_ = 0;
  int64_t pos_ = 0;  // index of the frame the next grab() returns
  double fps_ = 0.0;
};

bool is_frame_file(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return ext == ".jpg" || ext == ".jpeg" || ext == ".png";
}

class FolderSource : public FrameSource {
 public:
  FolderSource(std::string path, double fps) : path_(std::move(path)), fps_(fps) {
    std::error_code ec;
    REEL_CHECK(fs::is_directory(path_, ec), "frame folder '" << path_ << "': no such folder");
    for (const auto& e : fs::directory_iterator(path_, ec))
      if (e.is_regular_file() && is_frame_file(e.path())) files_.push_back(e.path().string());
    REEL_CHECK(!ec, "frame folder '" << path_ << "': " << ec.message());
    REEL_CHECK(!files_.empty(), "frame folder '" << path_ << "': holds no .jpg or .png frame");
    std::sort(files_.begin(), files_.end(), natural_less);
  }

  int64_t frame_count() const override { return static_cast<int64_t>(files_.size()); }
  double fps() const override { return fps_; }
  const std::string& path() const override { return path_; }

  std::vector<cv::Mat> read(const std::vector<int64_t>& indices, int64_t* true_count) override {
    std::vector<cv::Mat> frames;
    REEL_CHECK(std::is_sorted(indices.begin(), indices.end()),
               "frame folder '" << path_ << "': frame indices must be sorted");
    for (size_t k = 0; k < indices.size(); ++k) {
      const int64_t i = indices[k];
      REEL_CHECK(i >= 0, "frame folder '" << path_ << "': negative frame index");
      if (i >= frame_count()) {
        if (true_count) *true_count = frame_count();
        break;
      }
      if (k > 0 && indices[k - 1] == i) {
        frames.push_back(frames.back());
        continue;
      }
      int w = 0, h = 0, c = 0;
      unsigned char* rgb = stbi_load(files_[i].c_str(), &w, &h, &c, 3);
      REEL_CHECK(rgb != nullptr, "frame '" << files_[i] << "': " << stbi_failure_reason());
      cv::Mat bgr;
      cv::cvtColor(cv::Mat(h, w, CV_8UC3, rgb), bgr, cv::COLOR_RGB2BGR);
      stbi_image_free(rgb);
      frames.push_back(bgr);
    }
    return frames;
  }

 private:
  std::string path_;
  double fps_;
  std::vector<std::string> files_;  // sorted by natural_less
};

}  // namespace

std::unique_ptr<FrameSource> open_video(const std::string& path) {
  return std::make_unique<VideoSource>(path);
}

std::unique_ptr<FrameSource> open_frame_folder(const std::string& path, double fps) {
  return std::make_unique<FolderSource>(path, fps);
}

std::unique_ptr<FrameSource> open_source(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) return open_frame_folder(path);
  return open_video(path);
}

std::string naming(const std::string& path, const std::string& msg) {
  if (msg.find(path) != std::string::npos) return msg;
  return "'" + path + "': " + msg;
}

OnBadVideo parse_on_bad_video(const std::string& name) {
  if (name == "skip") return OnBadVideo::Skip;
  if (name == "fail") return OnBadVideo::Fail;
  throw Error("unknown --on-bad-video policy '" + name + "' (expected skip or fail)");
}

std::vector<cv::Mat> decode_frames(FrameSource& source,
                                   const std::function<std::vector<int64_t>(int64_t)>& pick,
                                   int64_t known_true_count, int64_t* count_out,
                                   int64_t* true_count_out) {
  int64_t n = source.frame_count();
  if (n <= 0) {  // no stated count: the true one, known or counted
    n = known_true_count > 0 ? known_true_count : count_frames(source);
    if (true_count_out) *true_count_out = n;
  }
  REEL_CHECK(n > 0, "video '" << source.path() << "': has no frame");
  std::vector<int64_t> want = pick(n);
  if (known_true_count > 0 && known_true_count < n) {
    // Known to end early: ask again exactly when decoding would have found that out.
    for (int64_t i : want)
      if (i >= known_true_count) {
        n = known_true_count;
        want = pick(n);
        break;
      }
  }
  for (int attempt = 0;; ++attempt) {
    std::vector<int64_t> uniq;
    for (int64_t i : want) {
      REEL_CHECK(i < n, "decode_frames: frame " << i << " of " << n << " asked for");
      if (i >= 0) uniq.push_back(i);
    }
    std::sort(uniq.begin(), uniq.end());
    uniq.erase(std::unique(uniq.begin(), uniq.end()), uniq.end());
    int64_t true_count = n;
    std::vector<cv::Mat> got = source.read(uniq, &true_count);
    if (got.size() == uniq.size()) {
      std::vector<cv::Mat> out(want.size());
      for (size_t k = 0; k < want.size(); ++k) {
        if (want[k] < 0) continue;
        out[k] = got[std::lower_bound(uniq.begin(), uniq.end(), want[k]) - uniq.begin()];
      }
      if (count_out) *count_out = n;
      return out;
    }
    // The stated count was too high: the stream ended at true_count.
    REEL_CHECK(true_count > 0, "video '" << source.path() << "': has no frame (the container "
                                         << "states " << n << ")");
    REEL_CHECK(attempt == 0 && true_count < n,
               "video '" << source.path() << "': decoding stopped at frame " << true_count);
    n = true_count;
    if (true_count_out) *true_count_out = n;
    want = pick(n);
  }
}

int64_t count_frames(FrameSource& source) {
  int64_t n = source.frame_count();
  // Reading towards an index no video reaches stops at the true end.
  source.read({std::numeric_limits<int64_t>::max()}, &n);
  return n;
}

}  // namespace reel::data
