#include "plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "reel/core/error.h"
#include "reel/core/serialize.h"

namespace reel::apps {

namespace {

const cv::Scalar kBlack(0, 0, 0), kGrey(200, 200, 200), kWhite(255, 255, 255);
constexpr int kFont = cv::FONT_HERSHEY_SIMPLEX;

void text(cv::Mat& img, const std::string& s, cv::Point at, double scale, cv::Scalar colour,
          int align = 0) {  // align: 0 left, 1 centre, 2 right of `at`
  int base = 0;
  const cv::Size sz = cv::getTextSize(s, kFont, scale, 1, &base);
  at.x -= align * sz.width / 2;
  cv::putText(img, s, at, kFont, scale, colour, 1, cv::LINE_AA);
}

void write_png(const cv::Mat& img, const std::string& path) {
  std::vector<uchar> bytes;
  REEL_CHECK(cv::imencode(".png", img, bytes), "cannot encode " << path << " as PNG");
  write_file_atomic(path, std::string(bytes.begin(), bytes.end()));
}

std::string number(double v) {
  char buf[32];
  if (v != 0.0 && (std::fabs(v) < 1e-2 || std::fabs(v) >= 1e5))
    std::snprintf(buf, sizeof buf, "%.1e", v);
  else
    std::snprintf(buf, sizeof buf, "%.3g", v);
  return buf;
}

// About five round tick values covering [lo, hi].
std::vector<double> ticks(double lo, double hi) {
  const double span = hi - lo > 0 ? hi - lo : 1.0;
  const double raw = span / 5.0;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (raw <= m * mag) {
      step = m * mag;
      break;
    }
  std::vector<double> t;
  for (double v = std::ceil(lo / step) * step; v <= hi + 1e-9 * span; v += step)
    t.push_back(std::fabs(v) < 1e-9 * span ? 0.0 : v);  // no "-0" from rounding
  return t;
}

const cv::Scalar kColours[] = {{180, 119, 31}, {14, 127, 255},  {44, 160, 44},
                               {40, 39, 214},  {189, 103, 148}, {75, 86, 140}};

}  // namespace

void draw_confusion(const std::vector<std::vector<int64_t>>& counts,
                    const std::vector<std::string>& classes, const std::string& title,
                    const std::string& path) {
  const int n = static_cast<int>(classes.size());
  REEL_CHECK(n > 0 && static_cast<int>(counts.size()) == n,
             "draw_confusion: " << counts.size() << " rows for " << n << " classes");
  const int cell = std::clamp(560 / n, 14, 64);
  int label_w = 0;
  for (const auto& c : classes) {
    int base = 0;
    label_w = std::max(label_w, cv::getTextSize(c, kFont, 0.45, 1, &base).width);
  }
  label_w = std::min(label_w, 220) + 16;
  const int left = label_w + 30, top = 60, grid = cell * n;
  const int right = 90, bottom = label_w + 40;
  cv::Mat img(top + grid + bottom, left + grid + right, CV_8UC3, kWhite);
  text(img, title, {img.cols / 2, 30}, 0.65, kBlack, 1);
  cv::Mat shade(1, 256, CV_8UC1);
  for (int i = 0; i < 256; ++i) shade.at<uchar>(0, i) = static_cast<uchar>(i);
  cv::Mat lut;
  cv::applyColorMap(shade, lut, cv::COLORMAP_VIRIDIS);
  for (int r = 0; r < n; ++r) {
    REEL_CHECK(static_cast<int>(counts[r].size()) == n,
               "draw_confusion: row " << r << " has " << counts[r].size() << " columns");
    int64_t row = 0;
    for (int64_t v : counts[r]) row += v;
    for (int col = 0; col < n; ++col) {
      const double share = row ? static_cast<double>(counts[r][col]) / row : 0.0;
      const cv::Vec3b c = lut.at<cv::Vec3b>(0, static_cast<int>(std::lround(share * 255)));
      const cv::Rect box(left + col * cell, top + r * cell, cell, cell);
      cv::rectangle(img, box, cv::Scalar(c[0], c[1], c[2]), cv::FILLED);
      if (cell >= 22) {
        const cv::Scalar ink = share > 0.6 ? kBlack : kWhite;
        text(img, std::to_string(counts[r][col]), {box.x + cell / 2, box.y + cell / 2 + 5},
             cell >= 40 ? 0.45 : 0.35, ink, 1);
      }
    }
    text(img, classes[r].substr(0, 28), {left - 8, top + r * cell + cell / 2 + 5}, 0.45, kBlack, 2);
  }
  cv::rectangle(img, {left, top, grid, grid}, kBlack, 1);
  // Predicted class names below the grid, written upwards.
  cv::Mat names(label_w, grid, CV_8UC3, kWhite);
  cv::Mat turned;
  cv::rotate(names, turned, cv::ROTATE_90_CLOCKWISE);  // label_w wide, grid high
  for (int col = 0; col < n; ++col)
    text(turned, classes[col].substr(0, 28), {label_w - 4, col * cell + cell / 2 + 5}, 0.45, kBlack,
         2);
  cv::rotate(turned, names, cv::ROTATE_90_COUNTERCLOCKWISE);
  names.copyTo(img(cv::Rect(left, top + grid + 6, grid, label_w)));
  text(img, "predicted class", {left + grid / 2, top + grid + label_w + 30}, 0.5, kBlack, 1);
  // "true class" along the left edge.
  cv::Mat axis(24, grid, CV_8UC3, kWhite);
  text(axis, "true class", {grid / 2, 17}, 0.5, kBlack, 1);
  cv::Mat axis_up;
  cv::rotate(axis, axis_up, cv::ROTATE_90_COUNTERCLOCKWISE);
  axis_up.copyTo(img(cv::Rect(4, top, 24, grid)));
  // Colour scale: the share of the true class's clips.
  const int sx = left + grid + 25;
  for (int y = 0; y < grid; ++y) {
    const cv::Vec3b c = lut.at<cv::Vec3b>(0, 255 - y * 255 / std::max(1, grid - 1));
    cv::line(img, {sx, top + y}, {sx + 14, top + y}, cv::Scalar(c[0], c[1], c[2]));
  }
  text(img, "100%", {sx + 18, top + 10}, 0.4, kBlack);
  text(img, "0%", {sx + 18, top + grid}, 0.4, kBlack);
  write_png(img, path);
}

void draw_curves(const std::vector<Panel>& panels, const std::string& x_label,
                 const std::string& title, const std::string& path) {
  REEL_CHECK(!panels.empty(), "draw_curves: no panel for " << path);
  const int pw = 640, ph = 260, left = 80, top = 50, gap = 60, bottom = 50;
  const int H = top + static_cast<int>(panels.size()) * (ph + gap) - gap + bottom;
  cv::Mat img(H, left + pw + 30, CV_8UC3, kWhite);
  text(img, title, {img.cols / 2, 30}, 0.65, kBlack, 1);
  double x0 = 1e300, x1 = -1e300;
  for (const auto& p : panels)
    for (const auto& s : p.series)
      for (double x : s.x) x0 = std::min(x0, x), x1 = std::max(x1, x);
  if (!(x1 >= x0)) x0 = 0, x1 = 1;
  if (x1 == x0) x1 = x0 + 1;
  for (size_t pi = 0; pi < panels.size(); ++pi) {
    const Panel& p = panels[pi];
    const int py = top + static_cast<int>(pi) * (ph + gap);
    double y0 = 1e300, y1 = -1e300;
    for (const auto& s : p.series)
      for (double y : s.y)
        if (std::isfinite(y)) y0 = std::min(y0, y), y1 = std::max(y1, y);
    if (!(y1 >= y0)) y0 = 0, y1 = 1;
    if (y1 == y0) y0 -= 0.5, y1 += 0.5;
    const double pad = 0.05 * (y1 - y0);
    y0 -= pad, y1 += pad;
    auto X = [&](double x) {
      return left + static_cast<int>(std::lround((x - x0) / (x1 - x0) * pw));
    };
    auto Y = [&](double y) {
      return py + ph - static_cast<int>(std::lround((y - y0) / (y1 - y0) * ph));
    };
    for (double t : ticks(y0, y1)) {
      cv::line(img, {left, Y(t)}, {left + pw, Y(t)}, kGrey, 1);
      text(img, number(t), {left - 6, Y(t) + 4}, 0.4, kBlack, 2);
    }
    for (double t : ticks(x0, x1)) {
      cv::line(img, {X(t), py + ph}, {X(t), py + ph + 5}, kBlack, 1);
      text(img, number(t), {X(t), py + ph + 20}, 0.4, kBlack, 1);
    }
    cv::rectangle(img, {left, py, pw, ph}, kBlack, 1);
    cv::Mat axis(20, ph, CV_8UC3, kWhite), up;
    text(axis, p.y_label, {ph / 2, 15}, 0.5, kBlack, 1);
    cv::rotate(axis, up, cv::ROTATE_90_COUNTERCLOCKWISE);
    up.copyTo(img(cv::Rect(4, py, 20, ph)));
    text(img, x_label, {left + pw / 2, py + ph + 40}, 0.5, kBlack, 1);
    for (size_t si = 0; si < p.series.size(); ++si) {
      const Series& s = p.series[si];
      const cv::Scalar colour = kColours[si % 6];
      std::vector<cv::Point> pts;
      for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i)
        if (std::isfinite(s.y[i])) pts.emplace_back(X(s.x[i]), Y(s.y[i]));
      if (pts.size() == 1) cv::circle(img, pts[0], 3, colour, cv::FILLED, cv::LINE_AA);
      if (pts.size() > 1) cv::polylines(img, pts, false, colour, 2, cv::LINE_AA);
    }
    // The legend on a framed white box in the top right corner, over the lines.
    const cv::Rect box(left + pw - 162, py + 6, 156, 8 + 18 * static_cast<int>(p.series.size()));
    cv::rectangle(img, box, kWhite, cv::FILLED);
    cv::rectangle(img, box, kGrey, 1);
    for (size_t si = 0; si < p.series.size(); ++si) {
      const int ly = py + 20 + static_cast<int>(si) * 18;
      cv::line(img, {left + pw - 154, ly - 4}, {left + pw - 129, ly - 4}, kColours[si % 6], 2);
      text(img, p.series[si].name, {left + pw - 122, ly}, 0.42, kBlack);
    }
  }
  write_png(img, path);
}

