#pragma once
// Pictures for people, drawn with OpenCV and written as PNG: the confusion matrix, learning
// curves, heatmaps and timelines. Each has a title, axes with ticks and labels, and a legend
// where it needs one.
// Writing goes through an AtomicFile; a failure throws reel::Error naming the file.
#include <cstdint>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

namespace reel::apps {

// counts[true][predicted], classes x classes. Cells are coloured by the share of their row
// (viridis) and print their count.
void draw_confusion(const std::vector<std::vector<int64_t>>& counts,
                    const std::vector<std::string>& classes, const std::string& title,
                    const std::string& path);

struct Series {
  std::string name;
  std::vector<double> x, y;
};

// Line charts sharing an x axis: one panel per group of series (for example loss; accuracy),
// each with its own y axis and legend.
struct Panel {
  std::string y_label;
  std::vector<Series> series;
};
void draw_curves(const std::vector<Panel>& panels, const std::string& x_label,
                 const std::string& title, const std::string& path);

// values [rows, cols] row-major as a heatmap: cols along x (x_label, ticked 1..cols), rows along
// y (y_label), coloured from lo to hi (a diverging blue-white-red map when lo < 0 < hi, else
// viridis), with a colour bar labelled lo and hi.
void draw_heatmap(const std::vector<float>& values, int rows, int cols, float lo, float hi,
                  const std::string& x_label, const std::string& y_label, const std::string& title,
                  const std::string& path);

// A stretch of time given to one class (`reel detect`'s segments): [start, end) in seconds.
struct Span {
  double start = 0, end = 0;
  int64_t cls = 0;     // index into the class names
  double score = 0.0;  // the class's mean probability over the span
};

// A timeline of a long video: probs [seconds, classes] row-major as one strip per class along
// a time axis in seconds (the probability as colour, viridis from 0 to 1, with a colour bar),
// and below them a row of the spans, as bars in their class's colour labelled with its name.
void draw_timeline(const std::vector<float>& probs, int seconds,
                   const std::vector<std::string>& classes, const std::vector<Span>& spans,
                   double duration, const std::string& title, const std::string& path);

// The images side by side, each scaled to `height` pixels high, numbered from 1 below.
void draw_strip(const std::vector<cv::Mat>& images, int height, const std::string& title,
                const std::string& path);

}  // namespace reel::apps
