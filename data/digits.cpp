#include "reel/data/digits.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/videoio.hpp>

#include "reel/core/error.h"
#include "reel/core/random.h"
#include "reel/data/loader.h"
#include "reel/data/video.h"

namespace fs = std::filesystem;

namespace reel::data {

DigitImages load_digits_png(const std::string& path) {
  quiet_opencv();
  const cv::Mat sheet = cv::imread(path, cv::IMREAD_GRAYSCALE);
  REEL_CHECK(!sheet.empty(), "digits '" << path << "': cannot read the image");
  REEL_CHECK(sheet.cols == 2000 && sheet.rows == 1000,
             "digits '" << path << "': expected OpenCV's 2000x1000 digits.png, got " << sheet.cols
                        << "x" << sheet.rows);
  DigitImages d;
  for (int row = 0; row < 50; ++row)
    for (int col = 0; col < 100; ++col) {
      d.images.push_back(sheet(cv::Rect(col * 20, row * 20, 20, 20)).clone());
      d.digits.push_back(row / 5);
    }
  return d;
}

std::string find_digits_png() {
  std::vector<std::string> places;
  if (const char* p = std::getenv("REEL_DIGITS_PNG")) places.push_back(p);
  if (const char* p = std::getenv("REEL_MEDIA_CACHE"))
    places.push_back((fs::path(p) / "digits.png").string());
  if (const char* p = std::getenv("HOME"))
    places.push_back((fs::path(p) / ".cache/reel-media/digits.png").string());
  places.push_back("/usr/share/doc/opencv-doc/examples/data/digits.png");
  std::string tried;
  for (const auto& p : places) {
    std::error_code ec;
    if (fs::is_regular_file(p, ec)) return p;
    tried += (tried.empty() ? "" : ", ") + p;
  }
  throw Error("digits.png not found (tried " + tried +
              "); run scripts/fetch_test_media.sh or pass --digits-png");
}

const std::vector<std::string>& digit_classes() {
  static const std::vector<std::string> names = {"MoveDown", "MoveUp", "ZoomIn", "ZoomOut"};
  return names;
}

namespace {

// One clip's path. The digit's centre and side change linearly from frame 0 to frame T - 1.
struct Motion {
  int image = 0;
  double x0 = 0, y0 = 0, side0 = 0;  // centre and side in the first frame
  double x1 = 0, y1 = 0, side1 = 0;  // and in the last
};

// Class c and c ^ 1 run the same paths in opposite directions, drawn from mirrored ranges, so
// that a clip played backwards is a typical clip of the other class. None of the classes moves
// sideways: a horizontal flip (the loader's augmentation) keeps every label right.
Motion draw_motion(int label, int S, int d, const std::vector<int>& pool, Generator& g) {
  Motion m;
  m.image = pool[g.next_u64() % pool.size()];
  const bool forward = label % 2 == 0;
  if (label < 2) {  // MoveDown / MoveUp: side d, the centre travels at least half the room
    const double room = S - d, min_travel = 0.5 * room;
    const double p = g.uniform() * (room - min_travel);
    const double q = p + min_travel + g.uniform() * (room - min_travel - p);
    m.x0 = m.x1 = d / 2.0 + g.uniform() * room;
    m.y0 = d / 2.0 + (forward ? p : q);
    m.y1 = d / 2.0 + (forward ? q : p);
    m.side0 = m.side1 = d;
  } else {  // ZoomIn / ZoomOut: from about a third of the frame to about four fifths
    const double small = S * (0.3 + 0.1 * g.uniform()), large = S * (0.7 + 0.15 * g.uniform());
    const double room = S - large;
    m.x0 = m.x1 = large / 2.0 + g.uniform() * room;
    m.y0 = m.y1 = large / 2.0 + g.uniform() * room;
    m.side0 = forward ? small : large;
    m.side1 = forward ? large : small;
  }
  return m;
}

// frame: [S, S] float, zeroed; the digit scaled to side x side (OpenCV) and pasted centred at
// (cx, cy), rounded to whole pixels.
void paste(const cv::Mat& digit, double cx, double cy, double side, float* frame, int S) {
  const int n = std::max(1, static_cast<int>(std::lround(side)));
  cv::Mat scaled;
  if (digit.rows == n && digit.cols == n)
    scaled = digit;
  else
    cv::resize(digit, scaled, cv::Size(n, n), 0, 0,
               n < digit.rows ? cv::INTER_AREA : cv::INTER_LINEAR);
  const int x0 = static_cast<int>(std::lround(cx - n / 2.0));
  const int y0 = static_cast<int>(std::lround(cy - n / 2.0));
  for (int r = 0; r < n; ++r)
    for (int c = 0; c < n; ++c) {
      const int yy = y0 + r, xx = x0 + c;
      if (yy < 0 || yy >= S || xx < 0 || xx >= S) continue;
      float& v = frame[yy * S + xx];
      v = std::max(v, scaled.at<uint8_t>(r, c) / 255.0f);
    }
}

}  // namespace

DigitClips make_moving_digits(const DigitImages& digits, int count, bool test,
                              const DigitsOptions& o, int first) {
  REEL_CHECK(!digits.images.empty(), "moving digits: no digit images");
  REEL_CHECK(count >= 0 && first >= 0 && o.frames >= 2 && o.size >= 8,
             "moving digits: need count >= 0, first >= 0, frames >= 2 and size >= 8");
  REEL_CHECK(!test || (count % 2 == 0 && first % 2 == 0),
             "moving digits: the test count and first clip must be even (twins)");
  REEL_CHECK(o.train_share > 0.0 && o.train_share < 1.0, "moving digits: train_share in (0, 1)");
  const int S = o.size, T = o.frames;
  const int d = std::min(20, std::max(4, S / 2));  // digit side when moving
  // Training digits: the first train_share of each digit's images; test digits: the rest.
  std::vector<int> pool;
  {
    std::vector<std::vector<int>> by_digit(10);
    for (size_t i = 0; i < digits.digits.size(); ++i) {
      const int v = digits.digits[i];
      REEL_CHECK(v >= 0 && v <= 9, "moving digits: digit label " << v);
      by_digit[v].push_back(static_cast<int>(i));
    }
    for (const auto& ids : by_digit) {
      const size_t cut = static_cast<size_t>(std::lround(o.train_share * ids.size()));
      if (test)
        pool.insert(pool.end(), ids.begin() + std::min(cut, ids.size()), ids.end());
      else
        pool.insert(pool.end(), ids.begin(), ids.begin() + std::min(cut, ids.size()));
    }
    // A tiny set (tests) may leave one side empty: then both use every image.
    if (pool.empty())
      for (size_t i = 0; i < digits.images.size(); ++i) pool.push_back(static_cast<int>(i));
  }
  DigitClips out;
  out.clips = Tensor::zeros({count, T, 1, S, S});
  float* data = out.clips.data();
  const int64_t clip_numel = static_cast<int64_t>(T) * S * S;
  const int classes = static_cast<int>(digit_classes().size());
  for (int k = 0; k < count; ++k) {
    const int i = first + k;
    const bool twin = test && i % 2 == 1;
    const int base = test ? i / 2 : i;
    int label = base % classes;
    Generator g(sample_seed(o.seed, test ? 1 : 0, base));
    const Motion m = draw_motion(label, S, d, pool, g);
    if (twin) label ^= 1;  // the reversed clip runs the other way
    float* clip = data + k * clip_numel;
    for (int t = 0; t < T; ++t) {
      const double u = static_cast<double>(twin ? T - 1 - t : t) / (T - 1);
      paste(digits.images[m.image], m.x0 + u * (m.x1 - m.x0), m.y0 + u * (m.y1 - m.y0),
            m.side0 + u * (m.side1 - m.side0), clip + static_cast<int64_t>(t) * S * S, S);
    }
    out.labels.push_back(label);
    out.digits.push_back(digits.digits[m.image]);
  }
  return out;
}

DigitsWritten write_moving_digits(const DigitImages& digits, const std::string& out, int train,
                                  int test, const DigitsOptions& o) {
  quiet_opencv();
  const auto& classes = digit_classes();
  std::error_code ec;
  fs::create_directories(out, ec);
  REEL_CHECK(!ec, "digits: cannot create '" << out << "': " << ec.message());
  for (const auto& c : classes) {
    fs::create_directories(fs::path(out) / c, ec);
    REEL_CHECK(!ec,
               "digits: cannot create '" << (fs::path(out) / c).string() << "': " << ec.message());
  }
  // The lists go through name.part and a rename once complete, so an interrupted run leaves no
  // list that names videos which were never written.
  auto write_list = [&](const char* name, const std::string& text) {
    const fs::path final_path = fs::path(out) / name, part = final_path.string() + ".part";
    {
      std::ofstream f(part);
      f << text;
      f.close();
      REEL_CHECK(f.good(), "digits: cannot write '" << part.string() << "'");
    }
    fs::rename(part, final_path, ec);
    REEL_CHECK(!ec, "digits: cannot rename '" << part.string() << "': " << ec.message());
  };
  {
    std::string ind;
    for (size_t c = 0; c < classes.size(); ++c)
      ind += std::to_string(c + 1) + " " + classes[c] + "\n";
    write_list("classInd.txt", ind);
  }
  constexpr int kPiece = 64;  // clips made at a time (even, for the test twins)
  DigitsWritten w;
  w.root = out;
  for (int split = 0; split < 2; ++split) {
    const bool is_test = split == 1;
    const int count = is_test ? test : train;
    std::string list;
    const int S = o.size, T = o.frames;
    cv::Mat gray(S, S, CV_8UC1), bgr;
    DigitClips clips;
    for (int i = 0; i < count; ++i) {
      if (i % kPiece == 0)  // memory stays at kPiece clips, whatever --train and --test say
        clips = make_moving_digits(digits, std::min(kPiece, count - i), is_test, o, i);
      const int k = i % kPiece;
      const std::string& cls = classes[clips.labels[k]];
      char name[160];
      std::snprintf(name, sizeof name, "%s/v_%s_g%02d_c%04d.avi", cls.c_str(), cls.c_str(),
                    is_test ? 1 : 2, i + 1);
      const std::string path = (fs::path(out) / name).string();
      cv::VideoWriter vw;
      vw.open(path, cv::CAP_FFMPEG, cv::VideoWriter::fourcc('M', 'J', 'P', 'G'), 25.0,
              cv::Size(S, S), true);
      REEL_CHECK(vw.isOpened(), "digits: cannot write the video '" << path << "'");
      vw.set(cv::VIDEOWRITER_PROP_QUALITY, 95);
      const float* clip = clips.clips.data() + static_cast<int64_t>(k) * T * S * S;
      for (int t = 0; t < T; ++t) {
        const float* f = clip + static_cast<int64_t>(t) * S * S;
        for (int p = 0; p < S * S; ++p)
          gray.data[p] = static_cast<uint8_t>(std::lround(std::min(1.0f, f[p]) * 255.0f));
        cv::cvtColor(gray, bgr, cv::COLOR_GRAY2BGR);
        vw.write(bgr);
      }
      vw.release();
      REEL_CHECK(fs::file_size(path, ec) > 0 && !ec,
                 "digits: writing the video '" << path << "' failed");
      list += name;
      if (!is_test) list += " " + std::to_string(clips.labels[k] + 1);
      list += "\n";
    }
    write_list(is_test ? "testlist01.txt" : "trainlist01.txt", list);
    (is_test ? w.test : w.train) = count;
  }
  return w;
}

}  // namespace reel::data