namespace {

// A colour for v in [lo, hi]: blue-white-red around 0 when the range holds 0 inside, else
// viridis.
cv::Scalar heat(float v, float lo, float hi, const cv::Mat& viridis) {
  if (lo < 0.0f && hi > 0.0f) {
    const float t = v < 0.0f ? std::min(1.0f, v / lo) : std::min(1.0f, v / hi);
    const int fade = static_cast<int>(std::lround(255.0f * (1.0f - t)));
    return v < 0.0f ? cv::Scalar(255, fade, fade) : cv::Scalar(fade, fade, 255);  // BGR
  }
  const float t = hi > lo ? std::clamp((v - lo) / (hi - lo), 0.0f, 1.0f) : 0.5f;
  const cv::Vec3b c = viridis.at<cv::Vec3b>(0, static_cast<int>(std::lround(t * 255)));
  return cv::Scalar(c[0], c[1], c[2]);
}

cv::Mat viridis_lut() {
  cv::Mat shade(1, 256, CV_8UC1), lut;
  for (int i = 0; i < 256; ++i) shade.at<uchar>(0, i) = static_cast<uchar>(i);
  cv::applyColorMap(shade, lut, cv::COLORMAP_VIRIDIS);
  return lut;
}

}  // namespace

void draw_heatmap(const std::vector<float>& values, int rows, int cols, float lo, float hi,
                  const std::string& x_label, const std::string& y_label, const std::string& title,
                  const std::string& path) {
  REEL_CHECK(rows > 0 && cols > 0 && values.size() == static_cast<size_t>(rows) * cols,
             "draw_heatmap: " << values.size() << " values for " << rows << " x " << cols);
  const int cw = std::clamp(640 / cols, 2, 40), ch = std::clamp(320 / rows, 2, 24);
  const int left = 70, top = 45, w = cw * cols, h = ch * rows;
  cv::Mat img(top + h + 55, left + w + 90, CV_8UC3, kWhite);
  const cv::Mat lut = viridis_lut();
  text(img, title, {img.cols / 2, 28}, 0.55, kBlack, 1);
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c)
      cv::rectangle(img, cv::Rect(left + c * cw, top + r * ch, cw, ch),
                    heat(values[static_cast<size_t>(r) * cols + c], lo, hi, lut), cv::FILLED);
  cv::rectangle(img, {left - 1, top - 1, w + 2, h + 2}, kBlack, 1);
  for (double t : ticks(1, cols)) {
    const int x = left + static_cast<int>((t - 0.5) * cw);
    cv::line(img, {x, top + h}, {x, top + h + 4}, kBlack, 1);
    text(img, number(t), {x, top + h + 18}, 0.4, kBlack, 1);
  }
  text(img, x_label, {left + w / 2, top + h + 40}, 0.45, kBlack, 1);
  text(img, "1", {left - 6, top + ch / 2 + 4}, 0.4, kBlack, 2);
  text(img, std::to_string(rows), {left - 6, top + h - ch / 2 + 4}, 0.4, kBlack, 2);
  cv::Mat axis(20, h, CV_8UC3, kWhite), up;
  text(axis, y_label, {h / 2, 15}, 0.45, kBlack, 1);
  cv::rotate(axis, up, cv::ROTATE_90_COUNTERCLOCKWISE);
  up.copyTo(img(cv::Rect(8, top, 20, h)));
  const int sx = left + w + 15;
  for (int y = 0; y < h; ++y) {
    const float v = hi - (hi - lo) * static_cast<float>(y) / std::max(1, h - 1);
    cv::line(img, {sx, top + y}, {sx + 12, top + y}, heat(v, lo, hi, lut));
  }
  text(img, number(hi), {sx + 16, top + 10}, 0.4, kBlack);
  text(img, number(lo), {sx + 16, top + h}, 0.4, kBlack);
  write_png(img, path);
}

void draw_timeline(const std::vector<float>& probs, int seconds,
                   const std::vector<std::string>& classes, const std::vector<Span>& spans,
                   double duration, const std::string& title, const std::string& path) {
  const int n = static_cast<int>(classes.size());
  REEL_CHECK(n > 0 && seconds > 0 && probs.size() == static_cast<size_t>(seconds) * n,
             "draw_timeline: " << probs.size() << " values for " << seconds << " seconds x " << n
                               << " classes");
  REEL_CHECK(duration > 0.0, "draw_timeline: duration " << duration << " s");
  int label_w = 0;
  for (const auto& c : classes) {
    int base = 0;
    label_w = std::max(label_w, cv::getTextSize(c.substr(0, 28), kFont, 0.42, 1, &base).width);
  }
  const int strip = 22, gap = 4, pw = 720, top = 50;
  const int left = std::min(label_w, 220) + 34;
  const int found_y = top + n * (strip + gap) + 8;  // the row of spans, below the strips
  const int axis_y = found_y + strip + 4;
  cv::Mat img(axis_y + 55, left + pw + 80, CV_8UC3, kWhite);
  const cv::Mat lut = viridis_lut();
  text(img, title, {img.cols / 2, 28}, 0.55, kBlack, 1);
  // Second s covers [s, s + 1) of the time axis; the last one may end early (at duration).
  auto X = [&](double t) { return left + static_cast<int>(std::lround(t / duration * pw)); };
  for (int c = 0; c < n; ++c) {
    const int y = top + c * (strip + gap);
    for (int s = 0; s < seconds; ++s) {
      const int x0 = X(s), x1 = std::max(x0 + 1, X(std::min<double>(s + 1, duration)));
      cv::rectangle(img, cv::Rect(x0, y, x1 - x0, strip),
                    heat(probs[static_cast<size_t>(s) * n + c], 0.0f, 1.0f, lut), cv::FILLED);
    }
    cv::rectangle(img, {left - 1, y - 1, pw + 2, strip + 2}, kBlack, 1);
    text(img, classes[c].substr(0, 28), {left - 22, y + strip / 2 + 5}, 0.42, kBlack, 2);
    cv::rectangle(img, cv::Rect(left - 16, y + 5, 11, strip - 10), kColours[c % 6], cv::FILLED);
  }
  text(img, "found", {left - 8, found_y + strip / 2 + 5}, 0.42, kBlack, 2);
  cv::rectangle(img, {left - 1, found_y - 1, pw + 2, strip + 2}, kGrey, 1);
  for (const Span& sp : spans) {
    REEL_CHECK(sp.cls >= 0 && sp.cls < n, "draw_timeline: span of class " << sp.cls);
    const int x0 = X(std::max(0.0, sp.start)), x1 = X(std::min(duration, sp.end));
    if (x1 <= x0) continue;
    cv::rectangle(img, cv::Rect(x0, found_y, x1 - x0, strip), kColours[sp.cls % 6], cv::FILLED);
    cv::rectangle(img, cv::Rect(x0, found_y, x1 - x0, strip), kWhite, 1);
    const std::string& name = classes[sp.cls];
    int base = 0;
    if (cv::getTextSize(name, kFont, 0.38, 1, &base).width + 6 < x1 - x0)
      text(img, name, {(x0 + x1) / 2, found_y + strip / 2 + 5}, 0.38, kWhite, 1);
  }
  for (double t : ticks(0.0, duration)) {
    cv::line(img, {X(t), axis_y}, {X(t), axis_y + 5}, kBlack, 1);
    text(img, number(t), {X(t), axis_y + 20}, 0.4, kBlack, 1);
  }
  text(img, "time (s)", {left + pw / 2, axis_y + 42}, 0.45, kBlack, 1);
  // The colour bar: probability from 0 (bottom) to 1 (top), beside the strips.
  const int sx = left + pw + 15, h = n * (strip + gap) - gap;
  for (int y = 0; y < h; ++y)
    cv::line(img, {sx, top + y}, {sx + 12, top + y},
             heat(1.0f - static_cast<float>(y) / std::max(1, h - 1), 0.0f, 1.0f, lut));
  text(img, "1", {sx + 16, top + 10}, 0.4, kBlack);
  text(img, "0", {sx + 16, top + h}, 0.4, kBlack);
  write_png(img, path);
}

void draw_strip(const std::vector<cv::Mat>& images, int height, const std::string& title,
                const std::string& path) {
  REEL_CHECK(!images.empty() && height > 0, "draw_strip: no image for " << path);
  std::vector<cv::Mat> scaled;
  int width = 0;
  for (const cv::Mat& m : images) {
    cv::Mat s;
    const int w = std::max(1, m.cols * height / std::max(1, m.rows));
    cv::resize(m, s, {w, height}, 0, 0, cv::INTER_NEAREST);
    if (s.channels() == 1) cv::cvtColor(s, s, cv::COLOR_GRAY2BGR);
    scaled.push_back(s);
    width += w + 4;
  }
  cv::Mat img(height + 60, std::max(width + 16, 320), CV_8UC3, kWhite);
  text(img, title, {img.cols / 2, 22}, 0.5, kBlack, 1);
  int x = 8;
  for (size_t i = 0; i < scaled.size(); ++i) {
    scaled[i].copyTo(img(cv::Rect(x, 32, scaled[i].cols, height)));
    text(img, std::to_string(i + 1), {x + scaled[i].cols / 2, 32 + height + 18}, 0.4, kBlack, 1);
    x += scaled[i].cols + 4;
  }
  write_png(img, path);
}

}  // namespace reel::apps
